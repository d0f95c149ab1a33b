//! PostgreSQL through tokio-postgres: one connection per session, one control connection that
//! makes the run's schema (and role) and asks the server whether a session waits, and the
//! connection the setup and the final query run on (the run's role's, or the control one).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Config, SimpleQueryMessage, Statement};

mod backend;
mod bench;
mod cleanup;
mod connect;
mod passfile;
mod reply;
mod restore;
mod role;
mod session;
mod tls;
mod waits;

use cleanup::{claim_schema, clean_up_live, clear_cluster, drop_schema, end_backends, lock, own};
use cleanup::{sweep_stale, Live, LiveRun, CLOSE_TIMEOUT, SCHEMA_COMMENT};
use connect::{config_and_tls, connect, connect_bound, describe, no_answer};
use connect::{out_of_connections, pg_error};
use reply::step_result;
use role::{confinement, drop_role, Confinement, RunRole, CONFINED};
use session::{connect_data, connect_sessions, set_up};
use tls::Tls;
use waits::can_wait;

use crate::engine::probe::{watch, First, Ticker, Watched};

pub(super) use backend::open;

use crate::engine::cluster::Cluster;
use crate::engine::{final_rows, first_reply, EngineError, EngineInfo, Settled};
use crate::level::SessionLevel;
use crate::scenario::{EngineKind, Scenario};
use crate::timeline::{ErrorKind, ResultSet};

type Reply = Pin<Box<dyn Future<Output = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>>>>;

pub struct PgEngine {
    pub info: EngineInfo,
    config: Config,
    tls: Tls,
    admin: Arc<Client>,
    /// `current_database()`, which a run's role's comment names.
    database: String,
    /// Whether runs get roles of their own.
    confinement: Confinement,
    /// Runs not yet finished; `close` cleans up what an interrupted run left.
    live: Live,
    cluster: Option<Cluster>,
}

pub struct PgRun {
    schema: String,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    restore: Option<String>,
    /// Whether the restore gives back exactly what the setup made ([`PgRun::relevel`]).
    restores_all: bool,
    live: Live,
    control: Arc<Client>,
    /// Where the setup, the final query and the data's save and reset run: the run's role's
    /// own connection, or the control connection when the run has no role.
    data: Arc<Client>,
    role: Option<String>,
    /// Whether a session waits and for whom (`NULL` when it does not).
    probe: Statement,
    pub(super) ticker: Ticker,
    sessions: Vec<PgSession>,
    pids: Vec<i32>,
}

struct PgSession {
    client: Arc<Client>,
    pid: i32,
    in_flight: Option<Reply>,
    /// Whether the step in flight can wait at all ([`can_wait`]).
    may_wait: bool,
}

impl PgEngine {
    /// Connects to the server a URL names, filling gaps from the PG* variables.
    pub async fn connect_url(url: &str, timeout: Duration) -> Result<PgEngine, EngineError> {
        let (config, tls) = config_and_tls(url, timeout)?;
        let target = describe(&config);
        let admin = connect(&own(&config), &tls, &target).await?;
        // The first query is bounded too: a server can finish the handshake and then stall.
        let bound = connect_bound(&config);
        let started = PgEngine::new(config, tls, admin, target.clone(), None);
        let mut engine =
            tokio::time::timeout(bound, started)
                .await
                .map_err(|_| EngineError::Connect {
                    target,
                    reason: no_answer(bound),
                })??;
        sweep_stale(&engine.admin, &engine.database).await?;
        engine.confinement =
            confinement(&engine.admin, &engine.config, &engine.tls, &engine.database).await?;
        Ok(engine)
    }

