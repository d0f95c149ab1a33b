//! A run's footprint on the server and its clean-up: a database of its own, named
//! `anomalies_<pid>_<n>_<scenario>`, and a user-level lock of the same name that the run's
//! control connection holds from before the database exists until the run ends.
//!
//! A killed run's connection is gone, and the server released its lock with it: a run on a
//! user's server drops the `anomalies_*` databases whose lock is free (`IS_FREE_LOCK`). A live
//! run's database is never dropped: its lock was taken before its `CREATE DATABASE`, so any
//! database a sweep can see already has a held lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::worker::Worker;
use crate::engine::EngineError;

/// What a MariaDB database of the tool's says about itself (MySQL has no database comments).
pub(super) const COMMENT: &str = "anomalies: the private data of one run, dropped when it ends";

/// MariaDB names (databases, user-level locks) are at most 64 characters.
const NAME_MAX: usize = 64;

/// How long the tool's own clean-up waits for a lock or a connection to end.
pub(super) const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A run not yet finished: its database and every connection it opened, each with its node
/// (0 on one server).
#[derive(Debug, Clone)]
pub(super) struct LiveRun {
    pub(super) database: String,
    pub(super) connections: Vec<(usize, u32)>,
}

pub(super) type Live = Arc<Mutex<Vec<LiveRun>>>;

pub(super) fn lock(live: &Live) -> std::sync::MutexGuard<'_, Vec<LiveRun>> {
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a free name for the run's database and holds its lock on `control`.
pub(super) async fn claim_database(
    control: &Worker,
    scenario: &str,
) -> Result<String, EngineError> {
    for _ in 0..8 {
        let mut name = format!(
            "anomalies_{}_{}_{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed),
            scenario
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        name.truncate(NAME_MAX);
        if control
            .value(&format!("SELECT GET_LOCK('{name}', 0)"))
            .await?
            == Some("1".into())
        {
            return Ok(name);
        }
    }
    Err(EngineError::Mariadb(
        "no free database lock for the run after 8 names".into(),
    ))
}

/// Creates the run's database; on MariaDB with a comment that says whose it is.
pub(super) async fn create_database(
    control: &Worker,
    name: &str,
    mariadb: bool,
) -> Result<(), EngineError> {
    let comment = if mariadb {
        format!(" COMMENT '{COMMENT}'")
    } else {
        String::new()
    };
    control
        .query(&format!("CREATE DATABASE `{name}`{comment}; USE `{name}`"))
        .await
        .map(|_| ())
}

/// Drops the databases killed runs left: ours by name (and, on MariaDB, comment), whose lock
/// nobody holds, on `admin`'s server nor on any of `others` (the other nodes of a cluster:
/// user-level locks are each node's own).
pub(super) async fn sweep_stale(
    admin: &Worker,
    mariadb: bool,
    others: &[Worker],
) -> Result<(), EngineError> {
    let comment = if mariadb {
        format!(" AND SCHEMA_COMMENT = '{COMMENT}'")
    } else {
        String::new()
    };
    'databases: for name in ours(admin, &comment).await? {
        for node in std::iter::once(admin).chain(others) {
            let free = node
                .value(&format!("SELECT IS_FREE_LOCK('{name}')"))
                .await?;
            if free.as_deref() != Some("1") {
                continue 'databases;
            }
        }
        drop_database(admin, &name).await?;
    }
    Ok(())
}

/// Drops every `anomalies_*` database: on a throwaway server, all of them are ours.
pub(super) async fn drop_all(admin: &Worker) -> Result<(), EngineError> {
    for name in ours(admin, "").await? {
        drop_database(admin, &name).await?;
    }
    Ok(())
}

/// The databases named as the tool names them, and meeting `more` (an SQL condition's tail).
async fn ours(admin: &Worker, more: &str) -> Result<Vec<String>, EngineError> {
    admin
        .column(&format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'anomalies\\_%'{more}"
        ))
        .await
}

pub(super) async fn drop_database(conn: &Worker, name: &str) -> Result<(), EngineError> {
    conn.query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
        .map(|_| ())
}

/// Ends a run's connections (a session may sit in a lock wait, holding locks the drop needs)
/// and waits until the server has let them go.
pub(super) async fn end_connections(admin: &Worker, ids: &[u32]) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Ok(());
    }
    let list = ids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    for id in ids {
        // A connection already gone answers 1094 (unknown thread): nothing to end.
        let _ = admin.query(&format!("KILL CONNECTION {id}")).await;
    }
    let gone = async {
        loop {
            let left = admin
                .value(&format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({list})"
                ))
                .await?;
            if left.as_deref() == Some("0") {
                return Ok::<_, EngineError>(());
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(CLEANUP_TIMEOUT, gone)
        .await
        .map_err(|_| {
            EngineError::Mariadb(format!(
                "the run's connections did not end within {}",
                humantime::format_duration(CLEANUP_TIMEOUT)
            ))
        })?
}
