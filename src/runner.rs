//! Replays an interleaving over a prepared [`Run`] and records what happened as a [`Timeline`].
//!
//! Steps are sent in the interleaving's order. After each send the engine is asked whether the
//! step finished or waits for a lock; a waiting session's later steps are deferred until its
//! wait ends. Whenever a step finishes, every waiting session is checked again, so a resumed
//! step is recorded right after the step that released it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::{EngineError, Run, Settled};
use crate::scenario::{Interleaving, Scenario, StepId};
use crate::timeline::{Event, EventKind, Impossible, StepResult, Timeline};

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// How long a step may run without finishing or being seen waiting before it is cancelled.
    pub step_timeout: Duration,
    /// A step due on a session that still waits: stop and call the order impossible (explore),
    /// instead of sending the step once the wait ends (run).
    pub stop_when_impossible: bool,
}

/// Step mode: awaited before each step of the interleaving is sent, with the timeline so far
/// and the step about to go; resolves to `false` to stop the run there.
pub type Pause<'a> =
    &'a mut dyn FnMut(&Timeline, StepId) -> futures_util::future::LocalBoxFuture<'static, bool>;

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    /// `step` was sent and waits for a lock held by `blocked_by`.
    Waiting {
        step: StepId,
        blocked_by: Vec<usize>,
    },
    Failed,
}

struct Replay<'a> {
    run: &'a mut Run,
    scenario: &'a Scenario,
    options: RunOptions,
    timeline: Timeline,
    states: Vec<State>,
    deferred: Vec<VecDeque<StepId>>,
    /// The last event at which a step finished: what a step resumed now was released by.
    last_finish: Option<usize>,
}

/// Runs `interleaving` and returns its timeline, with the final check query's answer.
pub async fn replay(
    run: &mut Run,
    scenario: &Scenario,
    interleaving: &Interleaving,
    options: RunOptions,
    mut pause: Option<Pause<'_>>,
) -> Result<Timeline, EngineError> {
    let n_sessions = scenario.sessions.len();
    let mut replay = Replay {
        run,
        scenario,
        options,
        timeline: Timeline::default(),
        states: vec![State::Idle; n_sessions],
        deferred: vec![VecDeque::new(); n_sessions],
        last_finish: None,
    };
    for &id in &interleaving.steps {
        if let Some(pause) = pause.as_mut() {
            if !pause(&replay.timeline, id).await {
                replay.timeline.stopped = true;
                replay.abandon().await?;
                return Ok(replay.timeline);
            }
        }
        match &replay.states[id.session] {
            State::Failed => replay.skip(id),
            State::Waiting { blocked_by, .. } if options.stop_when_impossible => {
                replay.timeline.impossible = Some(Impossible {
                    step: id,
                    waiting_for: blocked_by.clone(),
                });
                replay.abandon().await?;
                return Ok(replay.timeline);
            }
            State::Waiting { .. } => replay.deferred[id.session].push_back(id),
            State::Idle => {
                if replay.send(id, false).await? {
                    replay.progress().await?;
                }
            }
        }
    }
    replay.drain().await?;
    if let Some(sql) = &scenario.decision.final_query {
        replay.timeline.final_state = Some(replay.run.final_query(sql).await?);
    }
    Ok(replay.timeline)
}

