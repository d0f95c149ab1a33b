//! One scenario at one level on MariaDB: a worker per session, and a control worker that asks
//! the server whether a session waits, cancels, and reads the end state.

use tokio::sync::oneshot;
use tokio::time::Instant;

use async_trait::async_trait;

use super::characteristics_sql;
use super::footprint::{drop_database, lock, Live};
use super::galera::hold;
use super::probe::{get_lock_name, lock_wait};
use super::waits;
use super::worker::{received, step_result, Answer, Worker};
use crate::engine::probe::{watch, First, Ticker, Watched};
use crate::engine::{final_rows, first_reply, snapshot_sql, BackendRun, EngineError, Settled};
use crate::level::SessionLevel;
use crate::scenario::{ReplicaAction, Scenario};
use crate::timeline::{ResultSet, StepResult};

pub(super) struct MariaRun {
    pub(super) database: String,
    pub(super) live: Live,
    pub(super) control: Worker,
    /// On a Galera cluster, a control worker on each node after the first (the first is
    /// `control`): connection ids and InnoDB's lock tables are each node's own. Each reads
    /// with `wsrep_sync_wait = 1`, so that a read of it waits until its node has applied what
    /// the cluster committed.
    pub(super) other_nodes: Vec<Worker>,
    /// On a Galera cluster, for a scenario with replica steps, a connection per node that
    /// holds its appliers (`replica = "pause"`) and releases them (`"resume"`).
    pub(super) holders: Vec<Worker>,
    pub(super) sessions: Vec<MariaSession>,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    pub(super) restore: Option<String>,
    /// Whether the restore gives back all the setup made ([`MariaRun::save_initial_state`]),
    /// so that the run may serve another level.
    pub(super) restores_all: bool,
    /// Whether a commit of the scenario's can wait for another session
    /// ([`waits::commits_can_wait`]).
    pub(super) commits_can_wait: bool,
    /// Each session's level, as its connection was last set.
    pub(super) levels: Vec<SessionLevel>,
    pub(super) ticker: Ticker,
}

pub(super) struct MariaSession {
    pub(super) worker: Worker,
    pub(super) in_flight: Option<oneshot::Receiver<Answer>>,
    /// Whether the step in flight can wait at all ([`waits::can_wait`]); if not, it is never
    /// asked about.
    pub(super) may_wait: bool,
    /// The node it is connected to: 0 on one server.
    pub(super) node: usize,
    /// Whether it sends SQL at all (a session of replica steps only does not).
    pub(super) runs_sql: bool,
}

/// What a replica step answers: the last write set its node has applied.
const APPLIED: &str = "SELECT VARIABLE_VALUE AS applied FROM information_schema.GLOBAL_STATUS \
     WHERE VARIABLE_NAME = 'WSREP_LAST_COMMITTED'";

/// Waits other than InnoDB's row and table locks, as the connection's state names them: a
/// `GET_LOCK` (`User lock`) or a metadata lock (`Waiting for table metadata lock`).
fn waits_by_state(state: &str) -> bool {
    state == "User lock" || (state.starts_with("Waiting for") && state.ends_with("lock"))
}

impl MariaRun {
    async fn watch(
        &mut self,
        session: usize,
        deadline: Instant,
        first: First,
    ) -> Result<Settled, EngineError> {
        let (id, node) = (
            self.sessions[session].worker.id,
            self.sessions[session].node,
        );
        let Some(mut reply) = self.sessions[session].in_flight.take() else {
            return Err(EngineError::Mariadb("no step in flight".into()));
        };
        let first = match self.sessions[session].may_wait {
            true => first,
            false => First::Never,
        };
        let probe = || self.probe(id, node);
        let watched = watch(&self.ticker, &mut reply, probe, first, deadline).await;
        match watched? {
            Watched::Reply(answer) => Ok(Settled::Done(
                self.across_nodes(session, step_result(received(answer)?)?),
            )),
            Watched::Waits(blocked_by) => {
                self.sessions[session].in_flight = Some(reply);
                Ok(Settled::Waiting(blocked_by))
            }
            Watched::TimedOut => {
                self.sessions[session].in_flight = Some(reply);
                Ok(Settled::TimedOut)
            }
        }
    }

