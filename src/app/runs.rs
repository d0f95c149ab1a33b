//! The scenarios of one request (`run`, `matrix`, `check`) on one engine, several at once.
//!
//! A scenario's levels run one after the other on one run (its data put back between them),
//! and up to [`AT_ONCE`] scenarios run at once on this thread: while one waits for its
//! database (a round trip, a setup's DDL), the others work. Runs do
//! not see each other: each has its own schema, database or file, its own connections and its
//! own Redis key prefix, and a probe asks only about the run's own sessions. What the server
//! shares is not private, and a Redis lease is timed, so a scenario that uses either runs
//! alone ([`Scenario::runs_alone`]). A scenario's fixes with its setup and sessions follow it
//! on the run it leaves, put back as new. A lane that ends leaves its run as a spare, which the
//! next lane to start takes and the engine rebuilds for its scenario where it can
//! ([`Run::rebuild`]: its connections reset as at login, its data dropped and the new setup
//! run), so a request's runs share a few sets of connections instead of each opening its own.
//! The reports come back in the request's order, whatever order the runs end in.

use std::cell::RefCell;

use tokio::sync::Semaphore;

use super::{not_available, report, AppError, Request, Runs};
use crate::engine::{Engine, Run};
use crate::level::Level;
use crate::report::{NotRun, Report};
use crate::runner::{replay, Pause};
use crate::scenario::{EngineKind, Interleaving, Scenario};

/// How many scenarios run at once on one engine. More than the cores: most of a run is waiting
/// for the server (1, 4 and 8 at once measured; 4 and 8 gave the same).
const AT_ONCE: usize = 4;

/// The request's scenarios in order, in lanes: scenarios that run one after the other on one
/// kept run, and whether the lane must run alone. A scenario joins the lane before it when both
/// may have company, or both must run alone, and `same_run` says the two can share a run (a
/// scenario's fixes with its setup and sessions); else it starts a lane of its own.
fn lanes<T: Copy>(
    items: &[T],
    alone: impl Fn(&T) -> bool,
    same_run: impl Fn(&T, &T) -> bool,
) -> Vec<(bool, Vec<T>)> {
    let mut lanes: Vec<(bool, Vec<T>)> = Vec::new();
    for item in items {
        let alone = alone(item);
        match lanes.last_mut() {
            Some((before, lane))
                if *before == alone && same_run(lane.last().expect("a lane has one"), item) =>
            {
                lane.push(*item)
            }
            _ => lanes.push((alone, vec![*item])),
        }
    }
    lanes
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
    pause: Option<Pause<'_>>,
) -> Result<Runs, AppError> {
    let progress = RefCell::new(progress);
    let spares = Spares::default();
    let ran = lanes_of(engine, request, interleavings, &progress, &spares, pause).await;
    // The spares are finished whatever happened to the lanes; the lanes' error comes first.
    let finished = spares.finish().await;
    let ran = ran?;
    finished?;
    let mut runs = Runs::default();
    for one in ran {
        match one {
            Ran::Reports(reports) => runs.reports.extend(reports),
            Ran::NotRun(not_run) => runs.not_run.push(not_run),
        }
    }
    Ok(runs)
}

/// Runs that lanes left, each for the next lane with as many sessions ([`Run::can_serve`]).
#[derive(Default)]
struct Spares(RefCell<Vec<Run>>);

impl Spares {
    /// A run of `scenario` at `level`: a spare rebuilt for it, where one can be, else a new one.
    async fn take(
        &self,
        engine: &Engine,
        scenario: &Scenario,
        level: Level,
    ) -> Result<Run, AppError> {
        let spare = {
            let mut spares = self.0.borrow_mut();
            let fits = spares.iter().position(|run| run.can_serve(scenario));
            fits.map(|i| spares.swap_remove(i))
        };
        if let Some(mut run) = spare {
            if run.rebuild(engine, scenario, level).await? {
                return Ok(run);
            }
            run.finish().await?;
        }
        Ok(engine.prepare(scenario, level).await?)
    }

    /// Keeps a run a lane is done with, if another scenario may be served by it; else finishes it.
    async fn leave(&self, run: Run) -> Result<(), AppError> {
        match run.rebuilds() {
            true => self.0.borrow_mut().push(run),
            false => run.finish().await?,
        }
        Ok(())
    }

