//! What happened during a run, as data: one event per observation, in logical order.

use serde::Serialize;

use crate::scenario::StepId;

/// The events of one run and the end state the final check query saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timeline {
    pub events: Vec<Event>,
    pub final_state: Option<ResultSet>,
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
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// A database error, kept as the database said it, with a portable kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbError {
    pub kind: ErrorKind,
    /// SQLSTATE on PostgreSQL (`40001`); the extended result code name on SQLite (`SQLITE_BUSY_SNAPSHOT`).
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    SerializationFailure,
    Deadlock,
    LockNotAvailable,
    Busy,
    Locked,
    Constraint,
    Cancelled,
    Other,
}

impl ResultSet {
    /// The value of `column` in the first row; `None` when there is no such row or column.
    pub fn first(&self, column: &str) -> Option<Option<&str>> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.rows.first().map(|row| row[index].as_deref())
    }
}

impl EventKind {
    /// The result of a step that finished, with or without waiting.
    pub fn result(&self) -> Option<&StepResult> {
        match self {
            EventKind::Done { result } | EventKind::Resumed { result, .. } => Some(result),
            _ => None,
        }
    }
}

impl Timeline {
    /// The result of a step, if it finished.
    pub fn result_of(&self, step: StepId) -> Option<&StepResult> {
        self.events
            .iter()
            .filter(|e| e.step == step)
            .find_map(|e| e.kind.result())
    }
}

/// `UPDATE`, `SELECT`...: the first word of a statement, upper-cased.
pub fn verb(sql: &str) -> String {
    sql.split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches(';')
        .to_uppercase()
}
