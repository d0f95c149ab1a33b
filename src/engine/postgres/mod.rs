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
mod prepared;
mod replica;
mod reply;
mod restore;
mod role;
mod session;
mod settle;
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

use crate::engine::probe::Ticker;

pub(super) use backend::open;

use crate::engine::cluster::{Cluster, CATALOG_VACUUM};
use crate::engine::{final_rows, first_reply, EngineError, EngineInfo, Settled};
use crate::level::SessionLevel;
use crate::scenario::{EngineKind, Scenario, Topology};
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
    /// The hot standby, where there is one.
    standby: Option<replica::Standby>,
}

pub struct PgRun {
    schema: String,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    restore: Option<String>,
    /// Whether the restore gives back exactly what the setup made ([`PgRun::relevel`]).
    restores_all: bool,
    /// Whether the scenario may define a custom setting, which no reset undefines
    /// ([`restore::may_define_settings`]).
    defines_settings: bool,
    /// Whether a `COMMIT` of the scenario can wait for another session
    /// ([`waits::commits_can_wait`]); where it cannot, it is never asked about.
    commits_can_wait: bool,
    /// Whether the scenario's queries go as prepared statements after the first reset
    /// ([`prepared::scenario_prepares`]; never with a standby).
    prepares: bool,
    /// Each session's level, as its connection was last set.
    levels: Vec<SessionLevel>,
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
    /// The standby, on a primary with one.
    replica: Option<replica::Replica>,
}

struct PgSession {
    client: Arc<Client>,
    pid: i32,
    /// Its connection's `application_name`, `anomalies <session>`, which `DISCARD ALL` puts
    /// back to the one it logged in with: set again on every reset.
    name: String,
    /// Its connection to the standby and that backend's pid, for a session with steps there.
    standby: Option<(Arc<Client>, i32)>,
    in_flight: Option<Reply>,
    /// The queries prepared on its connection to the primary.
    prepared: prepared::Prepared,
    /// Where the step in flight went, which says how to ask whether it waits.
    on: Sent,
}

