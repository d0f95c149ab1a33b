//! What happened during a run, as data: one event per observation, in logical order.

use serde::Serialize;

use crate::scenario::expr::no_column;
use crate::scenario::StepId;

/// The events of one run and the end state the final check queries saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub events: Vec<Event>,
    /// What the final query of `final = "..."` returned.
    pub final_state: Option<ResultSet>,
    /// What each query of `[outcome.final]` returned, by name, in the file's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub named_finals: Vec<(String, ResultSet)>,
    /// Set when the order cannot happen: a step was due on a session still waiting for a lock.
    /// The run stopped there.
    #[serde(skip)]
    pub impossible: Option<Impossible>,
    /// Step mode: the user stopped the run before its end.
    #[serde(skip)]
    pub stopped: bool,
}

/// `step` was due while its session still waited for `waiting_for`.
#[derive(Debug, Clone, PartialEq)]
pub struct Impossible {
    pub step: StepId,
    pub waiting_for: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(skip)]
    pub step: StepId,
    /// The SQL as sent, with `${...}` holes filled; for a skipped step, as written.
    pub sql: String,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Scheduled while its session was still waiting, so sent only when that wait ended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
    /// Which attempt of its session's transaction this belongs to: 1, or more after a retry.
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// Sent and finished without waiting.
    Done { result: StepResult },
    /// Sent; the database says it waits for a lock held by these sessions.
    Waiting { blocked_by: Vec<usize> },
    /// A waiting step finished: released by the step at event `after`, or, with no `after`,
    /// on its own (the database broke a deadlock).
    Resumed {
        result: StepResult,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<usize>,
    },
    /// Not sent: the session's transaction had already failed and was rolled back.
    Skipped,
    /// Neither finished nor waited on a lock within the step timeout; cancelled.
    TimedOut { after_ms: u64 },
    /// Still waiting when nothing else could release it; cancelled.
    Stuck { blocked_by: Vec<usize> },
    /// The session's application rolled back after this step (it failed with an error the
    /// session retries on, or changed no row where that means "try again") and runs its
    /// transaction again from step `from`, as attempt `attempt`.
    Retried {
        attempt: u32,
        from: usize,
        reason: RetryReason,
    },
    /// The step changed or returned no row, so the session's application rolled back and
    /// stopped: its later steps are not sent.
    GaveUp,
    /// Not sent: its SQL uses a value that the run cannot give (`${look.fre}` where `look`
    /// returned no column `fre`). The scenario is broken; the session is rolled back.
    NotSent { problem: String },
}

/// Why a session ran its transaction again.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryReason {
    /// The step failed with an error the session retries on.
    Failed,
    /// The step changed or returned no row.
    NoRows,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StepResult {
    /// A query that returned rows.
    Rows(ResultSet),
    /// A command: rows affected for INSERT/UPDATE/DELETE, 0 for the rest.
    Command { rows_affected: u64 },
    /// The statement failed; the runner rolled the session back.
    Failed(DbError),
    /// What Redis answered a command (a Redis step is no part of any database transaction).
    Reply(Reply),
}

/// Redis's answer to a step, with what the tool asked Redis about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reply {
    pub value: ReplyValue,
    /// A `SET … NX` that Redis refused: who holds the key and for how long (`GET`, `PTTL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
    /// An `until` step: how long it waited for the key to go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
}

/// A Redis value as the server sent it: `OK`, `(nil)`, `(integer) 1`, `"alice"`, a list. In
/// JSON: null, a number, a string, an array.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyValue {
    Nil,
    Int(i64),
    /// A status (`OK`, `PONG`) or a string.
    Text {
        text: String,
        status: bool,
    },
    List(Vec<ReplyValue>),
}

impl Serialize for ReplyValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ReplyValue::Nil => serializer.serialize_none(),
            ReplyValue::Int(n) => serializer.serialize_i64(*n),
            ReplyValue::Text { text, .. } => serializer.serialize_str(text),
            ReplyValue::List(items) => serializer.collect_seq(items),
        }
    }
}

