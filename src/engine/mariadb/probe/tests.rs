//! Status texts captured from MariaDB 10.11 with `innodb_status_output_locks = ON`.

use super::*;

/// Thread 10's UPDATE waits for the row thread 9 updated and has not committed.
const ROW_WAIT: &str = include_str!("row_wait.txt");
/// Thread 14's INSERT of id 3 waits (insert intention) for the next-key lock thread 13's
/// `SELECT … WHERE id BETWEEN 2 AND 4 FOR UPDATE` holds on id 5.
const INSERT_WAIT: &str = include_str!("insert_wait.txt");

#[test]
fn a_row_lock_wait_names_the_writer() {
    assert_eq!(lock_wait(ROW_WAIT, 10), Some(vec![9]));
    assert_eq!(lock_wait(ROW_WAIT, 9), None, "the holder does not wait");
    assert_eq!(lock_wait(ROW_WAIT, 77), None, "no such connection");
}

#[test]
fn an_insert_waits_for_the_next_key_lock_on_its_gap() {
    assert_eq!(lock_wait(INSERT_WAIT, 14), Some(vec![13]));
    assert_eq!(lock_wait(INSERT_WAIT, 13), None);
}

#[test]
fn without_the_others_locks_the_wait_is_still_seen() {
    // innodb_status_output_locks off: only the waited-for lock is printed.
    let text = INSERT_WAIT
        .lines()
        .filter(|line| !line.contains("trx id 42"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(lock_wait(&text, 14), Some(vec![]));
}

fn lock(mode: Mode, gap_only: bool, record_only: bool, insert_intention: bool) -> Lock {
    Lock {
        target: Target::Record(1, 3, 2),
        mode,
        gap_only,
        record_only,
        insert_intention,
        waiting: false,
    }
}

#[test]
fn innodb_conflict_rules() {
    let x_next_key = lock(Mode::Exclusive, false, false, false);
    let x_record = lock(Mode::Exclusive, false, true, false);
    let x_gap = lock(Mode::Exclusive, true, false, false);
    let s_next_key = lock(Mode::Shared, false, false, false);
    let insert = lock(Mode::Exclusive, true, false, true);
    assert!(conflicts(&x_record, &x_next_key));
    assert!(conflicts(&x_record, &s_next_key));
    assert!(!conflicts(&s_next_key, &s_next_key), "S and S share");
    assert!(
        !conflicts(&x_record, &x_gap),
        "a record lock ignores a gap lock"
    );
    assert!(
        !conflicts(&x_gap, &x_next_key),
        "a gap lock waits for nothing"
    );
    assert!(conflicts(&insert, &x_gap), "an insert waits for a gap lock");
    assert!(conflicts(&insert, &x_next_key));
    assert!(
        !conflicts(&insert, &x_record),
        "but not for a record-only lock"
    );
    assert!(
        !conflicts(&x_next_key, &insert),
        "nothing waits for an insert intention"
    );
    let mut elsewhere = x_next_key.clone();
    elsewhere.target = Target::Record(1, 3, 3);
    assert!(!conflicts(&x_record, &elsewhere));
}

#[test]
fn the_name_a_get_lock_waits_for_is_found_in_its_statement() {
    assert_eq!(get_lock_name("SELECT GET_LOCK('job', 10)"), Some("'job'"));
    assert_eq!(
        get_lock_name("SELECT get_lock(CONCAT(DATABASE(), '.job-1001'), 3600) AS locked"),
        Some("CONCAT(DATABASE(), '.job-1001')")
    );
    assert_eq!(get_lock_name("SELECT GET_LOCK('a,b', 1)"), Some("'a,b'"));
    assert_eq!(get_lock_name("UPDATE t SET x = 1"), None);
    assert_eq!(get_lock_name("SELECT GET_LOCK()"), None);
}
