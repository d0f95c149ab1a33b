//! A prepared run's methods: what the runner calls, passed on to the engine's run and, for
//! Redis steps, to the run's Redis.

use tokio::time::Instant;

use super::{redis, Engine, EngineError, Run, Settled, Until};
use crate::level::Level;
use crate::scenario::{Node, ReplicaAction, Scenario, PRIMARY};
use crate::timeline::{ResultSet, StepResult};

impl Run {
    /// Sends a step's SQL on a session's connection to `node`, without waiting for its answer.
    pub fn send(&mut self, session: usize, node: Node, sql: &str) {
        match node {
            PRIMARY => self.db.send(session, sql),
            node => self.db.send_to(session, node, sql),
        }
    }

    /// Sends a replica step for `session` (`pause`, `resume`, `wait LSN`), without waiting for
    /// its answer; settled like a step.
    pub fn send_replica(
        &mut self,
        session: usize,
        action: ReplicaAction,
    ) -> Result<(), EngineError> {
        self.db.send_replica(session, action)
    }

    /// Waits until the step sent on `session` finishes or the database says it waits.
    pub async fn settle(
        &mut self,
        session: usize,
        deadline: Instant,
    ) -> Result<Settled, EngineError> {
        self.db.settle(session, deadline).await
    }

    /// After another step finished: has the waiting step on `session` finished, or does it wait still?
    pub async fn recheck(
        &mut self,
        session: usize,
        deadline: Instant,
    ) -> Result<Settled, EngineError> {
        self.db.recheck(session, deadline).await
    }

    /// How many times the run has asked the database whether a step waits (what waiting costs
    /// the server; `cargo bench --bench explore` prints it per order).
    pub fn questions(&self) -> u64 {
        self.db.questions()
    }

    /// Whether the engine ends a cycle of waits by itself (picks a deadlock victim) rather than
    /// refusing the step that would close it.
    pub fn breaks_deadlocks(&self) -> bool {
        self.db.breaks_deadlocks()
    }

    /// Waits until one of the `waiting` sessions' steps ends by itself (a deadlock victim, say).
    /// `None` when none does before the deadline, or when the engine never ends a wait by itself.
    pub async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        self.db.wait_any(waiting, deadline).await
    }

    /// Cancels the step in flight on `session` and returns once it has ended.
    pub async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        self.db.cancel(session).await
    }

    /// Rolls back whatever transaction `session` has open.
    pub async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        self.db.rollback(session).await
    }

    /// Keeps a copy of the data as the setup left it, for [`Run::reset`]. Once per run.
    pub async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        self.db.save_initial_state().await
    }

    /// Rolls back every session and puts the data back as the setup left it (DELETE and
    /// INSERT from the saved copy: no DDL), so the same connections can replay another order;
    /// where a session may have left state on its connection, the connections are reset too.
    pub async fn reset(&mut self) -> Result<(), EngineError> {
        if let Some(redis) = &mut self.redis {
            redis.reset().await?;
        }
        self.db.reset(self.leaves_state).await
    }

    /// Makes the run ready to replay at another level: the data as the setup left it, and each
    /// session's connection reset (its settings, locks and temporary objects gone) and set at
    /// its level in a run at `level`. `false`, having changed nothing, where the engine cannot
    /// promise a run like a fresh one: then the caller prepares a new run. Needs
    /// [`Run::save_initial_state`].
    pub async fn relevel(
        &mut self,
        engine: &Engine,
        scenario: &Scenario,
        level: Level,
    ) -> Result<bool, EngineError> {
        let levels = engine.session_levels(scenario, level);
        if !self.db.relevel(scenario, &levels).await? {
            return Ok(false);
        }
        self.leaves_state = scenario.may_leave_session_state();
        if let Some(redis) = &mut self.redis {
            redis.reset().await?;
        }
        Ok(true)
    }

    /// Makes the run ready for another scenario at `level`, one with as many sessions and
    /// neither with Redis steps, as a fresh run of it would be ([`Engine::prepare`]): every
    /// connection reset as at login, the run's data dropped and `next`'s setup run, each
    /// session at its level. `false`, having changed nothing, where the engine cannot promise
    /// that: then the caller finishes the run and prepares a new one.
    pub async fn rebuild(
        &mut self,
        engine: &Engine,
        next: &Scenario,
        level: Level,
    ) -> Result<bool, EngineError> {
        if !self.can_serve(next) {
            return Ok(false);
        }
        let levels = engine.session_levels(next, level);
        if !self.db.rebuild(next, &levels).await? {
            return Ok(false);
        }
        self.leaves_state = next.may_leave_session_state();
        Ok(true)
    }

    /// Whether [`Run::rebuild`] may make the run one of `next`'s: the engine can rebuild it,
    /// `next` has as many sessions, and neither has Redis steps (a Redis run's connections are
    /// per session, and a lease-timed scenario runs alone anyway).
    pub fn can_serve(&self, next: &Scenario) -> bool {
        self.rebuilds() && !next.uses_redis() && next.sessions.len() == self.sessions
    }

    /// Whether the engine may serve another scenario with this run ([`Run::rebuild`]).
    pub fn rebuilds(&self) -> bool {
        self.redis.is_none() && self.db.rebuilds()
    }

    /// Whether the engine may serve another level with this run ([`Run::relevel`]); only then
    /// is saving the initial state for it worth a round trip.
    pub fn relevels(&self) -> bool {
        self.db.relevels()
    }

    /// Runs the scenario's final check query on the end state, from outside the sessions.
    pub async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        self.db.final_query(sql).await
    }

    /// The final queries' answers on the end state, then [`Run::reset`]: what `explore` does
    /// after each order, at once where the engine can (PostgreSQL sends the queries, the
    /// restore and every session's ROLLBACK without waiting for a reply in between).
    pub async fn finals_then_reset(
        &mut self,
        sqls: &[&str],
    ) -> Result<Vec<ResultSet>, EngineError> {
        let answers = self.db.finals_then_reset(sqls, self.leaves_state).await?;
        if let Some(redis) = &mut self.redis {
            redis.reset().await?;
        }
        Ok(answers)
    }

    /// Closes the sessions and removes the run's data.
    pub async fn finish(self) -> Result<(), EngineError> {
        let redis = match self.redis {
            Some(redis) => redis.finish().await,
            None => Ok(()),
        };
        self.db.finish().await?;
        redis
    }

    /// Sends a Redis step's command on the session's Redis connection and waits for the
    /// answer; `None` if there is none by `deadline`. Redis never blocks a command for another
    /// client's sake, so there is no wait to detect.
    pub(crate) async fn redis_command(
        &mut self,
        session: usize,
        command: &str,
        deadline: Instant,
    ) -> Result<Option<StepResult>, EngineError> {
        self.redis_run()?.command(session, command, deadline).await
    }

    /// Who holds a Redis key, and for how long.
    pub(crate) async fn redis_held(
        &mut self,
        key: &str,
    ) -> Result<crate::timeline::Held, EngineError> {
        self.redis_run()?.held(key).await
    }

    /// Waits, asking Redis, until it has no `key`.
    pub(crate) async fn redis_until(
        &mut self,
        session: usize,
        key: &str,
        deadline: Instant,
    ) -> Result<Until, EngineError> {
        self.redis_run()?.until_gone(session, key, deadline).await
    }

    fn redis_run(&mut self) -> Result<&mut redis::RedisRun, EngineError> {
        self.redis
            .as_mut()
            .ok_or_else(|| EngineError::Redis("the run was prepared without Redis".into()))
    }
}
