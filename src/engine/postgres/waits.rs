//! Which steps can wait for another session at all: the rest are never asked about.

use crate::scenario::Scenario;

/// Whether a `COMMIT` of `scenario`'s can wait for another session. It can only where work is
/// left for the commit that takes a lock: a deferred constraint or constraint trigger
/// (`DEFERRABLE`, `SET CONSTRAINTS … DEFERRED`), a `NOTIFY` (its commit takes the database's
/// notification queue lock); or on a primary with a hot standby, where a commit waits for the
/// synchronous standby while its replay is paused. Judged from every text the scenario sends, its
/// setup included (a function that notifies is made there), which errs towards asking.
pub(super) fn commits_can_wait(scenario: &Scenario, with_standby: bool) -> bool {
    with_standby || scenario.mentions(&["deferr", "trigger", "notify"])
}

/// Whether `sql` can wait for another session. Only a step made of nothing but statements that
/// take no lock and run no user code cannot: `BEGIN` / `START TRANSACTION` (the snapshot, and a
/// DEFERRABLE transaction's wait for a safe one, come with the first query after it),
/// `ROLLBACK` / `ABORT`, `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`; and `COMMIT` / `END` where
/// the scenario leaves a commit nothing to wait for ([`commits_can_wait`]). Anything else can,
/// and so can whatever this cannot read for sure (a quote, a comment, a dollar sign).
pub(super) fn can_wait(sql: &str, commits_can_wait: bool) -> bool {
    if sql.contains(['\'', '"', '$', '-', '/', '(']) {
        return true;
    }
    let mut statements = sql
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .peekable();
    if statements.peek().is_none() {
        return true;
    }
    !statements.all(|statement| controls_transaction(statement, !commits_can_wait))
}

/// Whether `statement` does nothing but control the transaction: `BEGIN` / `START TRANSACTION`,
/// `ROLLBACK` / `ABORT`, `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`; and with `commits`, `COMMIT` /
/// `END`.
pub(super) fn controls_transaction(statement: &str, commits: bool) -> bool {
    let first = first_word(statement);
    let commit: &[&str] = match commits {
        true => &["COMMIT", "END"],
        false => &[],
    };
    [
        "BEGIN",
        "START",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
    ]
    .iter()
    .chain(commit)
    .any(|keyword| first.eq_ignore_ascii_case(keyword))
}

/// A statement's first word: its keyword.
pub(super) fn first_word(statement: &str) -> &str {
    let end = statement
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(statement.len());
    &statement[..end]
}

#[cfg(test)]
mod tests {
    use super::{can_wait, commits_can_wait};
    use crate::scenario::Scenario;

    #[test]
    fn only_statements_that_take_no_lock_cannot_wait() {
        for sql in [
            "BEGIN",
            "begin;",
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
            "ROLLBACK",
            "abort",
            "SAVEPOINT a; RELEASE a; ROLLBACK TO SAVEPOINT a",
        ] {
            assert!(!can_wait(sql, true), "{sql}");
        }
        for sql in [
            "COMMIT",
            "END",
            "BEGIN; SELECT balance FROM accounts WHERE id = 1",
            "UPDATE accounts SET balance = 0",
            "SET CONSTRAINTS ALL IMMEDIATE",
            "SELECT pg_advisory_lock(1)",
            "BEGIN; -- a comment\nLOCK accounts",
            "ROLLBACK PREPARED 'x'",
            "",
            " ; ",
        ] {
            assert!(can_wait(sql, true), "{sql}");
        }
    }

    #[test]
    fn a_commit_is_asked_about_only_where_it_has_a_lock_to_take() {
        for sql in [
            "COMMIT",
            "commit;",
            "END",
            "COMMIT AND CHAIN",
            "BEGIN; COMMIT",
        ] {
            assert!(!can_wait(sql, false), "{sql}");
            assert!(can_wait(sql, true), "{sql}");
        }
        for sql in ["UPDATE t SET n = 1; COMMIT", "COMMIT PREPARED 'x'"] {
            assert!(can_wait(sql, false), "{sql}");
        }
        let plain = Scenario::load("lost-update").unwrap();
        assert!(!commits_can_wait(&plain, false));
        assert!(commits_can_wait(&plain, true), "a synchronous standby");
        for sql in [
            "CREATE TABLE u (n int UNIQUE DEFERRABLE INITIALLY DEFERRED);",
            "SET CONSTRAINTS ALL DEFERRED;",
            "NOTIFY jobs;",
            "SELECT pg_notify('jobs', '');",
            "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON u FOR EACH ROW EXECUTE FUNCTION f();",
        ] {
            let mut scenario = plain.clone();
            scenario.setup.push_str(sql);
            assert!(commits_can_wait(&scenario, false), "{sql}");
        }
    }
}
