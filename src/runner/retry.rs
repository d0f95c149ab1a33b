//! The application's retry: the session rolled back, and its transaction's steps queued again.

use super::{Queued, Replay, State};
use crate::engine::EngineError;
use crate::scenario::StepId;
use crate::timeline::{EventKind, RetryReason};

impl Replay<'_, '_> {
    /// Rolls the session back and queues its transaction's steps again, from its retry step
    /// through `id`, ahead of the steps it still has.
    pub(super) async fn retry(
        &mut self,
        id: StepId,
        reason: RetryReason,
    ) -> Result<(), EngineError> {
        let session = id.session;
        self.run.rollback(session).await?;
        let configured = self.scenario.sessions[session].retry.from;
        let from = if configured <= id.step { configured } else { 0 };
        self.attempts[session] += 1;
        let attempt = self.attempts[session];
        self.push(
            id,
            "ROLLBACK".to_string(),
            EventKind::Retried {
                attempt,
                from,
                reason,
            },
            false,
        );
        self.states[session] = State::Idle;
        self.held[session] = (from..=id.step)
            .map(|step| StepId { session, step })
            .collect();
        // A step of the session is already due (it was deferred behind the wait that just
        // ended): the retry goes now, ahead of it.
        if !self.deferred[session].is_empty() {
            self.release_held(session);
        }
        Ok(())
    }

    /// Queues a session's held retry steps ahead of anything it has queued.
    pub(super) fn release_held(&mut self, session: usize) {
        for step in std::mem::take(&mut self.held[session]).into_iter().rev() {
            self.deferred[session].push_front(Queued {
                step,
                behind_wait: false,
            });
        }
    }
}
