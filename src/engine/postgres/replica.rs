//! A run on a primary with a hot standby: the standby's connections, its replay paused and
//! resumed as steps of the scenario, and waits for it, every one asked of the servers.
//!
//! - `replica = "pause"` runs `pg_wal_replay_pause()` on the standby, as the tool's own user.
//!   The standby replays no record after it: PostgreSQL checks the pause before each record,
//!   so a commit on the primary after the pause is never visible on the standby until a
//!   resume, however long the run takes.
//! - `replica = "resume"` runs `pg_wal_replay_resume()` and returns once the standby has
//!   replayed all the primary had flushed when it was sent (`pg_current_wal_flush_lsn()`
//!   against `pg_last_wal_replay_lsn()`).
//! - `replica = "wait LSN"` returns once the standby has replayed LSN; while the replay is
//!   paused it waits for the session that paused it.
//! - A commit at `synchronous_commit = remote_apply` waits for the standby to replay it; the
//!   server shows `wait_event = 'SyncRep'`, which the probe asks while the replay is paused
//!   (a pid of 0 in its answer: the session that paused it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::cleanup::own;
use super::connect::{config_and_tls, connect, describe, no_answer, pg_error};
use super::session::connect_session;
use super::tls::Tls;
use super::{PgEngine, PgRun, Reply, Sent};
use crate::engine::EngineError;
use crate::level::{Level, SessionLevel};
use crate::scenario::{ReplicaAction, Scenario, StepKind};

/// The probe of a run with a standby: a lock wait as on one server, or, while `$3` (the replay
/// is paused), a wait for the synchronous standby, answered as pid 0.
pub(super) const PROBE_WITH_STANDBY: &str =
    "SELECT CASE WHEN pg_catalog.pg_isolation_test_session_is_blocked($1, $2) \
     THEN pg_catalog.pg_blocking_pids($1) || pg_catalog.pg_safe_snapshot_blocking_pids($1) \
     WHEN $3 AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity \
                         WHERE pid = $1 AND wait_event = 'SyncRep') \
     THEN ARRAY[0] END";

/// The pid the probe answers for "the standby", which the session that paused it stands for.
pub(super) const STANDBY_PID: i32 = 0;

/// The longest the tool waits for the standby to catch up, outside a step.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine's hot standby: the settings its connections start from (the primary's user and
/// password, its own host), how they start (TLS), and the tool's own connection to it.
pub(super) struct Standby {
    pub(super) config: Config,
    pub(super) tls: Tls,
    pub(super) admin: Arc<Client>,
    /// Whether a run of this engine holds the replay paused: `close` resumes it then, and
    /// only then (a user may have paused their standby for reasons of their own).
    pub(super) held: Arc<AtomicBool>,
}

/// The user's standby (`--url standby=URL`), which must be one: a server in recovery.
pub(super) async fn connect_users_standby(
    url: &str,
    timeout: Duration,
) -> Result<Standby, EngineError> {
    let (config, tls) = config_and_tls(url, timeout)?;
    let target = describe(&config);
    let admin = connect(&own(&config), &tls, &target).await?;
    let asked = tokio::time::timeout(
        timeout,
        admin.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]),
    );
    let in_recovery: bool = match asked.await {
        Ok(row) => row.map_err(pg_error)?.get(0),
        Err(_) => {
            return Err(EngineError::Connect {
                target,
                reason: no_answer(timeout),
            })
        }
    };
    if !in_recovery {
        return Err(EngineError::Setup(format!(
            "the server at --url standby={target} is not a hot standby (pg_is_in_recovery() is \
             false)"
        )));
    }
    Ok(Standby {
        config,
        tls,
        admin: Arc::new(admin),
        held: Arc::default(),
    })
}

/// The standby a run reads from, and who paused its replay.
pub(super) struct Replica {
    /// The tool's own connection to the standby (its superuser on a throwaway pair).
    pub(super) admin: Arc<Client>,
    pub(super) paused_by: Option<usize>,
    /// The engine's [`Standby::held`].
    pub(super) held: Arc<AtomicBool>,
}