    /// On a Galera cluster, a deadlock error (1213) for a session that no other session shares
    /// a node with came from another node: the node's certification refused its commit, or an
    /// applied write set from another node aborted it. Said as what it is.
    fn across_nodes(&self, session: usize, result: StepResult) -> StepResult {
        let node = self.sessions[session].node;
        let alone = self
            .sessions
            .iter()
            .enumerate()
            .all(|(other, s)| other == session || s.node != node || !s.runs_sql);
        match result {
            StepResult::Failed(mut error)
                if !self.other_nodes.is_empty() && alone && error.code == "1213" =>
            {
                error.message = format!(
                    "another node committed a conflicting write first (Galera: {})",
                    error.message
                );
                StepResult::Failed(error)
            }
            result => result,
        }
    }

    fn session_of(&self, id: u32, node: usize) -> Option<usize> {
        self.sessions
            .iter()
            .position(|s| s.worker.id == id && s.node == node)
    }

    /// The control worker on `node`.
    pub(super) fn control_on(&self, node: usize) -> &Worker {
        match node {
            0 => &self.control,
            node => &self.other_nodes[node - 1],
        }
    }

    /// Waits until every node has applied what the cluster committed (a read at
    /// `wsrep_sync_wait = 1` on each): after the setup and a reset, so that every session
    /// reads the same data. Nothing on one server.
    pub(super) async fn nodes_caught_up(&self) -> Result<(), EngineError> {
        for worker in &self.other_nodes {
            worker.query("SELECT 1").await?;
        }
        Ok(())
    }

    /// Asks the server once whether connection `id` on `node` waits, and for which sessions.
    async fn probe(&self, id: u32, node: usize) -> Result<Option<Vec<usize>>, EngineError> {
        let control = self.control_on(node);
        let sets = control
            .query(&format!(
                "SHOW ENGINE INNODB STATUS; \
                 SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = {id}"
            ))
            .await?;
        let status = sets
            .first()
            .and_then(|set| set.rows.first())
            .and_then(|row| row.get(2).cloned().flatten())
            .unwrap_or_default();
        if let Some(blockers) = lock_wait(&status, id) {
            let mut sessions: Vec<usize> = blockers
                .iter()
                .filter_map(|b| self.session_of(*b, node))
                .collect();
            sessions.sort_unstable();
            sessions.dedup();
            return Ok(Some(sessions));
        }
        let row = sets.get(1).and_then(|set| set.rows.first());
        let column = |i: usize| row.and_then(|row| row.get(i).cloned().flatten());
        let state = column(0).unwrap_or_default();
        if !waits_by_state(&state) {
            return Ok(None);
        }
        // The state is the waiter's own word, and it lags: a released lock is granted to the
        // waiter at once, but its state says `User lock` until its thread runs again. For a
        // GET_LOCK the lock's owner is never stale: ask who holds the name it waits for.
        let statement = column(1).unwrap_or_default();
        let Some(name) = get_lock_name(&statement) else {
            return Ok(Some(Vec::new()));
        };
        let holder = control
            .value(&format!("SELECT IS_USED_LOCK({name})"))
            .await?
            .and_then(|holder| holder.parse::<u32>().ok());
        Ok(match holder {
            // Free, or already granted to it: the wait is over, its answer is on the way.
            None => None,
            Some(holder) if holder == id => None,
            Some(holder) => Some(self.session_of(holder, node).into_iter().collect()),
        })
    }

