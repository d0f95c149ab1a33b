//! Replays an interleaving over a prepared [`Run`] and records what happened as a [`Timeline`].
//!
//! Steps are sent in the interleaving's order. After each send the engine is asked whether the
//! step finished or waits for a lock; a waiting session's later steps are deferred until its
//! wait ends. Whenever a step finishes, every waiting session is checked again, so a resumed
//! step is recorded right after the step that released it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

mod fill;
mod finals;
mod redis;
mod retry;

use crate::engine::{EngineError, Run, Settled};
use crate::scenario::{Interleaving, NoRows, ReplicaAction, RetryOn, Scenario, StepId, StepKind};
use crate::timeline::{ErrorKind, Event, EventKind, Impossible, RetryReason, StepResult, Timeline};

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// How long a step may run without finishing or being seen waiting before it is cancelled.
    pub step_timeout: Duration,
    /// A step due on a session that still waits: stop and call the order impossible (explore),
    /// instead of sending the step once the wait ends (run).
    pub stop_when_impossible: bool,
}

/// Step mode: awaited before each event a step makes (sent, sent again by a retry, sent late
/// behind a wait, skipped), with the timeline so far, the step and its SQL as it will be sent;
/// resolves to `false` to stop the run there.
pub type Pause<'a> = &'a mut dyn FnMut(
    &Timeline,
    StepId,
    &str,
) -> futures_util::future::LocalBoxFuture<'static, bool>;

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

struct Replay<'a, 'p> {
    run: &'a mut Run,
    pause: Option<Pause<'p>>,
    scenario: &'a Scenario,
    options: RunOptions,
    timeline: Timeline,
    states: Vec<State>,
    /// Steps to send once their session is free: scheduled behind a wait, or run again by a
    /// retry.
    deferred: Vec<VecDeque<Queued>>,
    /// Steps a retry will run again, held until the session's next step comes due (or the
    /// interleaving ends): the application backs off instead of retrying into the same
    /// conflict.
    held: Vec<Vec<StepId>>,
    /// Each session's current attempt at its transaction, from 1.
    attempts: Vec<u32>,
    /// The last event at which a step finished: what a step resumed now was released by.
    last_finish: Option<usize>,
}

/// A step waiting for its session to be free.
#[derive(Debug, Clone, Copy)]
struct Queued {
    step: StepId,
    /// Scheduled while its session waited for a lock, so sent late: shown as deferred. Steps a
    /// retry runs again, and steps queued behind them, are not.
    behind_wait: bool,
}

/// Runs `interleaving` and returns its timeline, with the final check query's answer.
pub async fn replay(
    run: &mut Run,
    scenario: &Scenario,
    interleaving: &Interleaving,
    options: RunOptions,
    pause: Option<Pause<'_>>,
) -> Result<Timeline, EngineError> {
    let (mut timeline, ended) = play(run, scenario, interleaving, options, pause).await?;
    if ended {
        let mut answers = Vec::new();
        for sql in finals::sqls(scenario) {
            answers.push(
                run.final_query(sql)
                    .await
                    .map_err(|e| finals::placed(scenario, e))?,
            );
        }
        finals::record(&mut timeline, scenario, answers);
    }
    Ok(timeline)
}

/// [`replay`], then the run put back as the setup left it for the next order ([`Run::reset`]):
/// what `explore` does after each order, the final queries sent with the reset
/// ([`Run::finals_then_reset`]).
pub async fn replay_then_reset(
    run: &mut Run,
    scenario: &Scenario,
    interleaving: &Interleaving,
    options: RunOptions,
) -> Result<Timeline, EngineError> {
    let (mut timeline, ended) = play(run, scenario, interleaving, options, None).await?;
    match ended {
        true => {
            let answers = run.finals_then_reset(&finals::sqls(scenario)).await;
            let answers = answers.map_err(|e| finals::placed(scenario, e))?;
            finals::record(&mut timeline, scenario, answers);
        }
        false => run.reset().await?,
    }
    Ok(timeline)
}

/// Runs the interleaving's steps; `true` where it got to its end, so that the final queries
/// are due, `false` where it stopped early (an impossible order, step mode's stop).
async fn play(
    run: &mut Run,
    scenario: &Scenario,
    interleaving: &Interleaving,
    options: RunOptions,
    pause: Option<Pause<'_>>,
) -> Result<(Timeline, bool), EngineError> {
    let n_sessions = scenario.sessions.len();
    let mut replay = Replay {
        run,
        pause,
        scenario,
        options,
        timeline: Timeline::default(),
        states: vec![State::Idle; n_sessions],
        deferred: vec![VecDeque::new(); n_sessions],
        held: vec![Vec::new(); n_sessions],
        attempts: vec![1; n_sessions],
        last_finish: None,
    };
    for &id in &interleaving.steps {
        if replay.timeline.stopped {
            break;
        }
        match &replay.states[id.session] {
            State::Failed => {
                let sql = replay.sql(id);
                if replay.paused(id, &sql).await {
                    replay.skip(id);
                }
            }
            State::Waiting { blocked_by, .. } if options.stop_when_impossible => {
                replay.timeline.impossible = Some(Impossible {
                    step: id,
                    waiting_for: blocked_by.clone(),
                });
                replay.abandon().await?;
                return Ok((replay.timeline, false));
            }
            State::Waiting { .. } => replay.deferred[id.session].push_back(Queued {
                step: id,
                behind_wait: true,
            }),
            State::Idle
                if !replay.deferred[id.session].is_empty()
                    || !replay.held[id.session].is_empty() =>
            {
                // Behind a retry just released, or behind steps deferred by a wait.
                let behind_wait = replay.held[id.session].is_empty();
                replay.release_held(id.session);
                replay.deferred[id.session].push_back(Queued {
                    step: id,
                    behind_wait,
                });
                replay.progress().await?;
            }
            State::Idle => {
                if replay.send(id, false).await? {
                    replay.progress().await?;
                }
            }
        }
    }
    if !replay.timeline.stopped {
        for session in 0..n_sessions {
            replay.release_held(session);
        }
        replay.progress().await?;
        replay.drain().await?;
    }
    if replay.timeline.stopped {
        replay.abandon().await?;
        return Ok((replay.timeline, false));
    }
    Ok((replay.timeline, true))
}

