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
use crate::scenario::{Company, EngineKind, Interleaving, Scenario};

/// How many scenarios run at once on one engine. More than the cores: most of a run is waiting
/// for the server (1, 4 and 8 at once measured; 4 and 8 gave the same).
const AT_ONCE: usize = 4;

/// The request's scenarios in order, in groups that run as one, each group lanes that run at
/// once, each lane scenarios that run one after the other on one kept run. A scenario joins the
/// lane before it when both welcome company, or both must run alone, and `same_run` says the
/// two can share a run (a scenario's fixes with its setup and sessions); else it starts a group
/// of its own. Up to [`AT_ONCE`] timed ones in a row ([`Company::Timed`]) are a group, a lane
/// each, with nothing else beside them.
fn company_groups<T: Copy>(
    items: &[T],
    company: impl Fn(&T) -> Company,
    same_run: impl Fn(&T, &T) -> bool,
) -> Vec<(Company, Vec<Vec<T>>)> {
    let mut groups: Vec<(Company, Vec<Vec<T>>)> = Vec::new();
    for item in items {
        let kind = company(item);
        match (groups.last_mut(), kind) {
            (Some((before, lanes)), Company::Anyone | Company::Nobody)
                if *before == kind
                    && same_run(lanes[0].last().expect("a lane has a scenario"), item) =>
            {
                lanes[0].push(*item)
            }
            (Some((Company::Timed, lanes)), Company::Timed) if lanes.len() < AT_ONCE => {
                lanes.push(vec![*item])
            }
            _ => groups.push((kind, vec![vec![*item]])),
        }
    }
    groups
}

/// Whether `b` can run on the run `a` leaves, put back as new: another variant of the same
/// scenario, with the same sessions on the same nodes and the same setup on this engine. The
/// engine still decides whether it can relevel the run ([`Run::relevel`]).
fn same_run(kind: EngineKind, a: &Scenario, b: &Scenario) -> bool {
    a.id == b.id
        && a.topology == b.topology
        && a.uses_redis() == b.uses_redis()
        && a.sessions.len() == b.sessions.len()
        && a.sessions
            .iter()
            .zip(&b.sessions)
            .all(|(x, y)| x.name == y.name && x.node == y.node)
        && a.for_engine(kind).setup == b.for_engine(kind).setup
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
        for item in each {
            let pause = pause.as_mut().map(|p| &mut **p as Pause<'_>);
            ran.extend(run_chain(engine, request, &[item], &progress, pause).await?);
        }
    } else {
        let gate = Semaphore::new(AT_ONCE);
        let (gate, progress) = (&gate, &progress);
        let each: Vec<_> = each.collect();
        let kind = engine.info().name;
        let groups = company_groups(
            &each,
            |(scenario, _)| scenario.company(),
            |(a, _), (b, _)| same_run(kind, a, b),
        );
        let groups = groups.into_iter().map(|(company, lanes)| async move {
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
            let lanes = lanes
                .iter()
                .map(|lane| run_chain(engine, request, lane, progress, None));
            futures_util::future::try_join_all(lanes).await
        });
        ran = futures_util::future::try_join_all(groups)
            .await?
            .into_iter()
            .flatten()
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

/// Scenarios one after the other, each at every level of the request, on one run where the
/// engine can put it back as new between them ([`Run::relevel`]).
async fn run_chain(
    engine: &Engine,
    request: &Request,
    chain: &[(&Scenario, &Interleaving)],
    progress: &RefCell<&mut dyn FnMut(&Report)>,
    mut pause: Option<Pause<'_>>,
) -> Result<Vec<Ran>, AppError> {
    let kind = engine.info().name;
    let mut ran = Vec::new();
    // The run kept for the next level or scenario, and whether its initial state is saved.
    let mut kept: Option<(Run, bool)> = None;
    let mut left = chain.len() * request.levels.len();
    for &(scenario, interleaving) in chain {
        if let Some(why) = not_available(engine, scenario) {
            if request.scenarios.len() == 1 {
                return Err(AppError::Usage(format!(
                    "{} is not available on {kind}: {why}",
                    scenario.label()
                )));
            }
            let info = engine.info();
            ran.push(Ran::NotRun(NotRun {
                label: scenario.label(),
                engine: format!("{} {}", info.name, info.version),
                why: why.to_string(),
            }));
            left -= request.levels.len();
            continue;
        }
        let scenario = &scenario.for_engine(kind);
        let mut reports = Vec::new();
        for &level in &request.levels {
            left -= 1;
            let (mut run, mut saved) = match kept.take() {
                Some((mut run, saved)) => match run.relevel(engine, scenario, level).await? {
                    true => (run, saved),
                    false => {
                        run.finish().await?;
                        (engine.prepare(scenario, level).await?, false)
                    }
                },
                None => (engine.prepare(scenario, level).await?, false),
            };
            if !saved && left > 0 && run.relevels() {
                run.save_initial_state().await?;
                saved = true;
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
            kept = Some((run, saved));
            let report = report(engine, scenario, level, interleaving, timeline);
            (progress.borrow_mut())(&report);
            reports.push(report);
        }
        ran.push(Ran::Reports(reports));
    }
    if let Some((run, _)) = kept {
        run.finish().await?;
    }
    Ok(ran)
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
        let groups: Vec<(Company, usize)> = company_groups(&items, |c| *c, |_, _| true)
            .into_iter()
            .map(|(company, lanes)| (company, lanes.len()))
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

    #[test]
    fn variants_that_can_share_a_run_are_one_lane() {
        use Company::*;
        // (company, which run it can share)
        let items = [
            (Anyone, 'a'),
            (Anyone, 'a'),
            (Anyone, 'b'),
            (Timed, 'b'),
            (Anyone, 'b'),
            (Nobody, 'b'),
            (Anyone, 'b'),
            (Anyone, 'b'),
        ];
        let groups: Vec<Vec<usize>> = company_groups(&items, |(c, _)| *c, |(_, x), (_, y)| x == y)
            .into_iter()
            .map(|(_, lanes)| lanes.iter().map(Vec::len).collect())
            .collect();
        assert_eq!(
            groups,
            [vec![2], vec![1], vec![1], vec![1], vec![1], vec![2]]
        );
    }
}