    /// `COM_RESET_CONNECTION` on every session's connection, which ends what it left (its
    /// transaction, variables, temporary tables, locks), then its database and `levels` set as
    /// at connect. False, with nothing changed, where the server has no such reset (before
    /// MariaDB 10.2.4).
    async fn reset_connections(&mut self, levels: &[SessionLevel]) -> Result<bool, EngineError> {
        let resets = self.sessions.iter().map(|session| session.worker.reset());
        for reset in futures_util::future::join_all(resets).await {
            if !reset? {
                return Ok(false);
            }
        }
        let sets = self.sessions.iter().zip(levels).map(|(session, level)| {
            let set = format!("USE `{}`; {}", self.database, characteristics_sql(level));
            async move { session.worker.query(&set).await }
        });
        futures_util::future::try_join_all(sets).await?;
        self.levels = levels.to_vec();
        Ok(true)
    }

    /// Every session's ROLLBACK and the restore, at once; then every node caught up.
    async fn restore_data(&mut self) -> Result<(), EngineError> {
        let Some(restore) = self.restore.clone() else {
            return Err(EngineError::Setup(
                "reset before the initial state was saved".into(),
            ));
        };
        // Every session's ROLLBACK and the restore go out at once.
        let rollbacks = self
            .sessions
            .iter()
            .map(|session| session.worker.submit("ROLLBACK"))
            .collect::<Vec<_>>();
        let restored = self.control.submit(&restore);
        for answer in futures_util::future::join_all(rollbacks).await {
            received(answer)?.map_err(|e| EngineError::Mariadb(e.to_string()))?;
        }
        received(restored.await)?
            .map(|_| ())
            .map_err(|e| EngineError::Mariadb(e.to_string()))?;
        self.nodes_caught_up().await
    }
}

#[async_trait(?Send)]
impl BackendRun for MariaRun {
    fn send(&mut self, session: usize, sql: &str) {
        let answer = self.sessions[session].worker.submit(sql);
        self.sessions[session].in_flight = Some(answer);
        self.sessions[session].may_wait = waits::can_wait(sql, self.commits_can_wait);
    }

    /// On a Galera node: `pause` holds the node's appliers (`FLUSH TABLES WITH READ LOCK`, on
    /// a connection of its own: see `galera/hold.rs`), `resume` releases them and returns once
    /// the node has applied what the cluster committed (a read at `wsrep_sync_wait = 1`).
    fn send_replica(&mut self, session: usize, action: ReplicaAction) -> Result<(), EngineError> {
        let node = self.sessions[session].node;
        let Some(holder) = self.holders.get(node) else {
            return Err(EngineError::Setup(
                "a replica step needs a node of a cluster, and this run has none".into(),
            ));
        };
        let sql = match action {
            ReplicaAction::Pause => format!("{}; {APPLIED}", hold::HOLD_APPLIERS),
            ReplicaAction::Resume => format!(
                "{}; SET SESSION wsrep_sync_wait = 1; {APPLIED}",
                hold::RELEASE_APPLIERS
            ),
            ReplicaAction::Wait(_) => {
                return Err(EngineError::Setup(
                    "`replica = \"wait LSN\"` is PostgreSQL's; a Galera node has no LSN".into(),
                ))
            }
        };
        self.sessions[session].in_flight = Some(holder.submit(&sql));
        self.sessions[session].may_wait = true;
        Ok(())
    }

    /// Waits for the step's reply, asking the server on the probe schedule (`engine/probe.rs`)
    /// whether the session waits; whichever answers first decides.
    async fn settle(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        self.watch(session, deadline, First::HeadStart).await
    }

    /// A waiting step is asked about at once.
    async fn recheck(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        self.watch(session, deadline, First::Now).await
    }

