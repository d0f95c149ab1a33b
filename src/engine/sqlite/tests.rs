//! A session's steps on a real SQLite file: a held lock as a wait that changed nothing, the
//! step run again from the statement that waited, SQLite's own `SQLITE_BUSY` as a failure,
//! and the deadline.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::session::{statements, Progress, Session, TxnState};
use crate::timeline::{ErrorKind, StepResult};

#[test]
fn statements_end_where_sqlite_says_a_statement_is_complete() {
    assert_eq!(
        statements("BEGIN; UPDATE t SET note = 'a;b' WHERE id = 1; COMMIT"),
        [
            "BEGIN;",
            " UPDATE t SET note = 'a;b' WHERE id = 1;",
            " COMMIT"
        ]
    );
    let trigger = "CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN UPDATE t SET n = 1; END;";
    assert_eq!(
        statements(&format!("{trigger} SELECT 1;")),
        [trigger, " SELECT 1;"]
    );
    assert_eq!(
        statements("SELECT 1; -- a comment; with a semicolon\n"),
        ["SELECT 1;", " -- a comment; with a semicolon\n"]
    );
    assert_eq!(statements("SELECT 1;  "), ["SELECT 1;"]);
    assert!(statements("  ").is_empty());
}

/// Two sessions on a new file with one row, `t(id, n)` = (1, 0).
fn two_sessions() -> (tempfile::TempDir, Session, Session) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.db");
    let setup = Connection::open(&path).unwrap();
    setup
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
        .unwrap();
    setup
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO t VALUES (1, 0);",
        )
        .unwrap();
    let open = || Session::new(Connection::open(&path).unwrap()).unwrap();
    let (a, b) = (open(), open());
    (dir, a, b)
}

fn done(progress: Option<Progress>) -> StepResult {
    match progress {
        Some(Progress::Done(result)) => result,
        Some(Progress::Waiting) => panic!("waits"),
        Some(Progress::TimedOut) => panic!("timed out"),
        None => panic!("nothing was sent"),
    }
}

fn later() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

/// Sends `sql` on `session` and runs it to its end.
fn step(session: &mut Session, sql: &str) -> StepResult {
    session.send(sql);
    done(session.run(later()))
}

#[test]
fn a_held_lock_is_a_wait_and_the_step_goes_on_from_the_statement_that_waited() {
    let (_dir, mut alice, mut bob) = two_sessions();
    step(&mut alice, "BEGIN");
    step(&mut alice, "UPDATE t SET n = 1");
    assert_eq!(alice.state(), TxnState::Write);
    bob.send("SELECT n FROM t; UPDATE t SET n = n + 10; SELECT n FROM t");
    assert!(matches!(bob.run(later()), Some(Progress::Waiting)));
    // Still waiting while Alice holds the lock, and nothing of Bob's step ran twice.
    assert!(matches!(bob.run(later()), Some(Progress::Waiting)));
    step(&mut alice, "COMMIT");
    let StepResult::Rows(set) = done(bob.run(later())) else {
        panic!("rows expected");
    };
    assert_eq!(set.rows, [[Some("11".to_string())]]);
    assert_eq!(set.earlier.len(), 1, "the first SELECT's set, once");
    assert_eq!(set.earlier[0].rows, [[Some("0".to_string())]]);
    assert!(bob.run(later()).is_none(), "the step is over");
}

#[test]
fn a_busy_sqlite_answers_without_asking_is_a_failure() {
    let (_dir, mut alice, mut bob) = two_sessions();
    step(&mut alice, "BEGIN");
    step(&mut alice, "SELECT n FROM t");
    step(&mut bob, "UPDATE t SET n = 5");
    // Alice's snapshot is older than Bob's commit: she cannot write, and waiting cannot help.
    let StepResult::Failed(error) = step(&mut alice, "UPDATE t SET n = 1") else {
        panic!("a failure expected");
    };
    assert_eq!(error.kind, ErrorKind::Busy);
    assert_eq!(error.code, "SQLITE_BUSY_SNAPSHOT");
}

#[test]
fn a_statement_past_its_deadline_is_interrupted() {
    let (_dir, mut alice, _bob) = two_sessions();
    alice.send(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
    );
    let deadline = Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        alice.run(Some(deadline)),
        Some(Progress::TimedOut)
    ));
    assert!(matches!(
        step(&mut alice, "SELECT n FROM t"),
        StepResult::Rows(_)
    ));
}