impl Replay<'_, '_> {
    /// Step mode's pause before step `id` makes its event; false once the user stopped.
    async fn paused(&mut self, id: StepId, sql: &str) -> bool {
        if self.timeline.stopped {
            return false;
        }
        if let Some(pause) = self.pause.as_mut() {
            if !pause(&self.timeline, id, sql).await {
                self.timeline.stopped = true;
            }
        }
        !self.timeline.stopped
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.options.step_timeout
    }

    fn push(&mut self, step: StepId, sql: String, kind: EventKind, deferred: bool) -> usize {
        self.timeline.events.push(Event {
            step,
            sql,
            kind,
            deferred,
            attempt: self.attempts[step.session],
        });
        self.timeline.events.len() - 1
    }

    /// The SQL a timeline shows for a step: its holes filled where they can be.
    fn sql(&self, id: StepId) -> String {
        fill::fill(self.scenario, &self.timeline, id).sql
    }

    fn skip(&mut self, id: StepId) {
        let sql = self.sql(id);
        self.push(id, sql, EventKind::Skipped, false);
    }

    /// Sends a step and records where it stands. Returns whether it finished (or was cancelled),
    /// which may let waiting sessions go on.
    async fn send(&mut self, id: StepId, deferred: bool) -> Result<bool, EngineError> {
        let fill::Filled { sql, problem } = fill::fill(self.scenario, &self.timeline, id);
        if !self.paused(id, &sql).await {
            return Ok(false);
        }
        if let Some(problem) = problem {
            let index = self.push(id, sql, EventKind::NotSent { problem }, deferred);
            self.last_finish = Some(index);
            self.fail(id.session).await?;
            return Ok(true);
        }
        let step = self.scenario.step(id);
        let started = Instant::now();
        match step.kind {
            StepKind::Sql => self.run.send(id.session, step.node, &sql),
            StepKind::Redis => return self.redis(id, sql, deferred).await,
            StepKind::Until => return self.until(id, sql, deferred).await,
            StepKind::Replica => {
                let action = ReplicaAction::parse(&sql)
                    .ok_or_else(|| EngineError::Setup(format!("`{sql}` is no replica step")))?;
                self.run.send_replica(id.session, action)?;
            }
        }
        match self.run.settle(id.session, self.deadline()).await? {
            Settled::Done(result) => {
                let index = self.push(id, sql, EventKind::Done { result }, deferred);
                self.last_finish = Some(index);
                self.finished(id).await?;
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
        while let Some(queued) = self.deferred[session].pop_front() {
            self.skip(queued.step);
        }
        Ok(())
    }

    /// Step `id` just finished (its event is the last one): does its session's application go
    /// on, retry, give up, or has it failed?
    async fn finished(&mut self, id: StepId) -> Result<(), EngineError> {
        let Some(result) = self.timeline.events.last().and_then(|e| e.kind.result()) else {
            return Ok(());
        };
        let session = &self.scenario.sessions[id.session];
        let can_retry = self.attempts[id.session] < session.retry.attempts;
        match result {
            StepResult::Failed(error) => {
                let retries = session.retry.on.iter().any(|on| match on {
                    RetryOn::SerializationFailure => error.kind == ErrorKind::SerializationFailure,
                    RetryOn::Deadlock => error.kind == ErrorKind::Deadlock,
                    RetryOn::Busy => error.kind == ErrorKind::Busy,
                    RetryOn::Locked => error.kind == ErrorKind::Locked,
                });
                if retries && can_retry {
                    self.retry(id, RetryReason::Failed).await
                } else {
                    self.fail(id.session).await
                }
            }
            result if result.is_empty() => match self.scenario.step(id).no_rows {
                Some(NoRows::Retry) if can_retry => self.retry(id, RetryReason::NoRows).await,
                Some(_) => {
                    self.push(id, "ROLLBACK".to_string(), EventKind::GaveUp, false);
                    self.fail(id.session).await
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
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
        let sql = self.sql(id);
        let kind = EventKind::Resumed { result, after };
        let index = self.push(id, sql, kind, false);
        self.last_finish = Some(index);
        self.states[session] = State::Idle;
        self.finished(id).await
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
                    let Some(queued) = self.deferred[session].pop_front() else {
                        break;
                    };
                    changed |= self.send(queued.step, queued.behind_wait).await?;
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
            // A cycle the database would have broken, still open at the step timeout: the
            // tool's own limit ended it, not the database.
            let stuck = !(cycle && self.run.breaks_deadlocks());
            for session in waiting {
                self.cancel_waiting(session, stuck).await?;
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
