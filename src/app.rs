//! Runs a scenario end to end: connect, run each level, judge, and always clean up.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::engine::{ConnectOptions, Engine, EngineError};
use crate::explore::{Explored, Orders, Outcome as ExploreOutcome};
use crate::level::Level;
use crate::outcome::judge;
use crate::report::{NotRun, Report};
use crate::runner::{replay, Pause, RunOptions};
use crate::scenario::{Interleaving, Scenario};

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
    let mut engine = connect(&request.connect, notice).await?;
    warn_of_privileges(&engine, &request.scenarios, notice);
    let outcome = guarded(run_all(
        &mut engine,
        request,
        &interleavings,
        progress,
        pause,
    ))
    .await;
    conclude(outcome, engine.close().await)
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
}

/// What `explore` found at one level.
#[derive(Debug, Clone)]
pub struct Exploration {
    pub level: Level,
    pub explored: Vec<Explored>,
}

/// Runs the request's orders at each level, on connections kept open across orders; the data
/// is put back between orders without DDL.
pub async fn explore(
    request: &ExploreRequest,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&Explored),
) -> Result<Vec<Exploration>, AppError> {
    let mut engine = connect(&request.connect, notice).await?;
    warn_of_privileges(&engine, std::slice::from_ref(&request.scenario), notice);
    let outcome = guarded(explore_all(&mut engine, request, progress)).await;
    conclude(outcome, engine.close().await)
}

async fn explore_all(
    engine: &mut Engine,
    request: &ExploreRequest,
    progress: &mut dyn FnMut(&Explored),
) -> Result<Vec<Exploration>, AppError> {
    let scenario = &request.scenario.for_engine(engine.info().name);
    let options = RunOptions {
        step_timeout: request.step_timeout,
        stop_when_impossible: true,
    };
    let mut explorations = Vec::new();
    for &level in &request.levels {
        let mut run = engine.prepare(scenario, level).await?;
        run.save_initial_state().await?;
        let mut explored = Vec::new();
        for order in &request.orders.orders {
            let timeline = replay(&mut run, scenario, order, options, None).await?;
            run.reset().await?;
            let report = report(engine, scenario, level, order, timeline);
            let result = Explored {
                order: order.clone(),
                outcome: ExploreOutcome::of(&report),
                report,
            };
            progress(&result);
            explored.push(result);
        }
        run.finish().await?;
        explorations.push(Exploration { level, explored });
    }
    Ok(explorations)
}

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

fn report(
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

async fn run_all(
    engine: &mut Engine,
    request: &Request,
    interleavings: &[Interleaving],
    progress: &mut dyn FnMut(&Report),
    mut pause: Option<Pause<'_>>,
) -> Result<Runs, AppError> {
    let mut runs = Runs::default();
    let kind = engine.info().name;
    for (scenario, interleaving) in request.scenarios.iter().zip(interleavings) {
        let unavailable = scenario
            .applied
            .as_ref()
            .and_then(|fix| fix.unavailable_on(kind));
        if let Some(why) = unavailable {
            if request.scenarios.len() == 1 {
                return Err(AppError::Usage(format!(
                    "{} is not available on {kind}: {why}",
                    scenario.label()
                )));
            }
            let info = engine.info();
            runs.not_run.push(NotRun {
                label: scenario.label(),
                engine: format!("{} {}", info.name, info.version),
                why: why.to_string(),
            });
            continue;
        }
        let scenario = &scenario.for_engine(kind);
        for &level in &request.levels {
            let mut run = engine.prepare(scenario, level).await?;
            let timeline = replay(
                &mut run,
                scenario,
                interleaving,
                request.options,
                pause.as_mut().map(|p| &mut **p as Pause<'_>),
            )
            .await?;
            run.finish().await?;
            if timeline.stopped {
                return Err(AppError::Quit);
            }
            let report = report(engine, scenario, level, interleaving, timeline);
            progress(&report);
            runs.reports.push(report);
        }
    }
    Ok(runs)
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