/// Waits until the standby has replayed all the primary has flushed: the role, the schema and
/// the setup a run made, or the data a reset put back.
pub(super) async fn catch_up(primary: &Client, standby: &Client) -> Result<(), EngineError> {
    let wait = async {
        let target = flushed(primary).await?;
        replayed(standby, &target).await?;
        Ok::<_, tokio_postgres::Error>(())
    };
    match tokio::time::timeout(CATCH_UP_TIMEOUT, wait).await {
        Ok(done) => done.map_err(pg_error),
        Err(_) => {
            // A run killed while it held the pause leaves a user's standby paused; say so.
            let paused = standby
                .query_one("SELECT pg_catalog.pg_get_wal_replay_pause_state()", &[])
                .await
                .ok()
                .map(|row| row.get::<_, String>(0))
                .filter(|state| state != "not paused");
            let why = match paused {
                Some(state) => format!(
                    ": its replay is {state} (a run killed while it held the pause leaves it so; \
                     SELECT pg_wal_replay_resume() on the standby lets it go on)"
                ),
                None => String::new(),
            };
            Err(EngineError::Postgres(format!(
                "the standby did not replay the primary's WAL within {}{why}",
                humantime::format_duration(CATCH_UP_TIMEOUT)
            )))
        }
    }
}

/// What a replica step sends: its answer is one row, the position the standby has replayed.
pub(super) fn action(replica: &Replica, primary: &Arc<Client>, action: ReplicaAction) -> Reply {
    let standby = replica.admin.clone();
    let primary = primary.clone();
    let lsn = match action {
        ReplicaAction::Wait(lsn) => Some(lsn.replace('\'', "''")),
        _ => None,
    };
    let pause = action == ReplicaAction::Pause;
    Box::pin(async move {
        if pause {
            // The function in FROM runs first, so the position read is the one it paused at.
            return standby
                .simple_query(
                    "SELECT pg_catalog.pg_last_wal_replay_lsn()::text AS replayed \
                     FROM pg_catalog.pg_wal_replay_pause()",
                )
                .await;
        }
        let target = match lsn {
            Some(lsn) => lsn,
            None => {
                standby
                    .simple_query("SELECT pg_catalog.pg_wal_replay_resume()")
                    .await?;
                flushed(&primary).await?
            }
        };
        replayed(&standby, &target).await?;
        standby
            .simple_query("SELECT pg_catalog.pg_last_wal_replay_lsn()::text AS replayed")
            .await
    })
}

/// The position the primary has flushed its WAL to.
async fn flushed(primary: &Client) -> Result<String, tokio_postgres::Error> {
    let row = primary
        .query_one("SELECT pg_catalog.pg_current_wal_flush_lsn()::text", &[])
        .await?;
    Ok(row.get(0))
}

/// Asks the standby, at once and then at gaps that double up to a millisecond, until it has
/// replayed `lsn` (a bad LSN is the server's error: `invalid input syntax for type pg_lsn`).
async fn replayed(standby: &Client, lsn: &str) -> Result<(), tokio_postgres::Error> {
    let ask = format!("SELECT pg_catalog.pg_last_wal_replay_lsn() >= '{lsn}'::pg_catalog.pg_lsn");
    let mut gap = Duration::from_micros(100);
    loop {
        let answer = standby.simple_query(&ask).await?;
        let done = answer.iter().any(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0) == Some("t"),
            _ => false,
        });
        if done {
            return Ok(());
        }
        // Replay runs by itself once resumed: these gaps are how often it is asked, never
        // what decides the step.
        tokio::time::sleep(gap).await;
        gap = (gap * 2).min(Duration::from_millis(1));
    }
}

/// Waits until the primary streams to the throwaway standby; `false` if it does not within
/// the timeout (the standby fell behind the WAL the primary kept, and must be copied again).
pub(super) async fn streams(primary: &Client, within: Duration) -> Result<bool, EngineError> {
    let ask = format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_replication \
         WHERE application_name = '{}' AND state = 'streaming')",
        crate::engine::cluster::STANDBY_NAME
    );
    let deadline = tokio::time::Instant::now() + within;
    let mut gap = Duration::from_micros(500);
    while tokio::time::Instant::now() < deadline {
        let row = primary.query_one(&ask, &[]).await.map_err(pg_error)?;
        if row.get::<_, bool>(0) {
            return Ok(true);
        }
        tokio::time::sleep(gap).await;
        gap = (gap * 2).min(Duration::from_millis(20));
    }
    Ok(false)
}

