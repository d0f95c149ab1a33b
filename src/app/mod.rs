//! Runs a scenario end to end: connect, run each level, judge, and always clean up.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

mod runs;

use runs::run_all;

use crate::engine::{Choice, ConnectOptions, Engine, EngineError, Run};
use crate::explore::{Exploration, Explored, Orders, Outcome as ExploreOutcome};
use crate::level::Level;
use crate::outcome::judge;
use crate::report::{NotRun, Report};
use crate::runner::{replay_then_reset, Pause, RunOptions};
use crate::scenario::{Interleaving, Scenario, Topology};

/// What a request ran, and the fixes it did not run because the engine lacks what they need
/// (`lost-update --fix for-update on sqlite`).
#[derive(Debug, Clone, Default)]
pub struct Runs {
    pub reports: Vec<Report>,
    pub not_run: Vec<NotRun>,
}

/// Scenarios to run at levels on one engine (`anomalies run`, `matrix`, `check`).
#[derive(Debug, Clone)]
pub struct Request {
    pub scenarios: Vec<Scenario>,
    pub levels: Vec<Level>,
    /// The interleaving to replay; each scenario's first when `None`.
    pub interleaving: Option<String>,
    pub connect: ConnectOptions,
    pub options: RunOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("interrupted; cleaned up")]
    Interrupted,
    /// Step mode: the user quit before the end.
    #[error("quit before the end; cleaned up")]
    Quit,
}

/// Runs every scenario at every requested level, in that order, on one connection to the
/// engine; `progress` hears of each run as it ends. A fix the engine can't run is not run, and
/// is named in [`Runs::not_run`]; asked for alone, it is an error that says why. Whatever
/// happens (an error, Ctrl-C, SIGTERM, a panic), the schemas, files and throwaway server the
/// runs made are removed before this returns.
pub async fn run(
    request: &Request,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&Report),
    pause: Option<Pause<'_>>,
) -> Result<Runs, AppError> {
    let mut interleavings = Vec::new();
    for scenario in &request.scenarios {
        let interleaving = scenario
            .interleaving(request.interleaving.as_deref())
            .map_err(AppError::Usage)?;
        interleavings.push(interleaving.clone());
    }
    let engine = connect(&needing(&request.connect, &request.scenarios), notice).await?;
    warn_of_privileges(&engine, &request.scenarios, notice);
    let outcome = guarded(run_all(&engine, request, &interleavings, progress, pause)).await;
    conclude(outcome, engine.close().await)
}

/// Runs each request ([`run`]) on its own engine, all at once on this thread, so that one
/// engine's waits (a server's start, a Redis lease) overlap the others' work. The results come
/// back in the requests' order; the first request (in that order) that failed gives the error,
/// once every request has ended and cleaned up.
pub async fn run_each(
    requests: &[Request],
    notice: &dyn Fn(&str),
    progress: &dyn Fn(&Report),
) -> Result<Vec<Runs>, AppError> {
    let each = requests.iter().map(|request| async move {
        run(request, &mut |n| notice(n), &mut |r| progress(r), None).await
    });
    futures_util::future::join_all(each)
        .await
        .into_iter()
        .collect()
}

/// What `anomalies explore` was asked to do.
#[derive(Debug, Clone)]
pub struct ExploreRequest {
    pub scenario: Scenario,
    pub levels: Vec<Level>,
    /// The orders to run: all of them or a sample ([`explore::orders`]).
    pub orders: Orders,
    pub connect: ConnectOptions,
    pub step_timeout: std::time::Duration,
    /// Keep each order's outcome ([`Exploration::lines`]), which JSON lists.
    pub keep_lines: bool,
    /// How many runs (connection sets, each with its own schema or file) share the orders.
    pub jobs: usize,
    /// How many times each order runs; an order that does not end the same way each time is
    /// racy ([`ExploreOutcome::Racy`]).
    pub repeat: usize,
}

/// Runs the request's orders at each level, on connections kept open across orders; the data
/// is put back between orders without DDL. Each order's report is folded into its level's
/// [`Exploration`] as it ends, and dropped unless it is the one to show.
pub async fn explore(
    request: &ExploreRequest,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&Explored),
) -> Result<Vec<Exploration>, AppError> {
    let scenarios = std::slice::from_ref(&request.scenario);
    let mut engine = connect(&needing(&request.connect, scenarios), notice).await?;
    warn_of_privileges(&engine, scenarios, notice);
    let outcome = guarded(explore_all(&mut engine, request, notice, progress)).await;
    conclude(outcome, engine.close().await)
}

