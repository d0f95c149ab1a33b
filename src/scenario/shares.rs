//! Whether a scenario's runs must run alone, with no other run beside them (`app/runs.rs`,
//! explore's `--jobs`): they meet on what the whole server shares, or a lease times them.

use super::template::Part;
use super::{Scenario, StepKind};

/// SQL that reaches what the whole server shares, whatever the run's schema or database: a lock
/// by name (PostgreSQL's advisory locks are the database's, MariaDB's `GET_LOCK` names the
/// server's), or the global read lock.
const SERVER_WIDE: [&str; 3] = ["pg_advisory", "get_lock", "flush tables"];

/// Statements whose effect outlives the transaction they run in, on the connection (`SET`,
/// MariaDB's `USE` and `LOCK TABLES`, SQLite's `PRAGMA` and `ATTACH`), by their first word.
const SESSION_STATEMENTS: [&str; 13] = [
    "set", "reset", "prepare", "declare", "listen", "load", "discard", "pragma", "attach",
    "detach", "use", "lock", "handler",
];

/// Words that name a connection's state anywhere in SQL: a temporary table (`CREATE TEMP`,
/// `INTO TEMPORARY`), `set_config`, a lock by name, a MariaDB user variable (`@x`), a PRAGMA
/// function, and what may do any of it (a function, a procedure, a `DO` block's body).
const SESSION_WORDS: [&str; 8] = [
    "temp",
    "set_config",
    "advisory_lock",
    "get_lock",
    "@",
    "pragma",
    "function",
    "procedure",
];

impl Scenario {
    /// Whether a run of the scenario must have the server, and this process's thread, to
    /// itself: it shares the server ([`Scenario::shares_the_server`]), or its story is timed
    /// by a Redis lease (100 ms in the built-ins). Beside other runs on the one thread, a run
    /// can be held up between two steps for longer than the lease, and the story is not told:
    /// seen once in a CI run, with four scenarios at once on each of three engines, John's
    /// first `SET NX` got a lock whose lease had already run out; and twice in loaded test
    /// runs with the Redis fixes of one engine at once with each other.
    pub fn runs_alone(&self) -> bool {
        self.shares_the_server() || self.uses_redis()
    }

    /// Whether runs of the scenario use what the whole server shares, so that two at once
    /// would meet there: a standby's replay or a node's appliers (replica steps), or SQL that
    /// names a server-wide lock ([`SERVER_WIDE`]). Another run's session holding what one of
    /// its sessions waits for would go unseen: a probe asks only about the run's own sessions.
    pub fn shares_the_server(&self) -> bool {
        self.uses_replica() || self.mentions(&SERVER_WIDE)
    }

    /// Whether any SQL the scenario may send ([`Scenario::sql_texts`]) contains one of `words`
    /// (lowercase), in any case.
    pub fn mentions(&self, words: &[&str]) -> bool {
        self.sql_texts()
            .map(str::to_lowercase)
            .any(|text| words.iter().any(|word| text.contains(word)))
    }

    /// Whether a session of the scenario may leave something on its connection that outlives
    /// its transaction: a setting or user variable, a temporary table, a prepared statement, a
    /// cursor held open, a lock by name or on tables, a PRAGMA, an attached database. Then a run
    /// that serves another order (explore) resets every session's connection first, as between
    /// levels. Judged from the text, which errs towards resetting: a statement that begins so
    /// ([`SESSION_STATEMENTS`], but not `SET LOCAL` or `SET CONSTRAINTS`), a word that names
    /// such state anywhere ([`SESSION_WORDS`]), or a function or procedure, which may do any of
    /// it.
    pub fn may_leave_session_state(&self) -> bool {
        self.mentions(&SESSION_WORDS)
            || self.sql_texts().map(str::to_lowercase).any(|text| {
                text.split(';').any(|statement| {
                    let mut words = statement.split_whitespace();
                    let first = words.next().unwrap_or_default();
                    SESSION_STATEMENTS.contains(&first)
                        && !(first == "set"
                            && matches!(words.next(), Some("local" | "constraints")))
                })
            })
    }

    /// The literal text of every SQL the sessions may run, for every engine: each SQL step's
    /// (its holes left out) and the setup's (each engine's own too), which may define what a
    /// step calls.
    pub fn sql_texts(&self) -> impl Iterator<Item = &str> {
        self.sessions
            .iter()
            .flat_map(|s| &s.steps)
            .filter(|step| step.kind == StepKind::Sql)
            .flat_map(|step| std::iter::once(&step.sql).chain(step.sql_on.iter().map(|(_, t)| t)))
            .flat_map(|template| &template.parts)
            .filter_map(|part| match part {
                Part::Text(text) => Some(text.as_str()),
                Part::Hole(_) => None,
            })
            .chain([self.setup.as_str()])
            .chain(self.setup_on.iter().map(|(_, text)| text.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::template::SqlTemplate;
    use super::*;

    fn builtin(id: &str) -> Scenario {
        Scenario::builtins()
            .into_iter()
            .find(|s| s.id == id)
            .expect("a built-in")
    }

    #[test]
    fn what_the_server_shares_is_found() {
        assert!(!builtin("lost-update").shares_the_server());
        assert!(!builtin("distributed-lock").shares_the_server());
        assert!(builtin("stale-replica-read").shares_the_server());
        assert!(builtin("cross-node-lost-update").shares_the_server());
        let advisory = builtin("distributed-lock").with_fix("advisory").unwrap();
        assert!(advisory.shares_the_server());
        let lease = builtin("distributed-lock").with_fix("redis-setnx").unwrap();
        assert!(!lease.shares_the_server() && lease.runs_alone());
        assert!(advisory.runs_alone());
        assert!(!builtin("distributed-lock").runs_alone());
    }

    #[test]
    fn what_a_session_may_leave_on_its_connection_is_found() {
        assert!(!builtin("lost-update").may_leave_session_state());
        assert!(!builtin("write-skew").may_leave_session_state());
        let with = |sql: &str| {
            let mut scenario = builtin("lost-update");
            scenario.sessions[0].steps[0].sql = SqlTemplate {
                parts: vec![Part::Text(sql.to_string())],
            };
            scenario.may_leave_session_state()
        };
        assert!(!with(
            "BEGIN; SET LOCAL lock_timeout = '1s'; UPDATE accounts SET balance = 1"
        ));
        assert!(!with("SET CONSTRAINTS ALL IMMEDIATE"));
        for sql in [
            "SET work_mem = '1MB'",
            "begin; set session characteristics as transaction isolation level serializable",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "CREATE TEMPORARY TABLE t (x int)",
            "SELECT set_config('app.x', '1', false)",
            "SELECT pg_advisory_lock(1)",
            "SELECT GET_LOCK('a', 1)",
            "SET @mark = 1",
            "PRAGMA query_only = 1",
            "PREPARE p AS SELECT 1",
            "LOCK TABLES accounts WRITE",
        ] {
            assert!(with(sql), "{sql}");
        }
    }
}
