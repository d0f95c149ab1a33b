//! A run's footprint on the server and how it is cleaned up: its schema (and role, named the
//! same), the advisory lock its control connection holds on that name, its backends; the tool's
//! own connections' statement timeout and search path; the sweep of what killed runs left.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Config};

use super::connect::pg_error;
use super::role::{drop_role, role_comment};
use crate::engine::EngineError;

static RUN_COUNTER: AtomicU32 = AtomicU32::new(0);

/// The runs that have not finished (schema and session backends), shared by the engine and its
/// runs, so that `close` can clean up after an interrupted or panicked run.
pub(super) type Live = Arc<Mutex<Vec<LiveRun>>>;

#[derive(Debug, Clone)]
pub(super) struct LiveRun {
    pub(super) schema: String,
    /// The run's own role (named as its schema), when it has one.
    pub(super) role: Option<String>,
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

/// Names the run's schema (and role) and takes its advisory lock on the control connection,
/// before the schema exists: a sweep never drops a live run's schema or role, and `close` can
/// end this backend and wait for it, whatever it was doing when the run was interrupted. A name
/// whose lock is taken (another run's name with the same hash) is passed over. Returns the name
/// and the control connection's backend.
pub(super) async fn claim_schema(
    control: &Client,
    scenario: &str,
) -> Result<(String, i32), EngineError> {
    for _ in 0..8 {
        let schema = run_name(
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed),
            scenario,
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

/// `anomalies_<pid>_<n>_<scenario>`, cut to the 63 bytes PostgreSQL keeps of a name: a longer
/// one would be cut by the server, and the lock (taken on the whole name) would not be the
/// one a sweep asks for (the name the server kept).
fn run_name(pid: u32, counter: u32, scenario: &str) -> String {
    let mut name = format!(
        "anomalies_{pid}_{counter}_{}",
        scenario.replace('-', "_").to_lowercase()
    );
    // A scenario's id is ASCII letters, digits, `-` and `_`: every byte is a character.
    name.truncate(MAX_NAME_BYTES);
    name
}

/// PostgreSQL's NAMEDATALEN - 1.
const MAX_NAME_BYTES: usize = 63;

/// Takes a run's lock if nobody holds it.
pub(super) async fn try_lock(client: &Client, name: &str) -> Result<bool, EngineError> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))",
            &[&SCHEMA_LOCK_CLASS, &name],
        )
        .await
        .map_err(pg_error)?
        .get(0))
}

