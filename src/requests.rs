//! The arguments as the library's requests: which engine, how to connect, which levels, the
//! scenario with its fix.

use anomalies::app::AppError;
use anomalies::engine::{Choice, ConnectOptions};
use anomalies::level::Level;
use anomalies::runner::RunOptions;
use anomalies::scenario::Scenario;

use crate::cli::{ConnectionArgs, EngineArg, LevelArg};

pub(crate) fn engine_choice(engine: EngineArg) -> Choice {
    match engine {
        EngineArg::Auto => Choice::Auto,
        EngineArg::Only(kind) => Choice::Only(kind),
    }
}

pub(crate) fn connect_options(connection: &ConnectionArgs, choice: Choice) -> ConnectOptions {
    ConnectOptions {
        choice,
        url: connection.url.clone(),
        connect_timeout: connection.connect_timeout,
        pg_bindir: connection.pg_bindir.clone(),
        mariadb_bindir: connection.mariadb_bindir.clone(),
        redis_url: connection.redis_url.clone(),
        topology: Default::default(),
    }
}

pub(crate) fn run_options(connection: &ConnectionArgs) -> RunOptions {
    RunOptions {
        step_timeout: connection.step_timeout,
        stop_when_impossible: false,
    }
}

/// The scenario with `--fix` in place, when one is asked for.
pub(crate) fn with_fix(scenario: Scenario, fix: Option<&str>) -> anyhow::Result<Scenario> {
    match fix {
        None => Ok(scenario),
        Some(fix) => scenario
            .with_fix(fix)
            .map_err(|message| AppError::Usage(message).into()),
    }
}

pub(crate) fn levels(level: LevelArg) -> Vec<Level> {
    match level {
        LevelArg::ReadUncommitted => vec![Level::ReadUncommitted],
        LevelArg::ReadCommitted => vec![Level::ReadCommitted],
        LevelArg::RepeatableRead => vec![Level::RepeatableRead],
        LevelArg::Serializable => vec![Level::Serializable],
        LevelArg::All => Level::ALL.to_vec(),
    }
}