    /// Finishes every spare, all at once; the first error, once all have ended.
    async fn finish(self) -> Result<(), AppError> {
        let finishes = self.0.into_inner().into_iter().map(Run::finish);
        let finished = futures_util::future::join_all(finishes).await;
        Ok(finished.into_iter().collect::<Result<(), _>>()?)
    }
}

/// Every lane of the request, up to [`AT_ONCE`] at once (one at a time in step mode).
async fn lanes_of(
    engine: &Engine,
    request: &Request,
    interleavings: &[Interleaving],
    progress: &RefCell<&mut dyn FnMut(&Report)>,
    spares: &Spares,
    mut pause: Option<Pause<'_>>,
) -> Result<Vec<Ran>, AppError> {
    let mut ran = Vec::new();
    let each = request.scenarios.iter().zip(interleavings);
    if pause.is_some() {
        for item in each {
            let pause = pause.as_mut().map(|p| &mut **p as Pause<'_>);
            ran.extend(run_chain(engine, request, &[item], progress, spares, pause).await?);
        }
    } else {
        let gate = Semaphore::new(AT_ONCE);
        let gate = &gate;
        let each: Vec<_> = each.collect();
        let kind = engine.info().name;
        let lanes = lanes(
            &each,
            |(scenario, _)| scenario.runs_alone(),
            |(a, _), (b, _)| same_run(kind, a, b),
        );
        // The lanes that must run alone because they share the server go first, one after the
        // other, and the rest after them, four at once: a lane that waits for every permit in
        // the middle holds the lanes after it back until the ones before it have all ended. A
        // lane timed by a Redis lease keeps its place: at the start, while the other engines'
        // servers start too, a lease ran out before John asked in 3 of 25 `check --engine all`.
        let mut lanes: Vec<_> = lanes.into_iter().enumerate().collect();
        let first = |alone: bool, lane: &[(&Scenario, &Interleaving)]| {
            alone && !lane.iter().any(|(scenario, _)| scenario.uses_redis())
        };
        lanes.sort_by_key(|(_, (alone, lane))| !first(*alone, lane));
        let lanes = lanes.into_iter().map(|(i, (alone, lane))| async move {
            // Every permit, for a lane that must run alone. Permits go in the order asked
            // for, so a lane that waits for all of them holds back the ones after it.
            let permits = if alone { AT_ONCE } else { 1 };
            let _permits = gate
                .acquire_many(permits as u32)
                .await
                .map_err(|e| AppError::Usage(format!("the runs' gate closed: {e}")))?;
            Ok::<_, AppError>((
                i,
                run_chain(engine, request, &lane, progress, spares, None).await?,
            ))
        });
        let mut done = futures_util::future::try_join_all(lanes).await?;
        // Back in the request's order.
        done.sort_by_key(|(i, _)| *i);
        ran = done.into_iter().flat_map(|(_, ran)| ran).collect();
    }
    Ok(ran)
}

/// Scenarios one after the other, each at every level of the request, on one run where the
/// engine can put it back as new between them ([`Run::relevel`]); the run comes from the
/// spares where one fits, and goes back to them after.
async fn run_chain(
    engine: &Engine,
    request: &Request,
    chain: &[(&Scenario, &Interleaving)],
    progress: &RefCell<&mut dyn FnMut(&Report)>,
    spares: &Spares,
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
                None => (spares.take(engine, scenario, level).await?, false),
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
        spares.leave(run).await?;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_that_can_share_a_run_are_one_lane() {
        // (alone, which run it can share)
        let items = [
            (false, 'a'),
            (false, 'a'),
            (false, 'b'),
            (true, 'b'),
            (true, 'b'),
            (false, 'b'),
            (true, 'c'),
            (false, 'c'),
            (false, 'c'),
        ];
        let lanes: Vec<(bool, usize)> = lanes(&items, |(a, _)| *a, |(_, x), (_, y)| x == y)
            .into_iter()
            .map(|(alone, lane)| (alone, lane.len()))
            .collect();
        assert_eq!(
            lanes,
            [
                (false, 2),
                (false, 1),
                (true, 2),
                (false, 1),
                (true, 1),
                (false, 2)
            ]
        );
    }
}
