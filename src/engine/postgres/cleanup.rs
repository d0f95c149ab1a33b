//! A run's footprint on the server and how it is cleaned up: its schema, the advisory lock its
//! control connection holds on it, its backends; the tool's own connections' statement timeout;
//! the sweep of what killed runs left.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Config};

use super::connect::pg_error;
use crate::engine::EngineError;

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The runs that have not finished (schema and session backends), shared by the engine and its
/// runs, so that `close` can clean up after an interrupted or panicked run.
pub(super) type Live = Arc<Mutex<Vec<LiveRun>>>;

#[derive(Debug, Clone)]
pub(super) struct LiveRun {
    pub(super) schema: String,
    /// Every backend the run has opened, its control connection's first: `close` ends them
    /// and waits until they are gone before it drops the schema, so that no statement of the
    /// run (a `CREATE SCHEMA` still in flight, say) can land after the drop.
    pub(super) pids: Vec<i32>,
}

/// The first key of the session advisory lock a run's control connection holds on its schema
/// (`'anom'`); the second is the schema name's hash. A schema whose lock nobody holds belongs
/// to no live run.
pub(super) const SCHEMA_LOCK_CLASS: i32 = 0x616e_6f6d;

/// The comment every run's schema carries, so that a sweep drops only schemas the tool made.
pub(super) const SCHEMA_COMMENT: &str = "made by anomalies for one run; dropped when the run ends";

/// Names the run's schema and takes its advisory lock on the control connection, before the
/// schema exists: a sweep never drops a live run's schema, and `close` can end this backend
/// and wait for it, whatever it was doing when the run was interrupted. A name whose lock is
/// taken (another run's name with the same hash) is passed over. Returns the schema and the
/// control connection's backend.
pub(super) async fn claim_schema(
    control: &Client,
    scenario: &str,
) -> Result<(String, i32), EngineError> {
    for _ in 0..8 {
        let schema = format!(
            "anomalies_{}_{}_{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed),
            scenario.replace('-', "_").to_lowercase()
        );
        let row = control
            .query_one(
                "SELECT pg_catalog.pg_backend_pid(), \
                 pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))",
                &[&SCHEMA_LOCK_CLASS, &schema],
            )
            .await
            .map_err(pg_error)?;
        if row.get::<_, bool>(1) {
            return Ok((schema, row.get::<_, i32>(0)));
        }
    }
    Err(EngineError::Postgres(
        "no free schema lock for the run after 8 names".into(),
    ))
}

pub(super) fn lock(live: &Live) -> std::sync::MutexGuard<'_, Vec<LiveRun>> {
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long a statement on one of the tool's own connections (the engine's, each run's control
/// connection) may run on the server: the tool's own queries, and the scenario's setup and final
/// query, which run there too. A session's statements are not bounded so: their waits are what
/// a run observes, and `--step-timeout` bounds them.
const OWN_STATEMENT_TIMEOUT: &str = "60s";

/// How long closing may wait for the server: ending a run's backends and dropping its schema.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The configuration of one of the tool's own connections: the user's, with a statement
/// timeout set at connection start-up (no extra round trip), so that none of its queries can
/// wait forever on the server (a lock held by another client, say).
pub(super) fn own(config: &Config) -> Config {
    let mut own = config.clone();
    let options = match config.get_options() {
        Some(options) if !options.trim().is_empty() => format!("{options} "),
        _ => String::new(),
    };
    own.options(format!(
        "{options}-c statement_timeout={OWN_STATEMENT_TIMEOUT}"
    ));
    own
}

/// Ends the backends and waits, asking the server, until they are gone (at most 10 s): a
/// backend that is gone has committed or rolled back all it was doing.
pub(super) async fn end_backends(admin: &Client, pids: &[i32]) -> Result<(), EngineError> {
    admin
        .query(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM unnest($1::int4[]) AS pid",
            &[&pids],
        )
        .await
        .map_err(pg_error)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1)",
                &[&pids],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(EngineError::Postgres(format!(
                "{left} backend(s) of an interrupted run did not end within 10 s"
            )));
        }
    }
}

/// Drops the schemas earlier runs left on a shared server (killed before they could clean
/// up): only schemas named and commented as the tool makes them, and only when no live run
/// holds their advisory lock. A run takes its lock before it creates its schema, so a schema
/// whose lock is free has no live owner.
pub(super) async fn sweep_stale_schemas(admin: &Client) -> Result<(), EngineError> {
    let stale = admin
        .query(
            "SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
             WHERE n.nspname ~ '^anomalies_[0-9]+_[0-9]+_[a-z0-9_]+$' \
             AND pg_catalog.obj_description(n.oid, 'pg_namespace') = $1",
            &[&SCHEMA_COMMENT],
        )
        .await
        .map_err(pg_error)?;
    for row in stale {
        let schema: String = row.get(0);
        let free: bool = admin
            .query_one(
                "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))",
                &[&SCHEMA_LOCK_CLASS, &schema],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if free {
            let dropped = drop_schema(admin, &schema).await;
            admin
                .query(
                    "SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))",
                    &[&SCHEMA_LOCK_CLASS, &schema],
                )
                .await
                .map_err(pg_error)?;
            dropped?;
        }
    }
    Ok(())
}

pub(super) async fn drop_schema(client: &Client, schema: &str) -> Result<(), EngineError> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .map_err(pg_error)
}
