//! Sending a step and settling it: its reply, or the server's word that it waits, asked on
//! the probe schedule (`engine/probe.rs`).

use tokio::time::Instant;

use super::connect::pg_error;
use super::reply::step_result;
use super::waits::can_wait;
use super::{replica, PgRun, Sent};
use crate::engine::probe::{watch, First, Watched};
use crate::engine::{EngineError, Settled};

impl PgRun {
    /// Sends `sql` on the session's connection to the primary or, with `standby`, to the
    /// standby.
    pub fn send(&mut self, session: usize, sql: &str, standby: bool) {
        let prepares = self.prepares;
        let on = &mut self.sessions[session];
        // `prepare` connects every session with a step on the standby there
        // (`replica::connect_sessions`), and a scenario of several nodes is refused where
        // there is no standby (`cannot_run`).
        debug_assert!(!standby || on.standby.is_some(), "no standby connection");
        let (client, sql) = match (&on.standby, standby) {
            (Some((client, _)), true) => {
                on.on = Sent::Standby;
                (client.clone(), sql.to_string())
            }
            _ => {
                on.on = Sent::Primary {
                    may_wait: can_wait(sql, self.commits_can_wait),
                };
                let sql = match prepares {
                    true => on.prepared.rewrite(sql),
                    false => sql.to_string(),
                };
                (on.client.clone(), sql)
            }
        };
        on.in_flight = Some(Box::pin(async move { client.simple_query(&sql).await }));
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
        let sent = self.sessions[session].on;
        let first = match sent {
            Sent::Primary { may_wait: true } | Sent::Replica { waits: true } => first,
            _ => First::Never,
        };
        let Some(reply) = self.sessions[session].in_flight.as_mut() else {
            return Err(EngineError::Postgres("no step in flight".into()));
        };
        let (control, probe, pids) = (&self.control, &self.probe, &self.pids);
        let paused = self.replica.as_ref().is_some_and(|r| r.paused_by.is_some());
        let with_standby = self.replica.is_some();
        let ask = || async move {
            if let Sent::Replica { .. } = sent {
                // A wait for the replay waits while, and only while, it is paused.
                return Ok(paused.then(|| vec![replica::STANDBY_PID]));
            }
            let row = match with_standby {
                true => control.query_one(probe, &[&pid, pids, &paused]).await,
                false => control.query_one(probe, &[&pid, pids]).await,
            };
            Ok(row.map_err(pg_error)?.get::<_, Option<Vec<i32>>>(0))
        };
        let blocker_pids = match watch(&self.ticker, reply, ask, first, deadline).await? {
            Watched::Reply(answer) => {
                self.sessions[session].in_flight = None;
                return step_result(answer);
            }
            Watched::TimedOut => return Ok(Settled::TimedOut),
            Watched::Waits(blocker_pids) => blocker_pids,
        };
        let paused_by = self.replica.as_ref().and_then(|r| r.paused_by);
        let mut blocked_by: Vec<usize> = blocker_pids
            .iter()
            .filter_map(|p| match *p {
                replica::STANDBY_PID => paused_by,
                p => self.pids.iter().position(|x| *x == p),
            })
            .collect();
        blocked_by.sort_unstable();
        blocked_by.dedup();
        Ok(Settled::Waiting(blocked_by))
    }
}