    /// Starts a throwaway server from installed binaries.
    pub async fn throwaway(bindir: &Path) -> Result<PgEngine, EngineError> {
        let bindir = bindir.to_path_buf();
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(&bindir))
            .await
            .map_err(|e| EngineError::Setup(format!("starting the server panicked: {e}")))??;
        let config = cluster.config();
        let tls = Tls::none();
        let admin = connect(&own(&config), &tls, "the throwaway cluster").await?;
        let detail = "throwaway cluster".into();
        let engine = PgEngine::new(config, tls, admin, detail, Some(cluster)).await?;
        clear_cluster(&engine.admin).await?;
        Ok(engine)
    }

    /// What starting the throwaway cluster had to repair in its cache, to tell the user.
    pub fn cluster_notice(&self) -> Option<String> {
        self.cluster.as_ref()?.notice().map(str::to_owned)
    }

    async fn new(
        config: Config,
        tls: Tls,
        admin: Client,
        detail: String,
        cluster: Option<Cluster>,
    ) -> Result<PgEngine, EngineError> {
        let row = admin
            .query_one(
                "SELECT pg_catalog.current_setting('server_version'), \
                 pg_catalog.current_database()::text, rolsuper \
                 FROM pg_catalog.pg_roles WHERE rolname = CURRENT_USER",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let (version, database): (String, String) = (row.get(0), row.get(1));
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        // Decided again, once the sweep is done, on a user's server; a throwaway cluster's
        // user is its superuser, and its pg_hba.conf trusts every local role.
        let confinement = Confinement::Role {
            grant: !row.get::<_, bool>(2),
        };
        Ok(PgEngine {
            info: EngineInfo {
                name: EngineKind::Postgres,
                version,
                detail,
                redis: None,
            },
            config,
            tls,
            admin: Arc::new(admin),
            database,
            confinement,
            live: Live::default(),
            cluster,
        })
    }

    /// On a user's server where runs have the user's own privileges (no role of their own),
    /// who the user is, where, and why: `user few at db:5432/app, who may not create roles`;
    /// `None` where each run has its own role, and on a throwaway cluster.
    pub fn users_server(&self) -> Option<String> {
        let Confinement::User { why } = &self.confinement else {
            return None;
        };
        if self.cluster.is_some() {
            return None;
        }
        Some(format!(
            "user {} at {}, {why}",
            self.config.get_user().unwrap_or("?"),
            self.info.detail
        ))
    }

    pub async fn prepare(
        &mut self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<PgRun, EngineError> {
        let control = Arc::new(connect(&own(&self.config), &self.tls, "the server").await?);
        let (schema, control_pid) = claim_schema(&control, &scenario.id).await?;
        let role = match &self.confinement {
            Confinement::Role { grant } => Some((RunRole::new(&schema)?, *grant)),
            Confinement::User { .. } => None,
        };
        lock(&self.live).push(LiveRun {
            schema: schema.clone(),
            role: role.as_ref().map(|(role, _)| role.name.clone()),
            pids: vec![control_pid],
        });
        let make = match &role {
            Some((role, grant)) => role.create_sql(&self.database, *grant, true),
            None => format!(
                "CREATE SCHEMA {schema}; COMMENT ON SCHEMA {schema} IS '{SCHEMA_COMMENT}'; \
                 SET search_path TO {schema}"
            ),
        };
        control.batch_execute(&make).await.map_err(pg_error)?;
        // The scenario's own SQL runs as the run's role, if it has one: the setup and the final
        // query on a connection of their own, the steps on the sessions'. The sessions connect
        // while the setup runs.
        let base = match &role {
            Some((role, _)) => role.config(&self.config),
            None => self.config.clone(),
        };
        let data = async {
            let data = match &role {
                // Its backends are found by the role's name: no pid to keep.
                Some(_) => Arc::new(connect_data(&base, &self.tls, &schema).await?),
                None => control.clone(),
            };
            set_up(&data, &schema, scenario, role.is_some()).await?;
            Ok(data)
        };
        let sessions = connect_sessions(&base, &self.tls, &schema, scenario, levels);
        let (data, sessions) = match tokio::try_join!(data, sessions) {
            Ok(connected) => connected,
            Err(error) => {
                return Err(out_of_connections(&self.admin, error, scenario, role.is_some()).await)
            }
        };
        // One question, one round trip: whether the session waits for one of the run's
        // sessions and, only if it does, for whom. A lock wait has lock holders; a DEFERRABLE
        // read-only serializable transaction waiting for a safe snapshot has the serializable
        // writers it waits out (the probe counts both).
        let probe = control
            .prepare(
                "SELECT CASE WHEN pg_catalog.pg_isolation_test_session_is_blocked($1, $2) \
                 THEN pg_catalog.pg_blocking_pids($1) \
                 || pg_catalog.pg_safe_snapshot_blocking_pids($1) END",
            )
            .await
            .map_err(pg_error)?;
        let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
        if let Some(run) = lock(&self.live).iter_mut().find(|r| r.schema == schema) {
            run.pids.extend(&pids);
        }
        Ok(PgRun {
            schema,
            restore: None,
            restores_all: false,
            live: self.live.clone(),
            control,
            data,
            role: role.map(|(role, _)| role.name),
            probe,
            ticker: Ticker::new()?,
            sessions,
            pids,
        })
    }

    pub async fn close(self) -> Result<(), EngineError> {
        let cleanup = clean_up_live(&self.admin, &self.live);
        let result = match tokio::time::timeout(CLOSE_TIMEOUT, cleanup).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Postgres(format!(
                "the server did not answer the clean-up within {}",
                humantime::format_duration(CLOSE_TIMEOUT)
            ))),
        };
        drop(self.admin);
        if let Some(cluster) = self.cluster {
            tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .map_err(|e| EngineError::Setup(format!("stopping the server panicked: {e}")))??;
        }
        result
    }
}

