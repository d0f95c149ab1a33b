//! Runs a scenario end to end: connect, run each level, judge, and always clean up.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::engine::{ConnectOptions, Engine, EngineError};
use crate::level::Level;
use crate::outcome::judge;
use crate::report::Report;
use crate::runner::{replay, RunOptions};
use crate::scenario::{Interleaving, Scenario};

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
}

/// Runs every scenario at every requested level, in that order, on one connection to the
/// engine; `progress` hears of each run as it ends. Whatever happens (an error, Ctrl-C, SIGTERM,
/// a panic), the schemas, files and throwaway server the runs made are removed before this
/// returns.
pub async fn run(
    request: &Request,
    notice: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(&Report),
) -> Result<Vec<Report>, AppError> {
    let mut interleavings = Vec::new();
    for scenario in &request.scenarios {
        let interleaving = scenario
            .interleaving(request.interleaving.as_deref())
            .map_err(AppError::Usage)?;
        interleavings.push(interleaving.clone());
    }
    let (mut engine, note) = tokio::select! {
        connected = Engine::connect(&request.connect) => connected?,
        _ = interrupted() => return Err(AppError::Interrupted),
    };
    if let Some(note) = note {
        notice(&note);
    }
    let work =
        AssertUnwindSafe(run_all(&mut engine, request, &interleavings, progress)).catch_unwind();
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

async fn run_all(
    engine: &mut Engine,
    request: &Request,
    interleavings: &[Interleaving],
    progress: &mut dyn FnMut(&Report),
) -> Result<Vec<Report>, AppError> {
    let mut reports = Vec::new();
    for (scenario, interleaving) in request.scenarios.iter().zip(interleavings) {
        for &level in &request.levels {
            let mut run = engine.prepare(scenario, level).await?;
            let timeline = replay(&mut run, scenario, interleaving, request.options).await?;
            run.finish().await?;
            let verdict = judge(scenario, &timeline);
            let effective = engine.effective_level(level);
            let info = engine.info_at(effective);
            let expectation = scenario.expectation(info.name, &info.version, level);
            let report = Report {
                scenario: scenario.clone(),
                requested: level,
                effective,
                interleaving: interleaving.name.clone(),
                timeline,
                verdict,
                expected: expectation.map(|e| e.expected),
                expected_in: expectation.map(|e| e.table.clone()),
                engine: info,
            };
            progress(&report);
            reports.push(report);
        }
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
