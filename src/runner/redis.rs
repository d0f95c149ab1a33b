//! Redis steps in a replay: a command answered at once, and an `until` step waited out in place.

use tokio::time::Instant;

use super::Replay;
use crate::engine::{EngineError, Until};
use crate::scenario::{until_key, StepId};
use crate::timeline::{DbError, ErrorKind, EventKind, Reply, ReplyValue, StepResult};

impl Replay<'_, '_> {
    /// A Redis step: sent on the session's Redis connection, and answered at once (Redis makes
    /// no client wait for another's sake).
    pub(super) async fn redis(
        &mut self,
        id: StepId,
        command: String,
        deferred: bool,
    ) -> Result<bool, EngineError> {
        let started = Instant::now();
        match self
            .run
            .redis_command(id.session, &command, self.deadline())
            .await?
        {
            Some(result) => {
                let index = self.push(id, command, EventKind::Done { result }, deferred);
                self.last_finish = Some(index);
                self.finished(id).await?;
            }
            None => {
                let after_ms = started.elapsed().as_millis() as u64;
                let index = self.push(id, command, EventKind::TimedOut { after_ms }, deferred);
                self.last_finish = Some(index);
                self.fail(id.session).await?;
            }
        }
        Ok(true)
    }

    /// An `until` step: the session's application waits, asking Redis, until the key is gone
    /// (its lease ran out). Nothing the other sessions could do in the meantime is due: the
    /// wait is the session's own, so it ends here, before the interleaving's next step.
    pub(super) async fn until(
        &mut self,
        id: StepId,
        text: String,
        deferred: bool,
    ) -> Result<bool, EngineError> {
        let key = until_key(&text).unwrap_or(text.as_str()).to_string();
        let held = self.run.redis_held(&key).await?;
        let gone = |waited_ms| {
            StepResult::Reply(Reply {
                value: ReplyValue::Int(-2),
                held: None,
                waited_ms: Some(waited_ms),
            })
        };
        let no_expiry = || {
            StepResult::Failed(DbError {
                kind: ErrorKind::Other,
                code: "NO-EXPIRY".into(),
                message: format!("{key} has no expiry (PTTL -1): it would never go by itself"),
                constraint: None,
            })
        };
        let kind = match held.ttl_ms {
            -2 => EventKind::Done { result: gone(0) },
            -1 => EventKind::Done {
                result: no_expiry(),
            },
            _ => {
                let blocked_by = held.by.into_iter().collect();
                self.push(id, key.clone(), EventKind::Waiting { blocked_by }, deferred);
                let until = self.run.redis_until(id.session, &key, self.deadline());
                let result = match until.await? {
                    Until::Gone { waited_ms } => gone(waited_ms),
                    Until::NoExpiry => no_expiry(),
                    Until::TimedOut => StepResult::Failed(DbError {
                        kind: ErrorKind::Cancelled,
                        code: "TIMEOUT".into(),
                        message: format!(
                            "{key} was still there after the step timeout ({} ms)",
                            self.options.step_timeout.as_millis()
                        ),
                        constraint: None,
                    }),
                };
                EventKind::Resumed {
                    result,
                    after: None,
                }
            }
        };
        // A wait's end is not sent late: its start was, and says so.
        let deferred = deferred && matches!(kind, EventKind::Done { .. });
        let index = self.push(id, key, kind, deferred);
        self.last_finish = Some(index);
        self.finished(id).await?;
        Ok(true)
    }
}