impl Replay<'_> {
    fn deadline(&self) -> Instant {
        Instant::now() + self.options.step_timeout
    }

    fn push(&mut self, step: StepId, sql: String, kind: EventKind, deferred: bool) -> usize {
        self.timeline.events.push(Event {
            step,
            sql,
            kind,
            deferred,
        });
        self.timeline.events.len() - 1
    }

    /// The step's SQL with `${step.column}` filled from what its session read earlier.
    fn sql(&self, id: StepId) -> String {
        self.scenario.step(id).sql.render(|hole| {
            let earlier = StepId {
                session: id.session,
                step: hole.step,
            };
            match self.timeline.result_of(earlier) {
                Some(StepResult::Rows(rows)) => match rows.first(&hole.column) {
                    Some(Some(value)) => sql_literal(value),
                    Some(None) => "NULL".to_string(),
                    None => format!("${{{}.{}}}", hole.step_name, hole.column),
                },
                _ => format!("${{{}.{}}}", hole.step_name, hole.column),
            }
        })
    }

    fn skip(&mut self, id: StepId) {
        let sql = self.sql(id);
        self.push(id, sql, EventKind::Skipped, false);
    }

    /// Sends a step and records where it stands. Returns whether it finished (or was cancelled),
    /// which may let waiting sessions go on.
    async fn send(&mut self, id: StepId, deferred: bool) -> Result<bool, EngineError> {
        let sql = self.sql(id);
        let started = Instant::now();
        self.run.send(id.session, &sql);
        match self.run.settle(id.session, self.deadline()).await? {
            Settled::Done(result) => {
                let failed = matches!(result, StepResult::Failed(_));
                let index = self.push(id, sql, EventKind::Done { result }, deferred);
                self.last_finish = Some(index);
                if failed {
                    self.fail(id.session).await?;
                }
                Ok(true)
            }
            Settled::Waiting(blocked_by) => {
                self.push(
                    id,
                    sql,
                    EventKind::Waiting {
                        blocked_by: blocked_by.clone(),
                    },
                    deferred,
                );
                self.states[id.session] = State::Waiting {
                    step: id,
                    blocked_by,
                };
                Ok(false)
            }
            Settled::TimedOut => {
                self.run.cancel(id.session).await?;
                let after_ms = started.elapsed().as_millis() as u64;
                let index = self.push(id, sql, EventKind::TimedOut { after_ms }, deferred);
                self.last_finish = Some(index);
                self.fail(id.session).await?;
                Ok(true)
            }
        }
    }

    /// Rolls a session back after a failure and skips the steps it still had.
    async fn fail(&mut self, session: usize) -> Result<(), EngineError> {
        self.run.rollback(session).await?;
        self.states[session] = State::Failed;
        while let Some(id) = self.deferred[session].pop_front() {
            self.skip(id);
        }
        Ok(())
    }

    /// A waiting step ended: record it and, if it failed, roll its session back.
    async fn resumed(
        &mut self,
        session: usize,
        result: StepResult,
        after: Option<usize>,
    ) -> Result<(), EngineError> {
        let State::Waiting { step: id, .. } = self.states[session] else {
            return Err(EngineError::Setup(
                "a step resumed that was not waiting".into(),
            ));
        };
        let failed = matches!(result, StepResult::Failed(_));
        let sql = self.sql(id);
        let kind = EventKind::Resumed { result, after };
        let index = self.push(id, sql, kind, false);
        self.last_finish = Some(index);
        self.states[session] = State::Idle;
        if failed {
            self.fail(session).await?;
        }
        Ok(())
    }

    /// After a step finished: check every waiting session again and send the steps deferred
    /// behind a wait that ended, until nothing changes.
    async fn progress(&mut self) -> Result<(), EngineError> {
        loop {
            let mut changed = false;
            let released_by = self.last_finish;
            for session in 0..self.states.len() {
                if !matches!(self.states[session], State::Waiting { .. }) {
                    continue;
                }
                match self.run.recheck(session, self.deadline()).await? {
                    Settled::Done(result) => {
                        self.resumed(session, result, released_by).await?;
                        changed = true;
                    }
                    Settled::Waiting(now_blocked_by) => {
                        if let State::Waiting { blocked_by, .. } = &mut self.states[session] {
                            *blocked_by = now_blocked_by;
                        }
                    }
                    Settled::TimedOut => {
                        self.cancel_waiting(session, false).await?;
                        changed = true;
                    }
                }
            }
            for session in 0..self.states.len() {
                while self.states[session] == State::Idle {
                    let Some(id) = self.deferred[session].pop_front() else {
                        break;
                    };
                    changed |= self.send(id, true).await?;
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    /// Cancels a waiting step that will not end by itself.
    async fn cancel_waiting(&mut self, session: usize, stuck: bool) -> Result<(), EngineError> {
        let State::Waiting {
            step: id,
            blocked_by,
        } = &self.states[session]
        else {
            return Ok(());
        };
        let (id, blocked_by) = (*id, blocked_by.clone());
        self.run.cancel(session).await?;
        let sql = self.sql(id);
        let kind = if stuck {
            EventKind::Stuck { blocked_by }
        } else {
            EventKind::TimedOut {
                after_ms: self.options.step_timeout.as_millis() as u64,
            }
        };
        let index = self.push(id, sql, kind, false);
        self.last_finish = Some(index);
        self.fail(session).await
    }

    /// Ends every wait without recording it: the order was impossible.
    async fn abandon(&mut self) -> Result<(), EngineError> {
        for session in 0..self.states.len() {
            if matches!(self.states[session], State::Waiting { .. }) {
                self.run.cancel(session).await?;
                self.run.rollback(session).await?;
                self.states[session] = State::Failed;
            }
        }
        Ok(())
    }

    /// The interleaving is over. Waits that form a cycle end by themselves (the database picks a
    /// deadlock victim); waits on a session that has nothing left to run never end.
    async fn drain(&mut self) -> Result<(), EngineError> {
        loop {
            let waiting: Vec<usize> = (0..self.states.len())
                .filter(|s| matches!(self.states[*s], State::Waiting { .. }))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let cycle = waiting.iter().any(|s| match &self.states[*s] {
                State::Waiting { blocked_by, .. } => blocked_by.iter().any(|b| waiting.contains(b)),
                _ => false,
            });
            if cycle {
                if let Some((session, Settled::Done(result))) =
                    self.run.wait_any(&waiting, self.deadline()).await?
                {
                    self.cycle_broken(session, result, &waiting).await?;
                    self.progress().await?;
                    continue;
                }
            }
            for session in waiting {
                self.cancel_waiting(session, true).await?;
            }
            self.progress().await?;
        }
    }

    /// A wait in a cycle ended by itself. If it ended well, only another waiting session ending
    /// (the database's deadlock victim) can have released it, since the idle sessions do
    /// nothing: that one is recorded first, even when its answer reached us second.
    async fn cycle_broken(
        &mut self,
        session: usize,
        result: StepResult,
        waiting: &[usize],
    ) -> Result<(), EngineError> {
        if !matches!(result, StepResult::Failed(_)) {
            let others: Vec<usize> = waiting.iter().copied().filter(|s| *s != session).collect();
            if let Some((victim, Settled::Done(victim_result))) =
                self.run.wait_any(&others, self.deadline()).await?
            {
                self.resumed(victim, victim_result, None).await?;
                let released_by = self.last_finish;
                return self.resumed(session, result, released_by).await;
            }
        }
        self.resumed(session, result, None).await
    }
}

/// A value read by the database, written back into SQL: numbers as they are, text quoted.
fn sql_literal(value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}