/// Where a session's step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// SQL on the primary (or the one server); `may_wait`: whether it can wait at all
    /// ([`can_wait`]).
    Primary { may_wait: bool },
    /// SQL on the standby, which waits for no session: its reads take no lock another
    /// read-only session holds.
    Standby,
    /// A replica step; `waits`: it waits for the standby's replay (`wait LSN`).
    Replica { waits: bool },
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

    /// Starts a throwaway server from installed binaries; with `standby`, a primary and a hot
    /// standby.
    pub async fn throwaway(bindir: &Path, standby: bool) -> Result<PgEngine, EngineError> {
        let dir = bindir.to_path_buf();
        let cluster = tokio::task::spawn_blocking(move || match standby {
            true => Cluster::start_pair(&dir),
            false => Cluster::start(&dir),
        })
        .await
        .map_err(|e| EngineError::Setup(format!("starting the server panicked: {e}")))??;
        let config = cluster.config();
        let tls = Tls::none();
        let admin = connect(&own(&config), &tls, "the throwaway cluster").await?;
        let detail = match standby {
            true => "throwaway primary and hot standby".into(),
            false => "throwaway cluster".into(),
        };
        let mut engine = PgEngine::new(config, tls, admin, detail, Some(cluster)).await?;
        clear_cluster(&engine.admin).await?;
        if standby {
            engine.standby = Some(replica::start_standby(&mut engine).await?);
        }
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
            standby: None,
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
        &self,
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
        // Only a scenario of several nodes reads from the standby; the rest run on the primary
        // as on one server, and never wait for it.
        let standby = self
            .standby
            .as_ref()
            .filter(|_| scenario.topology == Topology::PrimaryStandby);
        if let Some(standby) = standby {
            // The role logs in on the standby once the standby has it.
            replica::catch_up(&control, &standby.admin).await?;
        }
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
        let on_standby = async {
            match standby {
                Some(standby) => {
                    let base = match &role {
                        Some((role, _)) => role.config(&standby.config),
                        None => standby.config.clone(),
                    };
                    replica::connect_sessions(&base, &standby.tls, &schema, scenario, levels).await
                }
                None => Ok(Vec::new()),
            }
        };
        let (data, mut sessions, on_standby) = match tokio::try_join!(data, sessions, on_standby) {
            Ok(connected) => connected,
            Err(error) => {
                return Err(out_of_connections(&self.admin, error, scenario, role.is_some()).await)
            }
        };
        for (session, standby) in sessions.iter_mut().zip(on_standby) {
            session.standby = standby;
        }
        let replica = match standby {
            Some(standby) => {
                // The standby's sessions read the setup's rows.
                replica::catch_up(&control, &standby.admin).await?;
                Some(replica::Replica {
                    admin: standby.admin.clone(),
                    paused_by: None,
                    held: standby.held.clone(),
                })
            }
            None => None,
        };
        // One question, one round trip: whether the session waits for one of the run's
        // sessions and, only if it does, for whom. A lock wait has lock holders; a DEFERRABLE
        // read-only serializable transaction waiting for a safe snapshot has the serializable
        // writers it waits out (the probe counts both).
        let probe = match replica {
            Some(_) => replica::PROBE_WITH_STANDBY,
            None => {
                "SELECT CASE WHEN pg_catalog.pg_isolation_test_session_is_blocked($1, $2) \
                 THEN pg_catalog.pg_blocking_pids($1) \
                 || pg_catalog.pg_safe_snapshot_blocking_pids($1) END"
            }
        };
        let probe = control.prepare(probe).await.map_err(pg_error)?;
        let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
        if let Some(run) = lock(&self.live).iter_mut().find(|r| r.schema == schema) {
            run.pids.extend(&pids);
        }
        Ok(PgRun {
            schema,
            restore: None,
            restores_all: false,
            defines_settings: restore::may_define_settings(scenario),
            commits_can_wait: waits::commits_can_wait(scenario, replica.is_some()),
            prepares: replica.is_none() && prepared::scenario_prepares(scenario),
            levels: levels.to_vec(),
            live: self.live.clone(),
            control,
            data,
            role: role.map(|(role, _)| role.name),
            probe,
            ticker: Ticker::new()?,
            sessions,
            pids,
            replica,
        })
    }

    pub async fn close(self) -> Result<(), EngineError> {
        let held = |s: &&replica::Standby| s.held.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(standby) = self.standby.as_ref().filter(held) {
            // An interrupted run paused it: the clean-up's drops must replay.
            let _ = standby
                .admin
                .simple_query("SELECT pg_catalog.pg_wal_replay_resume()")
                .await;
        }
        let cleanup = clean_up_live(&self.admin, &self.live);
        let result = match tokio::time::timeout(CLOSE_TIMEOUT, cleanup).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Postgres(format!(
                "the server did not answer the clean-up within {}",
                humantime::format_duration(CLOSE_TIMEOUT)
            ))),
        };
        if let Some(cluster) = self
            .cluster
            .as_ref()
            .filter(|c| result.is_ok() && c.vacuum_due())
        {
            // The runs' dead catalog rows made reusable; a failure only leaves them for the
            // compaction at a later start.
            let vacuum = self.admin.batch_execute(CATALOG_VACUUM);
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_TIMEOUT, vacuum).await {
                cluster.vacuumed();
            }
        }
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
        let on = &self.sessions[session];
        let (server, pid) = match (on.on, &on.standby, &self.replica) {
            // A replica step is the tool's own: dropping it is enough.
            (Sent::Replica { .. }, _, _) => {
                self.sessions[session].in_flight = None;
                return Ok(());
            }
            (Sent::Standby, Some((_, pid)), Some(replica)) => (replica.admin.clone(), *pid),
            _ => (self.control.clone(), on.pid),
        };
        server
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
        let on = &self.sessions[session];
        on.client.simple_query("ROLLBACK").await.map_err(pg_error)?;
        if let Some((standby, _)) = &on.standby {
            standby.simple_query("ROLLBACK").await.map_err(pg_error)?;
        }
        Ok(())
    }

    pub async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        let answer = self.data.simple_query(sql).await;
        self.final_answer(answer)
    }

    /// A final query's answer as the outcome reads it.
    fn final_answer(
        &self,
        answer: Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>,
    ) -> Result<ResultSet, EngineError> {
        let Settled::Done(result) = step_result(answer)? else {
            return Err(EngineError::Setup(
                "the final check query returned no rows".into(),
            ));
        };
        final_rows(result, |e| match (e.kind, &self.role) {
            (ErrorKind::Privilege, Some(_)) => format!(" ({}); {CONFINED}", e.code),
            _ => String::new(),
        })
    }

    pub async fn finish(mut self) -> Result<(), EngineError> {
        self.resume_standby().await?;
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