/// Who holds a Redis key a session could not set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub key: String,
    /// The session whose `SET` put the key's value there, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<usize>,
    /// The key's value, as `GET` returned it.
    pub value: Option<String>,
    /// Milliseconds of lease left (`PTTL`): -1 when the key never expires.
    pub ttl_ms: i64,
}

impl ReplyValue {
    /// `OK`, `(nil)`, `(integer) 2`, `"alice"`, `1) "a" 2) "b"`: as redis-cli shows it.
    pub fn display(&self) -> String {
        match self {
            ReplyValue::Nil => "(nil)".to_string(),
            ReplyValue::Int(n) => format!("(integer) {n}"),
            ReplyValue::Text { text, status: true } => text.clone(),
            ReplyValue::Text {
                text,
                status: false,
            } => format!("{text:?}"),
            ReplyValue::List(items) if items.is_empty() => "(empty array)".to_string(),
            ReplyValue::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| format!("{}) {}", i + 1, item.display()))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The value as a condition or a `${…}` hole reads it: `NULL` for nil, else its text.
    fn cell(&self) -> Option<String> {
        match self {
            ReplyValue::Nil => None,
            ReplyValue::Int(n) => Some(n.to_string()),
            ReplyValue::Text { text, .. } => Some(text.clone()),
            ReplyValue::List(_) => Some(self.display()),
        }
    }
}

impl Reply {
    pub fn of(value: ReplyValue) -> Reply {
        Reply {
            value,
            held: None,
            waited_ms: None,
        }
    }

    /// The reply as rows of one column, `reply`: one row, or one per item of a list. So
    /// `john.lock.reply` reads it in a condition and `${lock.reply}` in a step.
    pub fn rows(&self) -> ResultSet {
        let rows = match &self.value {
            ReplyValue::List(items) => items.iter().map(|item| vec![item.cell()]).collect(),
            value => vec![vec![value.cell()]],
        };
        ResultSet {
            columns: vec!["reply".to_string()],
            rows,
            earlier: Vec::new(),
        }
    }

