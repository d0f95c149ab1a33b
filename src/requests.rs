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
        EngineArg::Galera => Choice::Galera,
    }
}

pub(crate) fn connect_options(
    connection: &ConnectionArgs,
    choice: Choice,
) -> anyhow::Result<ConnectOptions> {
    let (url, standby_url) = node_urls(&connection.url)?;
    Ok(ConnectOptions {
        choice,
        url,
        standby_url,
        connect_timeout: connection.connect_timeout,
        pg_bindir: connection.pg_bindir.clone(),
        mariadb_bindir: connection.mariadb_bindir.clone(),
        redis_url: connection.redis_url.clone(),
        topology: Default::default(),
    })
}

/// The primary's URL and the standby's, from `--url [NODE=]URL` given once per node. Only a
/// node's name before `=` makes a prefix: `host=db port=5432` is a connection string.
fn node_urls(urls: &[String]) -> anyhow::Result<(Option<String>, Option<String>)> {
    let (mut primary, mut standby) = (None, None);
    for url in urls {
        let (slot, url, name) = match url.split_once('=') {
            Some(("standby", url)) => (&mut standby, url, "standby"),
            Some(("primary", url)) => (&mut primary, url, "primary"),
            _ => (&mut primary, url.as_str(), "primary"),
        };
        if slot.replace(url.to_string()).is_some() {
            anyhow::bail!("--url names the {name} twice; give each node once");
        }
    }
    if primary.is_none() && standby.is_some() {
        anyhow::bail!(
            "--url standby=URL needs the primary's URL too: --url URL or --url primary=URL"
        );
    }
    Ok((primary, standby))
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