async fn explore_all(
    engine: &mut Engine,
    request: &ExploreRequest,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&Explored),
) -> Result<Vec<Exploration>, AppError> {
    if let Some(why) = not_available(engine, &request.scenario) {
        return Err(AppError::Usage(format!(
            "{} is not available on {}: {why}",
            request.scenario.label(),
            engine.info().name
        )));
    }
    let total = request.orders.orders.len() * request.levels.len();
    let started = std::time::Instant::now();
    let mut done = 0;
    let mut progress = |explored: &Explored| {
        progress(explored);
        done += 1;
        if done == LONG_EXPLORE_AFTER {
            let each = started.elapsed() / done as u32;
            let all = each * total as u32;
            if all > LONG_EXPLORE {
                notice(&format!(
                    "notice: {total} orders at about {:.1} ms each will take about {}; \
                     --limit N runs a sample",
                    each.as_secs_f64() * 1e3,
                    humantime::format_duration(Duration::from_secs(all.as_secs()))
                ));
            }
        }
    };
    let scenario = &request.scenario.for_engine(engine.info().name);
    let options = RunOptions {
        step_timeout: request.step_timeout,
        stop_when_impossible: true,
    };
    let jobs = request.jobs.clamp(1, request.orders.orders.len().max(1));
    let progress = RefCell::new(&mut progress);
    let mut explorations = Vec::new();
    for &level in &request.levels {
        let mut runs = Vec::new();
        for _ in 0..jobs {
            let mut run = engine.prepare(scenario, level).await?;
            run.save_initial_state().await?;
            runs.push(run);
        }
        let exploration = RefCell::new(Exploration::new(level, request.keep_lines));
        // The orders go to whichever run is free next, all on this thread: a run waits for
        // its database while the others work.
        let next = Cell::new(0);
        let engine: &Engine = engine;
        let workers = runs.iter_mut().map(|run| {
            let (next, exploration, progress) = (&next, &exploration, &progress);
            async move {
                while let Some(order) = request.orders.orders.get(next.get()) {
                    let index = next.replace(next.get() + 1);
                    let explored =
                        explore_one(run, engine, scenario, level, order, options, request.repeat)
                            .await?;
                    (progress.borrow_mut())(&explored);
                    exploration.borrow_mut().add(index, explored, scenario);
                }
                Ok::<_, AppError>(())
            }
        });
        futures_util::future::try_join_all(workers).await?;
        for run in runs {
            run.finish().await?;
        }
        let mut exploration = exploration.into_inner();
        exploration.finish();
        explorations.push(exploration);
    }
    Ok(explorations)
}

/// One order, `repeat` times, on a run that is put back as the setup left it after each: the
/// first run's report, with the outcome all the runs had (or that they were racy).
async fn explore_one(
    run: &mut Run,
    engine: &Engine,
    scenario: &Scenario,
    level: Level,
    order: &Interleaving,
    options: RunOptions,
    repeat: usize,
) -> Result<Explored, AppError> {
    let mut first = None;
    let mut outcomes = Vec::new();
    for _ in 0..repeat.max(1) {
        let timeline = replay_then_reset(run, scenario, order, options).await?;
        let report = report(engine, scenario, level, order, timeline);
        outcomes.push(ExploreOutcome::of(&report));
        first.get_or_insert(report);
    }
    Ok(Explored {
        order: order.clone(),
        outcome: ExploreOutcome::of_runs(outcomes),
        report: first.expect("at least one run"),
    })
}

/// After this many orders, an explore that will run for longer than [`LONG_EXPLORE`] says so.
const LONG_EXPLORE_AFTER: usize = 200;
const LONG_EXPLORE: Duration = Duration::from_secs(60);

/// `anomalies bench`: the grid on one engine; `progress` hears of each cell as it ends. Cleaned
/// up as [`run`] is, whatever happens.
pub async fn bench(
    options: &ConnectOptions,
    spec: &crate::bench::Spec,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&str),
) -> Result<crate::bench::Report, AppError> {
    let mut engine = connect(options, notice).await?;
    let work = async { Ok(crate::bench::run_grid(&mut engine, spec, progress).await?) };
    let outcome = guarded(work).await;
    conclude(outcome, engine.close().await)
}

