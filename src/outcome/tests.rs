use super::*;
use crate::scenario::expected::Expected;
use crate::scenario::StepId;
use crate::timeline::{ErrorKind, Event, ResultSet};

fn write_skew() -> Scenario {
    Scenario::load("write-skew").unwrap()
}

fn rows(column: &str, value: &str) -> StepResult {
    StepResult::Rows(ResultSet {
        columns: vec![column.into()],
        rows: vec![vec![Some(value.into())]],
        earlier: Vec::new(),
    })
}

fn done(session: usize, step: usize, result: StepResult) -> Event {
    Event {
        step: StepId { session, step },
        sql: String::new(),
        kind: EventKind::Done { result },
        deferred: false,
        attempt: 1,
    }
}

fn final_total(total: &str) -> Option<crate::timeline::ResultSet> {
    match rows("total", total) {
        StepResult::Rows(set) => Some(set),
        _ => None,
    }
}

fn ok() -> StepResult {
    StepResult::Command { rows_affected: 0 }
}

#[test]
fn an_anomaly_has_its_witness() {
    let timeline = Timeline {
        events: vec![
            done(0, 1, rows("total", "300")),
            done(1, 1, rows("total", "300")),
        ],
        final_state: final_total("100"),
        ..Default::default()
    };
    let verdict = judge(&write_skew(), &timeline);
    assert_eq!(verdict.finding, Finding::Anomaly);
    assert_eq!(
        verdict.summary(&write_skew()),
        "anomaly — together the balances are 100, below the 200 floor both checked"
    );
}

#[test]
fn a_failure_is_an_abort_even_after_a_wait() {
    let failure = StepResult::Failed(DbError {
        kind: ErrorKind::SerializationFailure,
        code: "40001".into(),
        message: "could not serialize access".into(),
        constraint: None,
    });
    let timeline = Timeline {
        events: vec![
            Event {
                step: StepId {
                    session: 1,
                    step: 2,
                },
                sql: String::new(),
                kind: EventKind::Waiting {
                    blocked_by: vec![0],
                },
                deferred: false,
                attempt: 1,
            },
            done(0, 3, ok()),
            done(1, 3, failure),
        ],
        final_state: final_total("200"),
        ..Default::default()
    };
    let verdict = judge(&write_skew(), &timeline);
    assert_eq!(verdict.finding, Finding::Prevented(Mechanism::Abort));
    assert_eq!(
        verdict.summary(&write_skew()),
        "prevented — John's COMMIT failed with 40001 (could not serialize access); \
         together the balances are 200: the 200 floor holds"
    );
}

#[test]
fn a_wait_without_failure_is_blocking() {
    let timeline = Timeline {
        events: vec![Event {
            step: StepId {
                session: 1,
                step: 2,
            },
            sql: String::new(),
            kind: EventKind::Waiting {
                blocked_by: vec![0],
            },
            deferred: false,
            attempt: 1,
        }],
        final_state: final_total("200"),
        ..Default::default()
    };
    let verdict = judge(&write_skew(), &timeline);
    assert_eq!(verdict.finding, Finding::Prevented(Mechanism::Blocking));
    assert!(verdict
        .summary(&write_skew())
        .starts_with("prevented — John's UPDATE waited for Alice, then saw a serial outcome"));
}

#[test]
fn nothing_waited_or_failed_is_a_consistent_read() {
    let timeline = Timeline {
        events: vec![done(0, 1, rows("total", "300"))],
        final_state: final_total("200"),
        ..Default::default()
    };
    assert_eq!(
        judge(&write_skew(), &timeline).finding,
        Finding::Prevented(Mechanism::ConsistentRead)
    );
}

#[test]
fn committed_needs_a_successful_commit() {
    let lost_update = Scenario::load("lost-update").unwrap();
    let mut timeline = Timeline {
        events: vec![done(0, 3, ok()), done(1, 3, ok())],
        final_state: match rows("balance", "80") {
            StepResult::Rows(set) => Some(set),
            _ => None,
        },
        ..Default::default()
    };
    assert!(judge(&lost_update, &timeline).is_anomaly());
    timeline.events[1].kind = EventKind::Skipped;
    assert!(!judge(&lost_update, &timeline).is_anomaly());
}

#[test]
fn expectations_parse_and_match() {
    assert_eq!(Expected::parse("anomaly"), Ok(Expected::Anomaly));
    assert_eq!(
        Expected::parse("prevented by consistent-read"),
        Ok(Expected::Prevented(Mechanism::ConsistentRead))
    );
    assert!(Expected::parse("prevented").is_err());
    let verdict = Verdict {
        finding: Finding::Prevented(Mechanism::Abort),
        cause: None,
        witness: String::new(),
    };
    assert!(verdict.matches(&Expected::Prevented(Mechanism::Abort)));
    assert!(!verdict.matches(&Expected::Prevented(Mechanism::Blocking)));
    assert!(!verdict.matches(&Expected::Anomaly));
}

fn serialization_failure() -> StepResult {
    StepResult::Failed(DbError {
        kind: ErrorKind::SerializationFailure,
        code: "40001".into(),
        message: "could not serialize access".into(),
        constraint: None,
    })
}

/// circular-information-flow: sessions alice, john; steps begin, write, read, commit.
fn circular(events: Vec<Event>) -> Verdict {
    let scenario = Scenario::load("circular-information-flow").unwrap();
    judge(
        &scenario,
        &Timeline {
            events,
            ..Default::default()
        },
    )
}

#[test]
fn a_failure_after_the_reads_settled_the_condition_prevented_nothing() {
    // Both reads saw 0 before John's COMMIT failed: the reads kept G1c false, not the 40001.
    let verdict = circular(vec![
        done(0, 2, rows("seen", "0")),
        done(1, 2, rows("seen", "0")),
        done(0, 3, ok()),
        done(1, 3, serialization_failure()),
    ]);
    assert_eq!(
        verdict.finding,
        Finding::Prevented(Mechanism::ConsistentRead)
    );
    assert!(matches!(verdict.cause, Some(Cause::SettledBefore { .. })));
}

#[test]
fn a_failure_before_a_read_the_condition_names_is_an_abort() {
    // John's read failed, so the condition could not be settled without the failure.
    let verdict = circular(vec![
        done(0, 2, rows("seen", "0")),
        done(1, 2, serialization_failure()),
    ]);
    assert_eq!(verdict.finding, Finding::Prevented(Mechanism::Abort));
}
