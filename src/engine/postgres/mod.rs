//! PostgreSQL through tokio-postgres: one connection per session, one control connection that
//! sets up data and asks the server whether a session waits.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Config, SimpleQueryMessage, Statement};

mod backend;
mod cleanup;
mod connect;
mod passfile;
mod reply;
mod tls;

use cleanup::{claim_schema, drop_schema, end_backends, lock, own, sweep_stale_schemas};
use cleanup::{Live, LiveRun, CLOSE_TIMEOUT, SCHEMA_COMMENT};
use connect::{characteristics_sql, config_and_tls, connect_bound, describe, no_answer};
use connect::{connect, error_text, pg_error};
use reply::{first_value, step_result};
use tls::Tls;

pub(super) use backend::open;

use crate::engine::cluster::Cluster;
use crate::engine::{snapshot_sql, EngineError, EngineInfo, Settled};
use crate::level::SessionLevel;
use crate::scenario::{EngineKind, Scenario};
use crate::timeline::{ResultSet, StepResult};

type Reply = Pin<Box<dyn Future<Output = Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>>>>;

pub struct PgEngine {
    pub info: EngineInfo,
    config: Config,
    tls: Tls,
    admin: Arc<Client>,
    /// Runs not yet finished; `close` cleans up what an interrupted run left.
    live: Live,
    cluster: Option<Cluster>,
}

pub struct PgRun {
    schema: String,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    restore: Option<String>,
    live: Live,
    control: Arc<Client>,
    probe: Statement,
    blockers: Statement,
    sessions: Vec<PgSession>,
    pids: Vec<i32>,
}