    async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        let replies = self.sessions.iter_mut().map(|s| s.in_flight.as_mut());
        let Some((session, answer)) = first_reply(replies, waiting, deadline).await else {
            return Ok(None);
        };
        self.sessions[session].in_flight = None;
        let result = self.across_nodes(session, step_result(received(answer)?)?);
        Ok(Some((session, Settled::Done(result))))
    }

    async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        let (id, node) = (
            self.sessions[session].worker.id,
            self.sessions[session].node,
        );
        self.control_on(node)
            .query(&format!("KILL QUERY {id}"))
            .await?;
        if let Some(reply) = self.sessions[session].in_flight.take() {
            // The killed statement answers 1317; it is not a step result.
            let _ = reply.await;
        }
        Ok(())
    }

    async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        self.sessions[session]
            .worker
            .query("ROLLBACK")
            .await
            .map(|_| ())
    }

    async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        let tables = self
            .control
            .column(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                self.database
            ))
            .await?;
        let (save, restore) = snapshot_sql(&tables, '`');
        self.control.query(&save).await?;
        // The tables go back in name order: the restore checks no foreign key meanwhile. They
        // are the run's database's, whatever a final query did with `USE`.
        self.restore = Some(format!(
            "USE `{}`; SET foreign_key_checks = 0; {restore} SET foreign_key_checks = 1",
            self.database
        ));
        // DELETE and INSERT give back the rows, but not an AUTO_INCREMENT counter, a
        // sequence's position, a system-versioned table's history, nor what a trigger does on
        // the way.
        self.restores_all = self
            .control
            .value(&format!(
                "SELECT NOT EXISTS (SELECT 1 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{db}' AND (AUTO_INCREMENT IS NOT NULL \
                 OR TABLE_TYPE NOT IN ('BASE TABLE', 'VIEW'))) \
                 AND NOT EXISTS (SELECT 1 FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = '{db}')",
                db = self.database
            ))
            .await?
            .as_deref()
            == Some("1");
        Ok(())
    }

    /// Puts the data back and gives every session a connection as good as new at `levels`:
    /// `COM_RESET_CONNECTION` ends what a session left (its transaction, variables, temporary
    /// tables, locks), then the database and the level are set as at connect. Only on one
    /// server (a cluster's nodes would each need their catch-up), with no replica step, and
    /// where the restore gives back everything the setup made.
    async fn relevel(
        &mut self,
        next: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        if !self.relevels() || self.restore.is_none() || !self.restores_all {
            return Ok(false);
        }
        // Every session's connection is one server's: where it lacks the reset, none was done,
        // and a fresh run is made.
        if !self.reset_connections(levels).await? {
            return Ok(false);
        }
        self.restore_data().await?;
        self.commits_can_wait = waits::commits_can_wait(next, false);
        Ok(true)
    }

    fn relevels(&self) -> bool {
        self.other_nodes.is_empty() && self.holders.is_empty()
    }

    /// Puts the data back for another order; with `connections`, every connection is reset
    /// too, at the levels it has. A server without the reset cannot: that is said, rather than
    /// an order run on what the one before left.
    async fn reset(&mut self, connections: bool) -> Result<(), EngineError> {
        if connections {
            let levels = self.levels.clone();
            if !self.reset_connections(&levels).await? {
                return Err(EngineError::Mariadb(
                    "a session may leave state on its connection, and this server cannot reset \
                     one (COM_RESET_CONNECTION is MariaDB 10.2.4's)"
                        .into(),
                ));
            }
        }
        self.restore_data().await
    }

    async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        final_rows(
            step_result(received(self.control.submit(sql).await)?)?,
            |_| String::new(),
        )
    }

    fn questions(&self) -> u64 {
        self.ticker.asked()
    }

    fn bench_workers(&mut self) -> Result<Vec<crate::engine::bench::Worker>, EngineError> {
        Ok(super::bench::workers(self))
    }

    async fn finish(self: Box<Self>) -> Result<(), EngineError> {
        for session in &self.sessions {
            // Ends a transaction a cancelled or stuck step may have left open.
            let _ = session.worker.query("ROLLBACK").await;
        }
        drop(self.sessions);
        drop_database(&self.control, &self.database).await?;
        lock(&self.live).retain(|run| run.database != self.database);
        Ok(())
    }
}
