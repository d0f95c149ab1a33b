//! The scenarios of one request (`run`, `matrix`, `check`) on one engine, several at once.
//!
//! A scenario's levels run one after the other on one run (its data put back between them),
//! and up to [`AT_ONCE`] scenarios run at once on this thread: while one waits for its
//! database (a round trip, a setup's DDL), the others work. Runs do
//! not see each other: each has its own schema, database or file, its own connections and its
//! own Redis key prefix, and a probe asks only about the run's own sessions. What the server
//! shares is not private, so a scenario that uses it runs alone; and a Redis lease is timed, so
//! a scenario that uses one runs only beside other such scenarios, which mostly wait
//! ([`Scenario::company`]). The reports come back in the request's order, whatever
//! order the runs end in.

use std::cell::RefCell;

use tokio::sync::Semaphore;

use super::{not_available, report, AppError, Request, Runs};
use crate::engine::{Engine, Run};
use crate::report::{NotRun, Report};
use crate::runner::{replay, Pause};
use crate::scenario::{Company, Interleaving, Scenario};

/// How many scenarios run at once on one engine. More than the cores: most of a run is waiting
/// for the server (1, 4 and 8 at once measured; 4 and 8 gave the same).
const AT_ONCE: usize = 4;

/// The request's scenarios in order, in groups that run as one: a scenario on its own, or up to
/// [`AT_ONCE`] timed ones in a row ([`Company::Timed`]), which run at once with nothing else
/// beside them.
fn company_groups<T: Copy>(items: &[T], company: impl Fn(&T) -> Company) -> Vec<(Company, Vec<T>)> {
    let mut groups: Vec<(Company, Vec<T>)> = Vec::new();
    for item in items {
        let kind = company(item);
        match groups.last_mut() {
            Some((Company::Timed, group)) if kind == Company::Timed && group.len() < AT_ONCE => {
                group.push(*item)
            }
            _ => groups.push((kind, vec![*item])),
        }
    }
    groups
}

/// What one scenario of the request gave.
enum Ran {
    Reports(Vec<Report>),
    NotRun(NotRun),
}

/// Runs every scenario at every level of the request; one that cannot run on the engine is
/// named in [`Runs::not_run`], or is the error when it is the only one. In step mode
/// (`pause`) one scenario runs at a time.
pub(super) async fn run_all(
    engine: &Engine,
    request: &Request,
    interleavings: &[Interleaving],
    progress: &mut dyn FnMut(&Report),
    mut pause: Option<Pause<'_>>,
) -> Result<Runs, AppError> {
    let progress = RefCell::new(progress);
    let mut ran = Vec::new();
    let each = request.scenarios.iter().zip(interleavings);
    if pause.is_some() {
        for (scenario, interleaving) in each {
            let pause = pause.as_mut().map(|p| &mut **p as Pause<'_>);
            ran.push(run_one(engine, request, scenario, interleaving, &progress, pause).await?);
        }
    } else {
        let gate = Semaphore::new(AT_ONCE);
        let (gate, progress) = (&gate, &progress);
        let each: Vec<_> = each.collect();
        let groups = company_groups(&each, |(scenario, _)| scenario.company());
        let groups = groups.into_iter().map(|(company, group)| async move {
            // Every permit, for runs that must not have just any run beside them. Permits go
            // in the order asked for, so a group that waits for all of them holds back the
            // ones after it.
            let permits = match company {
                Company::Anyone => 1,
                Company::Timed | Company::Nobody => AT_ONCE,
            };
            let _permits = gate
                .acquire_many(permits as u32)
                .await
                .map_err(|e| AppError::Usage(format!("the runs' gate closed: {e}")))?;
            let runs = group.iter().map(|&(scenario, interleaving)| {
                run_one(engine, request, scenario, interleaving, progress, None)
            });
            futures_util::future::try_join_all(runs).await
        });
        ran = futures_util::future::try_join_all(groups)
            .await?
            .into_iter()
            .flatten()
            .collect();
    }
    let mut runs = Runs::default();
    for one in ran {
        match one {
            Ran::Reports(reports) => runs.reports.extend(reports),
            Ran::NotRun(not_run) => runs.not_run.push(not_run),
        }
    }
    Ok(runs)
}

/// One scenario at every level of the request.
async fn run_one(
    engine: &Engine,
    request: &Request,
    scenario: &Scenario,
    interleaving: &Interleaving,
    progress: &RefCell<&mut dyn FnMut(&Report)>,
    mut pause: Option<Pause<'_>>,
) -> Result<Ran, AppError> {
    let kind = engine.info().name;
    if let Some(why) = not_available(engine, scenario) {
        if request.scenarios.len() == 1 {
            return Err(AppError::Usage(format!(
                "{} is not available on {kind}: {why}",
                scenario.label()
            )));
        }
        let info = engine.info();
        return Ok(Ran::NotRun(NotRun {
            label: scenario.label(),
            engine: format!("{} {}", info.name, info.version),
            why: why.to_string(),
        }));
    }
    let scenario = &scenario.for_engine(kind);
    let mut reports = Vec::new();
    // One run serves every level where the engine can reset it to as good as new.
    let mut kept: Option<Run> = None;
    for (i, &level) in request.levels.iter().enumerate() {
        let mut run = match kept.take() {
            Some(mut run) => match run.relevel(engine, scenario, level).await? {
                true => run,
                false => {
                    run.finish().await?;
                    engine.prepare(scenario, level).await?
                }
            },
            None => engine.prepare(scenario, level).await?,
        };
        if i == 0 && request.levels.len() > 1 && run.relevels() {
            run.save_initial_state().await?;
        }
        let timeline = replay(
            &mut run,
            scenario,
            interleaving,
            request.options,
            pause.as_mut().map(|p| &mut **p as Pause<'_>),
        )
        .await?;
        if timeline.stopped {
            run.finish().await?;
            return Err(AppError::Quit);
        }
        kept = Some(run);
        let report = report(engine, scenario, level, interleaving, timeline);
        (progress.borrow_mut())(&report);
        reports.push(report);
    }
    if let Some(run) = kept {
        run.finish().await?;
    }
    Ok(Ran::Reports(reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_scenarios_in_a_row_run_as_one_group() {
        use Company::*;
        let items = [
            Anyone, Timed, Timed, Nobody, Timed, Timed, Timed, Timed, Timed, Anyone,
        ];
        let groups: Vec<(Company, usize)> = company_groups(&items, |c| *c)
            .into_iter()
            .map(|(company, group)| (company, group.len()))
            .collect();
        assert_eq!(
            groups,
            [
                (Anyone, 1),
                (Timed, 2),
                (Nobody, 1),
                (Timed, AT_ONCE),
                (Timed, 5 - AT_ONCE),
                (Anyone, 1)
            ]
        );
    }
}