struct PgSession {
    client: Arc<Client>,
    pid: i32,
    in_flight: Option<Reply>,
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
        let engine =
            tokio::time::timeout(bound, started)
                .await
                .map_err(|_| EngineError::Connect {
                    target,
                    reason: no_answer(bound),
                })??;
        sweep_stale_schemas(&engine.admin).await?;
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
        // The cluster is ours alone: clear what a run killed without a chance to clean up left.
        let stale = engine
            .admin
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'anomalies\\_%'",
                &[],
            )
            .await
            .map_err(pg_error)?;
        for row in stale {
            let name: String = row.get(0);
            drop_schema(&engine.admin, &name).await?;
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
        let version = first_value(
            &admin
                .simple_query("SHOW server_version")
                .await
                .map_err(pg_error)?,
        )
        .unwrap_or_default();
        let version = version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(PgEngine {
            info: EngineInfo {
                name: EngineKind::Postgres,
                version,
                detail,
            },
            config,
            tls,
            admin: Arc::new(admin),
            live: Live::default(),
            cluster,
        })
    }

    /// A session's connection refused because the server has no slot left (53300) says how many
    /// the scenario needs and how many the server allows; any other error stays as it is.
    async fn out_of_connections(&self, error: EngineError, scenario: &Scenario) -> EngineError {
        let EngineError::Connect { target, reason } = &error else {
            return error;
        };
        if !reason.contains("(53300)") {
            return error;
        }
        let allowed = self
            .admin
            .simple_query("SHOW max_connections")
            .await
            .ok()
            .and_then(|messages| first_value(&messages))
            .unwrap_or_else(|| "?".into());
        EngineError::Setup(format!(
            "the scenario's {} sessions need {} connections to {target} (one per session and a \
             control connection), but the server allows max_connections = {allowed}, some of \
             them taken by others; it said: {reason}",
            scenario.sessions.len(),
            scenario.sessions.len() + 1
        ))
    }

    /// On a user's server, who the tool connects as and where; `None` on a throwaway cluster.
    pub fn users_server(&self) -> Option<String> {
        if self.cluster.is_some() {
            return None;
        }
        Some(format!(
            "user {} at {}",
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
        lock(&self.live).push(LiveRun {
            schema: schema.clone(),
            pids: vec![control_pid],
        });
        control
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; COMMENT ON SCHEMA {schema} IS '{SCHEMA_COMMENT}'; \
                 SET search_path TO {schema}"
            ))
            .await
            .map_err(pg_error)?;
        control.batch_execute(&scenario.setup).await.map_err(|e| {
            EngineError::Setup(format!(
                "{}: the setup SQL failed on PostgreSQL: {}",
                scenario.setup_at,
                error_text(&e)
            ))
        })?;
        // The setup is the scenario's own SQL and may have moved the control connection's
        // search_path (`SET search_path TO public`): the tool's own queries on it (the final
        // query, the data reset) read the run's schema whatever the setup did.
        control
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .map_err(pg_error)?;
        let probe = control
            .prepare("SELECT pg_catalog.pg_isolation_test_session_is_blocked($1, $2)")
            .await
            .map_err(pg_error)?;
        // A lock wait has lock holders; a DEFERRABLE read-only serializable transaction waiting
        // for a safe snapshot has the serializable writers it waits out (the probe counts both).
        let blockers = control
            .prepare(
                "SELECT pg_catalog.pg_blocking_pids($1) \
                 || pg_catalog.pg_safe_snapshot_blocking_pids($1)",
            )
            .await
            .map_err(pg_error)?;

        // The level is set for the session, not inside the transaction: the scenario's own first
        // statement is the one that takes the snapshot.
        let base = &self.config;
        let tls = &self.tls;
        let connects = scenario
            .sessions
            .iter()
            .zip(levels)
            .map(|(session, level)| {
                let init = format!(
                    "SET search_path TO {schema}; {}; SELECT pg_backend_pid()",
                    characteristics_sql(level)
                );
                let name = format!("anomalies {}", session.name);
                async move {
                    let mut config = base.clone();
                    config.application_name(&name);
                    let client = connect(&config, tls, "the server").await?;
                    let pid = first_value(&client.simple_query(&init).await.map_err(pg_error)?)
                        .and_then(|pid| pid.parse().ok())
                        .ok_or_else(|| EngineError::Postgres("no backend pid".into()))?;
                    Ok::<_, EngineError>(PgSession {
                        client: Arc::new(client),
                        pid,
                        in_flight: None,
                    })
                }
            });
        let sessions = match futures_util::future::try_join_all(connects).await {
            Ok(sessions) => sessions,
            Err(error) => return Err(self.out_of_connections(error, scenario).await),
        };
        let pids: Vec<i32> = sessions.iter().map(|s| s.pid).collect();
        if let Some(run) = lock(&self.live).iter_mut().find(|r| r.schema == schema) {
            run.pids.extend(&pids);
        }
        Ok(PgRun {
            schema,
            restore: None,
            live: self.live.clone(),
            control,
            probe,
            blockers,
            sessions,
            pids,
        })
    }

    pub async fn close(self) -> Result<(), EngineError> {
        let cleanup = self.clean_up_live();
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

    /// Ends what the runs that did not finish left: their backends, then their schemas.
    async fn clean_up_live(&self) -> Result<(), EngineError> {
        let mut result = Ok(());
        let left: Vec<LiveRun> = lock(&self.live).clone();
        for run in &left {
            // A session may be inside a long statement or a lock wait; the server would not
            // notice its closed connection until then, and its locks would hold up the drop.
            if !run.pids.is_empty() {
                if let Err(e) = end_backends(&self.admin, &run.pids).await {
                    result = Err(e);
                }
            }
            if let Err(e) = drop_schema(&self.admin, &run.schema).await {
                result = Err(e);
            }
        }
        result
    }
}

impl PgRun {
    pub fn send(&mut self, session: usize, sql: &str) {
        let client = self.sessions[session].client.clone();
        let sql = sql.to_string();
        self.sessions[session].in_flight =
            Some(Box::pin(async move { client.simple_query(&sql).await }));
    }