/// A scenario file is code: on a user's server where runs cannot have roles of their own, its
/// SQL runs with the connecting user's own privileges. Said once, in one line, with why, for
/// files that are not built-ins.
fn warn_of_privileges(engine: &Engine, scenarios: &[Scenario], notice: &mut dyn FnMut(&str)) {
    let Some(user) = engine.users_server() else {
        return;
    };
    let files: Vec<&str> = scenarios
        .iter()
        .filter_map(|s| s.file())
        .filter_map(|f| f.to_str())
        .collect();
    if let Some(first) = files.first() {
        let more = match files.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        notice(&format!(
            "notice: {first}{more} runs with the privileges of {user}: its SQL can reach \
             whatever that user can, outside the run's own data too"
        ));
    }
}

/// Why `scenario` cannot run on `engine`, if it cannot: its fix needs what the engine lacks, or
/// it needs nodes the engine cannot give.
pub(crate) fn not_available(engine: &Engine, scenario: &Scenario) -> Option<String> {
    scenario
        .applied
        .as_ref()
        .and_then(|fix| fix.unavailable_on(engine.info().name))
        .map(str::to_string)
        .or_else(|| engine.cannot_run(scenario))
}

/// The options, asking for the nodes the scenarios need (a throwaway PostgreSQL then starts
/// with a hot standby, which serves the scenarios that need none as one server does).
fn needing(options: &ConnectOptions, scenarios: &[Scenario]) -> ConnectOptions {
    let mut options = options.clone();
    let standby = scenarios
        .iter()
        .any(|s| s.topology == Topology::PrimaryStandby);
    // A Galera cluster as large as the largest scenario needs.
    let nodes = scenarios
        .iter()
        .filter_map(|s| match s.topology {
            Topology::MultiMaster(n) => Some(n),
            _ => None,
        })
        .max();
    options.topology = match (options.choice, nodes, standby) {
        (Choice::Galera, Some(nodes), _) => Topology::MultiMaster(nodes),
        (Choice::Galera, None, _) => options.topology,
        (_, _, true) => Topology::PrimaryStandby,
        _ => options.topology,
    };
    options
}

/// Connects as asked, passing on the engine's notice (the SQLite fallback).
async fn connect(
    options: &ConnectOptions,
    notice: &mut dyn FnMut(&str),
) -> Result<Engine, AppError> {
    let (engine, note) = tokio::select! {
        connected = Engine::connect(options) => connected?,
        _ = interrupted() => return Err(AppError::Interrupted),
    };
    if let Some(note) = note {
        notice(&note);
    }
    Ok(engine)
}

/// Runs work on an engine until it ends, panics, or the user interrupts it.
async fn guarded<T>(
    work: impl std::future::Future<Output = Result<T, AppError>>,
) -> Option<std::thread::Result<Result<T, AppError>>> {
    let work = AssertUnwindSafe(work).catch_unwind();
    tokio::select! {
        outcome = work => Some(outcome),
        _ = interrupted() => None,
    }
}

/// The result of guarded work once the engine is closed: a panic goes on unwinding, an
/// interruption is an error, and a failure to clean up is reported after the work's own error.
fn conclude<T>(
    outcome: Option<std::thread::Result<Result<T, AppError>>>,
    closed: Result<(), EngineError>,
) -> Result<T, AppError> {
    match outcome {
        None => Err(AppError::Interrupted),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        Some(Ok(result)) => {
            let value = result?;
            closed?;
            Ok(value)
        }
    }
}

pub(crate) fn report(
    engine: &Engine,
    scenario: &Scenario,
    level: Level,
    interleaving: &Interleaving,
    timeline: crate::timeline::Timeline,
) -> Report {
    let verdict = judge(scenario, &timeline);
    let sessions = engine.session_levels(scenario, level);
    let info = engine.info_at(scenario, &sessions);
    let expectation = scenario.expectation(info.name, &info.version, level);
    Report {
        scenario: scenario.clone(),
        requested: level,
        effective: engine.effective_level(level),
        sessions,
        interleaving: interleaving.name.clone(),
        timeline,
        verdict,
        expected: expectation.map(|e| e.expected),
        expected_in: expectation.map(|e| e.table.clone()),
        engine: info,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