impl PgRun {
    pub fn send(&mut self, session: usize, sql: &str) {
        let client = self.sessions[session].client.clone();
        self.sessions[session].may_wait = can_wait(sql);
        let sql = sql.to_string();
        self.sessions[session].in_flight =
            Some(Box::pin(async move { client.simple_query(&sql).await }));
    }

    /// Waits for the step's reply, asking the server on the probe schedule (`engine/probe.rs`)
    /// whether the session waits for a lock; whichever answers first decides. `first` is when
    /// the first question goes: after the head start for a step just sent, at once for one
    /// that was waiting.
    pub async fn settle(
        &mut self,
        session: usize,
        deadline: Instant,
        first: First,
    ) -> Result<Settled, EngineError> {
        let pid = self.sessions[session].pid;
        let first = match self.sessions[session].may_wait {
            true => first,
            false => First::Never,
        };
        let Some(reply) = self.sessions[session].in_flight.as_mut() else {
            return Err(EngineError::Postgres("no step in flight".into()));
        };
        let (control, probe, pids) = (&self.control, &self.probe, &self.pids);
        let ask = || async move {
            let row = control
                .query_one(probe, &[&pid, pids])
                .await
                .map_err(pg_error)?;
            Ok(row.get::<_, Option<Vec<i32>>>(0))
        };
        let blocker_pids = match watch(&self.ticker, reply, ask, first, deadline).await? {
            Watched::Reply(answer) => {
                self.sessions[session].in_flight = None;
                return step_result(answer);
            }
            Watched::TimedOut => return Ok(Settled::TimedOut),
            Watched::Waits(blocker_pids) => blocker_pids,
        };
        let mut blocked_by: Vec<usize> = blocker_pids
            .iter()
            .filter_map(|p| self.pids.iter().position(|x| x == p))
            .collect();
        blocked_by.sort_unstable();
        blocked_by.dedup();
        Ok(Settled::Waiting(blocked_by))
    }

    pub async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        let replies = self.sessions.iter_mut().map(|s| s.in_flight.as_mut());
        let Some((session, answer)) = first_reply(replies, waiting, deadline).await else {
            return Ok(None);
        };
        self.sessions[session].in_flight = None;
        Ok(Some((session, step_result(answer)?)))
    }

    pub async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        // pg_cancel_backend signals the backend once. The cancel protocol (a CancelRequest to the
        // postmaster) signals it twice, backend and process group; the second signal can stay
        // pending after the first has ended the statement, and cancel the session's next
        // statement that checks for interrupts, in the next order: seen here about once in
        // 150 explores of a row-lock queue.
        let pid = self.sessions[session].pid;
        self.control
            .query_one("SELECT pg_catalog.pg_cancel_backend($1)", &[&pid])
            .await
            .map_err(pg_error)?;
        if let Some(reply) = self.sessions[session].in_flight.take() {
            // The cancelled statement answers with an error (57014); it is not a step result.
            let _ = reply.await;
        }
        Ok(())
    }

    pub async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        self.sessions[session]
            .client
            .simple_query("ROLLBACK")
            .await
            .map_err(pg_error)?;
        Ok(())
    }

    pub async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        let Settled::Done(result) = step_result(self.data.simple_query(sql).await)? else {
            return Err(EngineError::Setup(
                "the final check query returned no rows".into(),
            ));
        };
        final_rows(result, |e| match (e.kind, &self.role) {
            (ErrorKind::Privilege, Some(_)) => format!(" ({}); {CONFINED}", e.code),
            _ => String::new(),
        })
    }

    pub async fn finish(self) -> Result<(), EngineError> {
        match &self.role {
            Some(role) => {
                // Closing its connections ends its backends (the sessions', the setup's) and
                // rolls their transactions back; the role and all it owns are dropped as they
                // go. Should the drop fail (a temporary table that an exiting backend was
                // dropping at the same time, say), it is tried again once they are gone.
                drop(self.sessions);
                drop(self.data);
                if drop_role(&self.control, role).await.is_err() {
                    end_backends(&self.control, &[], Some(role)).await?;
                    drop_role(&self.control, role).await?;
                }
            }
            None => {
                for session in &self.sessions {
                    // Ends a transaction a cancelled or stuck step may have left open.
                    let _ = session.client.simple_query("ROLLBACK").await;
                }
                drop(self.sessions);
                drop_schema(&self.control, &self.schema).await?;
            }
        }
        lock(&self.live).retain(|run| run.schema != self.schema);
        Ok(())
    }
}