    /// Polls the step's reply and, from the first moment, asks the server whether the session
    /// waits for a lock; whichever answers first decides.
    pub async fn settle(
        &mut self,
        session: usize,
        deadline: Instant,
    ) -> Result<Settled, EngineError> {
        let pid = self.sessions[session].pid;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&pid, &self.pids];
        let Some(reply) = self.sessions[session].in_flight.as_mut() else {
            return Err(EngineError::Postgres("no step in flight".into()));
        };
        loop {
            tokio::select! {
                biased;
                answer = reply.as_mut() => {
                    self.sessions[session].in_flight = None;
                    return step_result(answer);
                }
                blocked = self.control.query_one(&self.probe, &params) => {
                    let blocked: bool = blocked.map_err(pg_error)?.get(0);
                    if blocked {
                        let row = self.control.query_one(&self.blockers, &[&pid]).await.map_err(pg_error)?;
                        let blocker_pids: Vec<i32> = row.get(0);
                        let mut blocked_by: Vec<usize> = blocker_pids
                            .iter()
                            .filter_map(|p| self.pids.iter().position(|x| x == p))
                            .collect();
                        blocked_by.sort_unstable();
                        blocked_by.dedup();
                        return Ok(Settled::Waiting(blocked_by));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(Settled::TimedOut),
            }
        }
    }

    pub async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        let replies: Vec<(usize, &mut Reply)> = self
            .sessions
            .iter_mut()
            .enumerate()
            .filter(|(index, _)| waiting.contains(index))
            .filter_map(|(index, session)| session.in_flight.as_mut().map(|r| (index, r)))
            .collect();
        if replies.is_empty() {
            return Ok(None);
        }
        let (indices, futures): (Vec<usize>, Vec<&mut Reply>) = replies.into_iter().unzip();
        let any = futures_util::future::select_all(futures.into_iter().map(|r| r.as_mut()));
        let (answer, position, _) = match tokio::time::timeout_at(deadline, any).await {
            Ok(done) => done,
            Err(_) => return Ok(None),
        };
        let session = indices[position];
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

    pub async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        let tables: Vec<String> = self
            .control
            .query(
                "SELECT c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.oid",
                &[&self.schema],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let (save, restore) = snapshot_sql(&tables, '"');
        self.control.batch_execute(&save).await.map_err(pg_error)?;
        self.restore = Some(restore);
        Ok(())
    }

    pub async fn reset(&mut self) -> Result<(), EngineError> {
        let Some(restore) = &self.restore else {
            return Err(EngineError::Setup(
                "reset before the initial state was saved".into(),
            ));
        };
        // Every session's ROLLBACK and the restore go out at once: one round trip of waiting.
        let rollbacks = self
            .sessions
            .iter()
            .map(|session| session.client.simple_query("ROLLBACK"));
        let (rolled_back, restored) = tokio::join!(
            futures_util::future::join_all(rollbacks),
            self.control.batch_execute(restore)
        );
        for result in rolled_back {
            result.map_err(pg_error)?;
        }
        restored.map_err(pg_error)
    }

    pub async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        match step_result(self.control.simple_query(sql).await)? {
            Settled::Done(StepResult::Rows(rows)) => Ok(rows),
            Settled::Done(StepResult::Failed(e)) => Err(EngineError::Setup(format!(
                "the final check query failed: {}",
                e.message
            ))),
            _ => Err(EngineError::Setup(
                "the final check query returned no rows".into(),
            )),
        }
    }

    pub async fn finish(self) -> Result<(), EngineError> {
        for session in &self.sessions {
            // Ends a transaction a cancelled or stuck step may have left open.
            let _ = session.client.simple_query("ROLLBACK").await;
        }
        drop(self.sessions);
        drop_schema(&self.control, &self.schema).await?;
        lock(&self.live).retain(|run| run.schema != self.schema);
        Ok(())
    }
}
