//! Runs a scenario end to end: connect, run each level, judge, and always clean up.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::engine::{ConnectOptions, Engine, EngineError};
use crate::level::Level;
use crate::outcome::judge;
use crate::report::Report;
use crate::runner::{replay, RunOptions};
use crate::scenario::Scenario;

/// What `anomalies run` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub scenario: Scenario,
    pub levels: Vec<Level>,
    /// The interleaving to replay; the scenario's first when `None`.
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
}

/// Runs every requested level. Whatever happens (an error, Ctrl-C, SIGTERM, a panic), the
/// schemas, files and throwaway server the run made are removed before this returns.
pub async fn run(request: &Request, notice: &mut dyn FnMut(&str)) -> Result<Vec<Report>, AppError> {
    let interleaving = request
        .scenario
        .interleaving(request.interleaving.as_deref())
        .map_err(AppError::Usage)?
        .clone();
    let (mut engine, note) = tokio::select! {
        connected = Engine::connect(&request.connect) => connected?,
        _ = interrupted() => return Err(AppError::Interrupted),
    };
    if let Some(note) = note {
        notice(&note);
    }
    let work = AssertUnwindSafe(run_levels(&mut engine, request, &interleaving)).catch_unwind();
    let outcome = tokio::select! {
        outcome = work => Some(outcome),
        _ = interrupted() => None,
    };
    let closed = engine.close().await;
    match outcome {
        None => Err(AppError::Interrupted),
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        Some(Ok(result)) => {
            let reports = result?;
            closed?;
            Ok(reports)
        }
    }
}

async fn run_levels(
    engine: &mut Engine,
    request: &Request,
    interleaving: &crate::scenario::Interleaving,
) -> Result<Vec<Report>, AppError> {
    let scenario = &request.scenario;
    let mut reports = Vec::new();
    for &level in &request.levels {
        let mut run = engine.prepare(scenario, level).await?;
        let timeline = replay(&mut run, scenario, interleaving, request.options).await?;
        run.finish().await?;
        let verdict = judge(scenario, &timeline);
        let effective = engine.effective_level(level);
        reports.push(Report {
            scenario: scenario.clone(),
            engine: engine.info_at(effective),
            requested: level,
            effective,
            interleaving: interleaving.name.clone(),
            timeline,
            verdict,
            expected: scenario.expected(engine.info().name, level).copied(),
        });
    }
    Ok(reports)
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
