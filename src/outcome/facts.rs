//! What a condition sees of a finished run: what each step did, what the final queries
//! returned, and whether a session committed.

use crate::scenario::expr::{Facts, Rows, StepName, StepOutcome};
use crate::scenario::{Scenario, StepId};
use crate::timeline::{last_verb, ErrorKind, EventKind, ResultSet, StepResult, Timeline};

pub(super) struct RunFacts<'a> {
    pub scenario: &'a Scenario,
    pub timeline: &'a Timeline,
}

impl Facts for RunFacts<'_> {
    fn step(&self, name: &StepName) -> StepOutcome {
        match self.scenario.step_id(&name.session, &name.step) {
            Some(id) => outcome(self.timeline, id, &name.to_string()),
            None => StepOutcome::NotRun,
        }
    }

    fn final_rows(&self, name: Option<&str>) -> Option<Rows> {
        match name {
            None => self
                .timeline
                .final_state
                .as_ref()
                .map(|set| rows(set, "the final query".into())),
            Some(name) => self
                .timeline
                .named_finals
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, set)| rows(set, format!("final.{name}"))),
        }
    }

    /// The session's last step is a COMMIT (or END) whose latest attempt succeeded, and every
    /// failure of the session was followed by a retry: a transaction that failed and was run
    /// again counts by how its last attempt ended.
    fn committed(&self, session: &str) -> bool {
        let Some(index) = self.scenario.session_index(session) else {
            return false;
        };
        let last = StepId {
            session: index,
            step: self.scenario.sessions[index].steps.len() - 1,
        };
        let is_commit = matches!(
            last_verb(&self.scenario.step(last).sql.render(|_| String::new())).as_str(),
            "COMMIT" | "END"
        );
        let commit_succeeded = matches!(
            outcome(self.timeline, last, ""),
            StepOutcome::Command(_) | StepOutcome::Rows(_)
        );
        is_commit && commit_succeeded && !failure_stands(self.timeline, index)
    }
}

/// What the latest attempt of step `id` did: the last event of the step that tells.
fn outcome(timeline: &Timeline, id: StepId, source: &str) -> StepOutcome {
    timeline
        .events
        .iter()
        .rev()
        .filter(|event| event.step == id)
        .find_map(|event| match &event.kind {
            EventKind::Done { result } | EventKind::Resumed { result, .. } => Some(match result {
                StepResult::Rows(set) => StepOutcome::Rows(rows(set, source.to_string())),
                StepResult::Command { rows_affected } => StepOutcome::Command(*rows_affected),
                StepResult::Failed(error) => StepOutcome::Failed(kind_id(error.kind)),
                StepResult::Reply(reply) => {
                    StepOutcome::Rows(rows(&reply.rows(), source.to_string()))
                }
            }),
            EventKind::TimedOut { .. } | EventKind::Stuck { .. } => {
                Some(StepOutcome::Failed(kind_id(ErrorKind::Cancelled)))
            }
            EventKind::Skipped | EventKind::NotSent { .. } => Some(StepOutcome::NotRun),
            EventKind::Waiting { .. } | EventKind::Retried { .. } | EventKind::GaveUp => None,
        })
        .unwrap_or(StepOutcome::NotRun)
}

/// Whether a step of `session` failed (or was cancelled) and its session did not run the
/// transaction again after it: the runner records a retry as the very next event.
fn failure_stands(timeline: &Timeline, session: usize) -> bool {
    let events = &timeline.events;
    events.iter().enumerate().any(|(index, event)| {
        let failed = event.kind.is_failure();
        let retried = matches!(
            events.get(index + 1).map(|next| &next.kind),
            Some(EventKind::Retried { .. })
        );
        event.step.session == session && failed && !retried
    })
}

fn rows(set: &ResultSet, source: String) -> Rows {
    Rows::from_db(source, &set.columns, &set.rows)
}

/// `serialization-failure`: the kind as JSON and `error(step)` write it.
fn kind_id(kind: ErrorKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(id)) => id,
        _ => format!("{kind:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::expr::ERROR_KINDS;
    use crate::timeline::{DbError, Event, RetryReason};

    fn event(session: usize, step: usize, kind: EventKind) -> Event {
        Event {
            step: StepId { session, step },
            sql: String::new(),
            kind,
            deferred: false,
            attempt: 1,
        }
    }

    fn done(session: usize, step: usize, result: StepResult) -> Event {
        event(session, step, EventKind::Done { result })
    }

    fn ok() -> StepResult {
        StepResult::Command { rows_affected: 1 }
    }

    fn serialization_failure() -> StepResult {
        StepResult::Failed(DbError {
            kind: ErrorKind::SerializationFailure,
            code: "40001".into(),
            message: "could not serialize access".into(),
            constraint: None,
        })
    }

    /// John (session 1 of lost-update: begin, read, write, commit) with these events.
    fn john_committed(events: Vec<Event>) -> bool {
        let scenario = Scenario::load("lost-update").unwrap();
        let timeline = Timeline {
            events,
            ..Default::default()
        };
        RunFacts {
            scenario: &scenario,
            timeline: &timeline,
        }
        .committed("john")
    }

    #[test]
    fn committed_counts_a_retried_transaction_by_its_last_attempt() {
        let attempt_1 = vec![
            done(1, 0, ok()),
            done(1, 2, serialization_failure()),
            event(
                1,
                2,
                EventKind::Retried {
                    attempt: 2,
                    from: 0,
                    reason: RetryReason::Failed,
                },
            ),
        ];
        let mut retried = attempt_1.clone();
        retried.extend([done(1, 0, ok()), done(1, 2, ok()), done(1, 3, ok())]);
        assert!(john_committed(retried));
        let mut commit_failed = attempt_1;
        commit_failed.extend([done(1, 0, ok()), done(1, 3, serialization_failure())]);
        assert!(!john_committed(commit_failed));
    }

    #[test]
    fn committed_needs_every_failure_of_the_session_retried() {
        // A failure that stood, then (in a session with several transactions) a COMMIT that
        // succeeded: the session did not commit all it meant to.
        let events = vec![done(1, 2, serialization_failure()), done(1, 3, ok())];
        assert!(!john_committed(events));
        assert!(john_committed(vec![done(1, 3, ok())]));
        assert!(!john_committed(vec![done(1, 2, ok())]));
    }

    #[test]
    fn error_kinds_are_the_timelines() {
        let all = [
            ErrorKind::SerializationFailure,
            ErrorKind::Deadlock,
            ErrorKind::LockNotAvailable,
            ErrorKind::Busy,
            ErrorKind::Locked,
            ErrorKind::Constraint,
            ErrorKind::Syntax,
            ErrorKind::UndefinedObject,
            ErrorKind::DataException,
            ErrorKind::ReadOnly,
            ErrorKind::Privilege,
            ErrorKind::Cancelled,
            ErrorKind::Other,
        ];
        // A new kind breaks this match, and so this test, until ERROR_KINDS has it.
        for kind in all {
            match kind {
                ErrorKind::SerializationFailure
                | ErrorKind::Deadlock
                | ErrorKind::LockNotAvailable
                | ErrorKind::Busy
                | ErrorKind::Locked
                | ErrorKind::Constraint
                | ErrorKind::Syntax
                | ErrorKind::UndefinedObject
                | ErrorKind::DataException
                | ErrorKind::ReadOnly
                | ErrorKind::Privilege
                | ErrorKind::Cancelled
                | ErrorKind::Other => {}
            }
        }
        let ids: Vec<String> = all.into_iter().map(kind_id).collect();
        assert_eq!(ids, ERROR_KINDS);
    }
}
