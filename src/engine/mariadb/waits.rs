//! Which steps can wait for another session at all on MariaDB: the rest are never asked
//! about, which spares the server a `SHOW ENGINE INNODB STATUS` each.

use crate::scenario::Scenario;

/// Whether a commit of `scenario`'s can wait for another session: only where something blocks
/// commits, which on one server is a session's global read lock (`FLUSH TABLES WITH READ
/// LOCK`) or backup lock (`BACKUP STAGE BLOCK_COMMIT`), and on a Galera cluster also a node
/// whose appliers a replica step holds. Judged from every text the scenario sends, which errs
/// towards asking. `BEGIN` and `START TRANSACTION` commit a transaction still open, so they
/// count as commits.
pub(super) fn commits_can_wait(scenario: &Scenario, on_a_cluster: bool) -> bool {
    on_a_cluster || scenario.mentions(&["flush", "backup"])
}

/// Whether `sql` can wait for another session. Only a step made of nothing but `ROLLBACK`,
/// `SAVEPOINT`, `RELEASE SAVEPOINT` and, where no commit can wait ([`commits_can_wait`]),
/// `COMMIT`, `BEGIN` and `START TRANSACTION` cannot: none takes a lock. Anything else can,
/// `BEGIN NOT ATOMIC` (a compound statement, which may hold any) too, and so can whatever this
/// cannot read for sure (a quote, a comment, a parenthesis).
pub(super) fn can_wait(sql: &str, commits_can_wait: bool) -> bool {
    if sql.contains(['\'', '"', '`', '-', '/', '#', '(']) {
        return true;
    }
    let statements: Vec<Vec<String>> = sql
        .split(';')
        .map(|s| s.split_whitespace().map(str::to_uppercase).collect())
        .filter(|words: &Vec<String>| !words.is_empty())
        .collect();
    if statements.is_empty() {
        return true;
    }
    !statements.iter().all(|words| {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["ROLLBACK", ..] | ["SAVEPOINT", _] | ["RELEASE", "SAVEPOINT", _] => true,
            ["COMMIT", ..] | ["BEGIN"] | ["BEGIN", "WORK"] | ["START", "TRANSACTION", ..] => {
                !commits_can_wait
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{can_wait, commits_can_wait};
    use crate::scenario::Scenario;

    #[test]
    fn only_statements_that_take_no_lock_are_never_asked_about() {
        for sql in [
            "ROLLBACK",
            "rollback to savepoint a",
            "SAVEPOINT a; RELEASE SAVEPOINT a",
            "COMMIT",
            "commit work",
            "BEGIN",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
            "START TRANSACTION READ ONLY; ",
        ] {
            assert!(!can_wait(sql, false), "{sql}");
        }
        for sql in ["COMMIT", "BEGIN", "START TRANSACTION"] {
            assert!(can_wait(sql, true), "{sql}");
        }
        for sql in [
            "BEGIN NOT ATOMIC UPDATE accounts SET balance = 0; END",
            "BEGIN; SELECT balance FROM accounts WHERE id = 1",
            "UPDATE accounts SET balance = 0",
            "SELECT GET_LOCK('a', 10)",
            "LOCK TABLES accounts WRITE",
            "FLUSH TABLES WITH READ LOCK",
            "XA COMMIT 'x'",
            "COMMIT; -- a comment",
            "",
            " ; ",
        ] {
            assert!(can_wait(sql, false), "{sql}");
        }
    }

    #[test]
    fn commits_wait_only_where_something_blocks_them() {
        let plain = Scenario::load("lost-update").unwrap();
        assert!(!commits_can_wait(&plain, false));
        assert!(commits_can_wait(&plain, true), "a cluster");
        for sql in ["FLUSH TABLES WITH READ LOCK;", "BACKUP STAGE BLOCK_COMMIT;"] {
            let mut scenario = plain.clone();
            scenario.setup.push_str(sql);
            assert!(commits_can_wait(&scenario, false), "{sql}");
        }
    }
}
