//! Which steps can wait for another session at all: the rest are never asked about.

/// Whether `sql` can wait for another session. Only a step made of nothing but statements that
/// take no lock and run no user code cannot: `BEGIN` / `START TRANSACTION` (the snapshot, and a
/// DEFERRABLE transaction's wait for a safe one, come with the first query after it),
/// `ROLLBACK` / `ABORT`, `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`. Anything else can: `COMMIT`
/// too (deferred constraints and triggers run then, and a synchronous standby is waited for),
/// and so can whatever this cannot read for sure (a quote, a comment, a dollar sign).
pub(super) fn can_wait(sql: &str) -> bool {
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
    !statements.all(|statement| {
        let first = statement.split_whitespace().next().unwrap_or_default();
        [
            "BEGIN",
            "START",
            "ROLLBACK",
            "ABORT",
            "SAVEPOINT",
            "RELEASE",
        ]
        .iter()
        .any(|keyword| first.eq_ignore_ascii_case(keyword))
    })
}

#[cfg(test)]
mod tests {
    use super::can_wait;

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
            assert!(!can_wait(sql), "{sql}");
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
            assert!(can_wait(sql), "{sql}");
        }
    }
}
