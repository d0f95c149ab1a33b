//! The skip mechanism, earned from the timeline: a read with SKIP LOCKED that ran while another
//! session's open transaction held rows it had locked, and returned none of them. Nothing
//! waited and nothing failed; the database passed over the held rows.

use super::Cause;
use crate::timeline::{last_verb, EventKind, ResultSet, StepResult, Timeline};

/// The first SKIP LOCKED read that passed over rows another open transaction held, with
/// whose they were.
pub(super) fn past_locks(timeline: &Timeline) -> Option<Cause> {
    let events = &timeline.events;
    for (at, event) in events.iter().enumerate() {
        let Some(taken) = rows(&event.kind).filter(|_| skips_locked(&event.sql)) else {
            continue;
        };
        let mut holders: Vec<usize> = Vec::new();
        for (before, held) in events[..at].iter().enumerate() {
            let session = held.step.session;
            if session == event.step.session || holders.contains(&session) {
                continue;
            }
            let Some(locked) = rows(&held.kind).filter(|_| locks_rows(&held.sql)) else {
                continue;
            };
            let open = !events[before + 1..at]
                .iter()
                .any(|later| later.step.session == session && ends_transaction(later));
            let passed_over =
                !locked.rows.is_empty() && locked.rows.iter().all(|row| !taken.rows.contains(row));
            if open && passed_over {
                holders.push(session);
            }
        }
        if !holders.is_empty() {
            holders.sort_unstable();
            return Some(Cause::Skipped {
                step: event.step,
                holders,
            });
        }
    }
    None
}

fn rows(kind: &EventKind) -> Option<&ResultSet> {
    match kind.result() {
        Some(StepResult::Rows(set)) => Some(set),
        _ => None,
    }
}

fn words(sql: &str) -> Vec<String> {
    sql.split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect()
}

fn skips_locked(sql: &str) -> bool {
    words(sql).windows(2).any(|w| w == ["SKIP", "LOCKED"])
}

/// A locking read: FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE, LOCK IN SHARE MODE.
fn locks_rows(sql: &str) -> bool {
    let words = words(sql);
    words
        .windows(2)
        .any(|w| w[0] == "FOR" && matches!(w[1].as_str(), "UPDATE" | "SHARE" | "NO" | "KEY"))
        || words.windows(3).any(|w| w == ["LOCK", "IN", "SHARE"])
}

fn ends_transaction(event: &crate::timeline::Event) -> bool {
    matches!(event.kind, EventKind::Retried { .. } | EventKind::GaveUp)
        || matches!(
            last_verb(&event.sql).as_str(),
            "COMMIT" | "ROLLBACK" | "END"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::StepId;
    use crate::timeline::Event;

    fn read(session: usize, sql: &str, id: &str) -> Event {
        Event {
            step: StepId { session, step: 1 },
            sql: sql.into(),
            kind: EventKind::Done {
                result: StepResult::Rows(ResultSet {
                    columns: vec!["id".into()],
                    rows: vec![vec![Some(id.into())]],
                    earlier: Vec::new(),
                }),
            },
            deferred: false,
            attempt: 1,
        }
    }

    fn commit(session: usize) -> Event {
        Event {
            step: StepId { session, step: 2 },
            sql: "COMMIT".into(),
            kind: EventKind::Done {
                result: StepResult::Command { rows_affected: 0 },
            },
            deferred: false,
            attempt: 1,
        }
    }

    const TAKE: &str = "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";

    fn timeline(events: Vec<Event>) -> Timeline {
        Timeline {
            events,
            ..Timeline::default()
        }
    }

    #[test]
    fn a_skip_locked_read_past_an_open_lock_is_a_skip() {
        let cause = past_locks(&timeline(vec![read(0, TAKE, "1"), read(1, TAKE, "2")]));
        assert!(
            matches!(&cause, Some(Cause::Skipped { step, holders }) if step.session == 1 && holders == &[0]),
            "{cause:?}"
        );
    }

    #[test]
    fn no_skip_after_the_holder_committed_nor_on_the_same_row_nor_without_skip_locked() {
        let after_commit = vec![read(0, TAKE, "1"), commit(0), read(1, TAKE, "2")];
        assert!(past_locks(&timeline(after_commit)).is_none());
        let same_row = vec![read(0, TAKE, "1"), read(1, TAKE, "1")];
        assert!(past_locks(&timeline(same_row)).is_none());
        let plain = "SELECT id FROM jobs ORDER BY id LIMIT 1 FOR UPDATE";
        let no_skip = vec![read(0, plain, "1"), read(1, plain, "2")];
        assert!(past_locks(&timeline(no_skip)).is_none());
    }
}