/// Gives up a run's lock.
pub(super) async fn unlock(client: &Client, name: &str) -> Result<(), EngineError> {
    client
        .query(
            "SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))",
            &[&SCHEMA_LOCK_CLASS, &name],
        )
        .await
        .map_err(pg_error)?;
    Ok(())
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
/// wait forever on the server (a lock held by another client, say), and only `pg_catalog` on
/// the search path: a function or operator someone made in `public` (a run's role can, where
/// PUBLIC may create there) never stands in for the catalog's in the tool's own queries.
pub(super) fn own(config: &Config) -> Config {
    own_in(config, "pg_catalog")
}

/// As [`own`], with `search_path` (a run's schema, for the connection its setup and final query
/// run on: set at start-up, no extra round trip).
pub(super) fn own_in(config: &Config, search_path: &str) -> Config {
    let mut own = config.clone();
    let options = match config.get_options() {
        Some(options) if !options.trim().is_empty() => format!("{options} "),
        _ => String::new(),
    };
    own.options(format!(
        "{options}-c statement_timeout={OWN_STATEMENT_TIMEOUT} -c search_path={search_path}"
    ));
    own
}

/// Ends the backends, and every backend logged in as `role` (one still starting up when the
/// run was interrupted, say), and waits, asking the server, until they are gone (at most 10 s):
/// a backend that is gone has committed or rolled back all it was doing.
pub(super) async fn end_backends(
    admin: &Client,
    pids: &[i32],
    role: Option<&str>,
) -> Result<(), EngineError> {
    let theirs = "FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1) OR usename = $2";
    admin
        .query(
            &format!("SELECT pg_catalog.pg_terminate_backend(pid) {theirs}"),
            &[&pids, &role],
        )
        .await
        .map_err(pg_error)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                &format!("SELECT pg_catalog.count(*) {theirs}"),
                &[&pids, &role],
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

/// Drops what earlier runs left on a shared server (killed before they could clean up): only
/// schemas and roles named and commented as the tool makes them, that this user may drop, and
/// only when no live run holds their advisory lock. A run takes its lock before it creates its
/// schema and role, so a name whose lock is free has no live owner. Roles belong to the whole
/// server and advisory locks to one database: a role is swept only from the database its
/// comment names, where its run's lock is.
pub(super) async fn sweep_stale(admin: &Client, database: &str) -> Result<(), EngineError> {
    let schemas = admin
        .query(
            "SELECT n.nspname::text FROM pg_catalog.pg_namespace n \
             WHERE n.nspname ~ '^anomalies_[0-9]+_[0-9]+_[a-z0-9_]+$' \
             AND pg_catalog.obj_description(n.oid, 'pg_namespace') = $1 \
             AND pg_catalog.pg_has_role(n.nspowner, 'USAGE')",
            &[&SCHEMA_COMMENT],
        )
        .await
        .map_err(pg_error)?;
    let roles = admin
        .query(
            "SELECT r.rolname::text FROM pg_catalog.pg_roles r \
             WHERE r.rolname ~ '^anomalies_[0-9]+_[0-9]+_[a-z0-9_]+$' \
             AND pg_catalog.shobj_description(r.oid, 'pg_authid') = $1 \
             AND pg_catalog.pg_has_role(r.oid, 'USAGE')",
            &[&role_comment(database)],
        )
        .await
        .map_err(pg_error)?;
    // Roles first: ending a role's backends frees its schema of their locks.
    let roles = roles.iter().map(|row| (row.get::<_, String>(0), true));
    let schemas = schemas.iter().map(|row| (row.get::<_, String>(0), false));
    for (name, is_role) in roles.chain(schemas) {
        if try_lock(admin, &name).await? {
            let dropped = drop_stale(admin, &name, is_role).await;
            unlock(admin, &name).await?;
            dropped?;
        }
    }
    Ok(())
}

/// Drops a dead run's schema or, for a role, its backends (a statement that outlived the run)
/// and the role with its schema.
async fn drop_stale(admin: &Client, name: &str, is_role: bool) -> Result<(), EngineError> {
    if is_role {
        end_backends(admin, &[], Some(name)).await?;
        drop_role(admin, name).await
    } else {
        drop_schema(admin, name).await
    }
}

/// Clears a throwaway cluster, which is ours alone, of what a run killed without a chance to
/// clean up left: its schemas and roles.
pub(super) async fn clear_cluster(admin: &Client) -> Result<(), EngineError> {
    for (catalog, is_role) in [
        ("SELECT nspname::text FROM pg_catalog.pg_namespace", false),
        ("SELECT rolname::text FROM pg_catalog.pg_roles", true),
    ] {
        let column = if is_role { "rolname" } else { "nspname" };
        let stale = admin
            .query(
                &format!("{catalog} WHERE {column} LIKE 'anomalies\\_%'"),
                &[],
            )
            .await
            .map_err(pg_error)?;
        for row in stale {
            let name: String = row.get(0);
            drop_stale(admin, &name, is_role).await?;
        }
    }
    Ok(())
}

/// Ends what the runs that did not finish left: their backends, then their schemas and roles.
/// Each run's lock is taken again once its control connection is gone, so that a sweep by
/// another run does not drop the same things at the same time.
pub(super) async fn clean_up_live(admin: &Client, live: &Live) -> Result<(), EngineError> {
    let mut result = Ok(());
    let left: Vec<LiveRun> = lock(live).clone();
    for run in &left {
        // A session may be inside a long statement or a lock wait; the server would not
        // notice its closed connection until then, and its locks would hold up the drop.
        let role = run.role.as_deref();
        if let Err(e) = end_backends(admin, &run.pids, role).await {
            result = Err(e);
        }
        let held = try_lock(admin, &run.schema).await.unwrap_or(false);
        let dropped = match role {
            Some(role) => drop_role(admin, role).await,
            None => drop_schema(admin, &run.schema).await,
        };
        if let Err(e) = dropped {
            result = Err(e);
        }
        if held {
            if let Err(e) = unlock(admin, &run.schema).await {
                result = Err(e);
            }
        }
    }
    result
}

pub(super) async fn drop_schema(client: &Client, schema: &str) -> Result<(), EngineError> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .map_err(pg_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_within_the_63_bytes_the_server_keeps() {
        assert_eq!(
            run_name(4242, 7, "Lost-update"),
            "anomalies_4242_7_lost_update"
        );
        let long = run_name(4_194_304, u32::MAX, &"a-very-long-scenario-id".repeat(4));
        assert_eq!(long.len(), 63);
        assert!(long.starts_with("anomalies_4194304_4294967295_a_very_long_scenario_ida_"));
    }
}