/// Connects the tool to the throwaway pair's standby, once the primary streams to it; a
/// standby that does not stream is copied again, once.
pub(super) async fn start_standby(engine: &mut PgEngine) -> Result<Standby, EngineError> {
    let Some(cluster) = engine.cluster.as_mut() else {
        return Err(EngineError::Setup("no throwaway pair to start".into()));
    };
    if !streams(&engine.admin, STREAM_TIMEOUT).await? {
        // Blocking, but only ever after the standby failed to stream for seconds.
        cluster.remake_standby()?;
        if !streams(&engine.admin, STREAM_TIMEOUT).await? {
            return Err(EngineError::Postgres(format!(
                "the throwaway standby does not stream from its primary after {}",
                humantime::format_duration(STREAM_TIMEOUT)
            )));
        }
    }
    let config = cluster
        .standby_config()
        .ok_or_else(|| EngineError::Setup("the throwaway pair has no standby".into()))?;
    let admin = connect(&own(&config), &engine.tls, "the throwaway standby").await?;
    Ok(Standby {
        config,
        tls: engine.tls.clone(),
        admin: Arc::new(admin),
        held: Arc::default(),
    })
}

/// How long a standby that runs gets to start streaming.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Each session's connection to the standby (and its backend's pid), for the sessions with SQL
/// steps there. A hot standby runs no serializable transaction: its sessions run REPEATABLE
/// READ instead, as PostgreSQL's own hint says.
pub(super) async fn connect_sessions(
    base: &Config,
    tls: &Tls,
    schema: &str,
    scenario: &Scenario,
    levels: &[SessionLevel],
) -> Result<Vec<Option<(Arc<Client>, i32)>>, EngineError> {
    let connects = scenario
        .sessions
        .iter()
        .zip(levels)
        .zip(standby_readers(scenario))
        .map(|((session, level), reads_there)| {
            let level = on_standby(level);
            let name = format!("anomalies {} (standby)", session.name);
            async move {
                if !reads_there {
                    return Ok(None);
                }
                let connected = connect_session(base, tls, schema, &name, &level, "the standby");
                Ok::<_, EngineError>(Some(connected.await?))
            }
        });
    futures_util::future::try_join_all(connects).await
}

/// For each session, whether it sends SQL to the standby.
pub(super) fn standby_readers(scenario: &Scenario) -> Vec<bool> {
    scenario
        .sessions
        .iter()
        .map(|session| {
            session
                .steps
                .iter()
                .any(|step| step.kind == StepKind::Sql && scenario.topology.is_standby(step.node))
        })
        .collect()
}

/// A session's level as a hot standby runs it.
pub(super) fn on_standby(level: &SessionLevel) -> SessionLevel {
    let mut level = *level;
    if level.effective == Level::Serializable {
        level.effective = Level::RepeatableRead;
        level.deferrable = false;
    }
    level
}

impl PgRun {
    /// Sends a replica step ([`action`]) for `session`.
    pub fn send_replica(&mut self, session: usize, step: ReplicaAction) -> Result<(), EngineError> {
        let Some(replica) = self.replica.as_mut() else {
            return Err(EngineError::Setup(
                "a replica step needs a standby, and this run has none".into(),
            ));
        };
        match step {
            ReplicaAction::Pause => {
                replica.paused_by = Some(session);
                replica.held.store(true, Ordering::Relaxed);
            }
            ReplicaAction::Resume => {
                replica.paused_by = None;
                replica.held.store(false, Ordering::Relaxed);
            }
            ReplicaAction::Wait(_) => {}
        }
        let reply = action(replica, &self.control, step);
        let on = &mut self.sessions[session];
        on.on = Sent::Replica {
            waits: matches!(step, ReplicaAction::Wait(_)),
        };
        on.in_flight = Some(reply);
        Ok(())
    }

    /// Waits until the standby has replayed what the primary flushed (after a reset, so the
    /// next order's reads see the data put back).
    pub(super) async fn standby_caught_up(&self) -> Result<(), EngineError> {
        match &self.replica {
            Some(replica) => catch_up(&self.control, &replica.admin).await,
            None => Ok(()),
        }
    }

    /// Resumes a paused standby (the end of a run): what the run drops must replay.
    pub(super) async fn resume_standby(&mut self) -> Result<(), EngineError> {
        let Some(replica) = self.replica.as_mut() else {
            return Ok(());
        };
        if replica.paused_by.take().is_some() {
            replica
                .admin
                .simple_query("SELECT pg_catalog.pg_wal_replay_resume()")
                .await
                .map_err(pg_error)?;
            replica.held.store(false, Ordering::Relaxed);
        }
        Ok(())
    }
}