    /// Nil, 0 or an empty list: Redis set, deleted or found nothing (`no_rows` applies).
    pub fn is_empty(&self) -> bool {
        match &self.value {
            ReplyValue::Nil | ReplyValue::Int(0) => true,
            ReplyValue::List(items) => items.is_empty(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// A step of several statements: the sets of rows its earlier statements returned, in
    /// order. This set, the last, is the one that speaks for the step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<ResultSet>,
}

/// A database error, kept as the database said it, with a portable kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbError {
    pub kind: ErrorKind,
    /// SQLSTATE on PostgreSQL (`40001`); the extended result code name on SQLite (`SQLITE_BUSY_SNAPSHOT`).
    pub code: String,
    pub message: String,
    /// The constraint a write broke, when the database names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Concurrency failures: the database refused to go on because of another transaction.
    SerializationFailure,
    Deadlock,
    LockNotAvailable,
    Busy,
    Locked,
    /// A declared integrity rule refused a write: CHECK, UNIQUE, NOT NULL, a foreign key.
    Constraint,
    /// The rest break the scenario. The statement does not parse.
    Syntax,
    /// It names a table, column or function that does not exist.
    UndefinedObject,
    /// A value is wrong for its type: a bad cast, a division by zero, an overflow.
    DataException,
    /// A write in a read-only transaction or database.
    ReadOnly,
    /// A privilege the session's user lacks: `permission denied for schema billing`, `must be
    /// owner of table accounts` (on PostgreSQL, a run's own role may reach only its schema).
    Privilege,
    /// Cancelled (a statement timeout).
    Cancelled,
    Other,
}

impl ErrorKind {
    /// A failure that is a concurrency-control or integrity mechanism of the database, as
    /// opposed to a broken scenario (a syntax error, an unknown column, a cancelled step).
    pub fn is_mechanism(self) -> bool {
        match self {
            ErrorKind::SerializationFailure
            | ErrorKind::Deadlock
            | ErrorKind::LockNotAvailable
            | ErrorKind::Busy
            | ErrorKind::Locked
            | ErrorKind::Constraint => true,
            ErrorKind::Syntax
            | ErrorKind::UndefinedObject
            | ErrorKind::DataException
            | ErrorKind::ReadOnly
            | ErrorKind::Privilege
            | ErrorKind::Cancelled
            | ErrorKind::Other => false,
        }
    }
}

impl StepResult {
    /// A command that changed no row, or a query that returned none.
    pub fn is_empty(&self) -> bool {
        match self {
            StepResult::Rows(set) => set.rows.is_empty(),
            StepResult::Command { rows_affected } => *rows_affected == 0,
            StepResult::Failed(_) => false,
            StepResult::Reply(reply) => reply.is_empty(),
        }
    }
}

impl ResultSet {
    /// The value of `column` in the first row: `Ok(None)` when there is no row, `Err` when the
    /// rows have no such column, naming the columns they do have and the closest one.
    /// `source` names the rows in the message: `john.look`, `the final query`.
    pub fn first(&self, column: &str, source: &str) -> Result<Option<Option<&str>>, String> {
        let Some(index) = self.columns.iter().position(|c| c == column) else {
            let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
            return Err(no_column(column, &columns, source));
        };
        Ok(self.rows.first().map(|row| row[index].as_deref()))
    }
}

impl EventKind {
    /// The step failed, or the runner cancelled it (timed out, or stuck waiting).
    pub fn is_failure(&self) -> bool {
        matches!(self, EventKind::TimedOut { .. } | EventKind::Stuck { .. })
            || matches!(self.result(), Some(StepResult::Failed(_)))
    }

    /// The result of a step that finished, with or without waiting.
    pub fn result(&self) -> Option<&StepResult> {
        match self {
            EventKind::Done { result } | EventKind::Resumed { result, .. } => Some(result),
            _ => None,
        }
    }
}

impl Timeline {
    /// The result of a step, if it finished: of its latest attempt, when it ran more than once.
    pub fn result_of(&self, step: StepId) -> Option<&StepResult> {
        self.events
            .iter()
            .rev()
            .filter(|e| e.step == step)
            .find_map(|e| e.kind.result())
    }
}

/// `UPDATE`, `SELECT`...: what a step does, upper-cased: the first word of its first statement
/// after a leading BEGIN (`BEGIN; UPDATE ...` is an UPDATE).
pub fn verb(sql: &str) -> String {
    let verbs: Vec<String> = statements(sql).map(first_word).collect();
    verbs
        .iter()
        .find(|v| !matches!(v.as_str(), "BEGIN" | "START"))
        .or(verbs.first())
        .cloned()
        .unwrap_or_default()
}

/// The first word of a step's last statement: `COMMIT` for `UPDATE ...; COMMIT`.
pub fn last_verb(sql: &str) -> String {
    statements(sql).last().map(first_word).unwrap_or_default()
}

fn statements(sql: &str) -> impl Iterator<Item = &str> {
    sql.split(';').map(str::trim).filter(|s| !s.is_empty())
}

fn first_word(statement: &str) -> String {
    statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_of_steps() {
        assert_eq!(verb("UPDATE t SET v = 1"), "UPDATE");
        assert_eq!(verb("BEGIN; UPDATE t SET v = 1"), "UPDATE");
        assert_eq!(verb("begin"), "BEGIN");
        assert_eq!(verb("COMMIT;"), "COMMIT");
        assert_eq!(last_verb("UPDATE t SET v = 1; COMMIT"), "COMMIT");
        assert_eq!(last_verb("BEGIN; SELECT 1"), "SELECT");
    }
}
