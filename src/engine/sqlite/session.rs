//! A session's connection, driven on the caller's thread: a step's statements one by one, a
//! failure as a result (as on PostgreSQL), and a lock SQLite cannot take at once as a wait.
//!
//! When a lock SQLite needs is held, it asks the busy handler whether to try again. Ours says
//! no at once and notes that it was asked: the statement ends with `SQLITE_BUSY` before it
//! changed anything, the step waits, and it runs again from that statement when the runner
//! says another step finished. A `SQLITE_BUSY` SQLite returns without asking (a snapshot gone
//! stale, a read transaction that cannot become a write one) is its answer: the step failed.
//! No thread, no channel and no timing: a statement costs what SQLite takes to run it.

use std::cell::Cell;
use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, ErrorCode, TransactionState};

use crate::timeline::{DbError, ErrorKind, ResultSet, StepResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnState {
    /// Autocommit: no transaction.
    None,
    /// BEGIN ran, but the transaction holds no lock yet (SQLite's own state says NONE).
    Open,
    Read,
    Write,
}

thread_local! {
    /// Whether SQLite asked the busy handler during the statement running now.
    static ASKED: Cell<bool> = const { Cell::new(false) };
    /// When the statement running now is interrupted (the step timeout).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// How many virtual machine instructions SQLite runs between two looks at the deadline.
const INSTRUCTIONS_PER_LOOK: i32 = 1000;

/// Called by SQLite when a lock it needs is held: note it, and let the statement end.
fn busy_handler(_attempt: i32) -> bool {
    ASKED.with(|asked| asked.set(true));
    false
}

/// Called by SQLite every [`INSTRUCTIONS_PER_LOOK`] instructions: true interrupts.
fn past_deadline() -> bool {
    DEADLINE.with(|deadline| deadline.get().is_some_and(|at| Instant::now() >= at))
}

/// Where a step stands after [`Session::run`].
pub(super) enum Progress {
    Done(StepResult),
    /// A statement found its lock held; it runs again at the next [`Session::run`].
    Waiting,
    /// Interrupted at the deadline; the step is over.
    TimedOut,
}

/// A step being run: its statements, the next to run, and what the earlier ones returned.
struct Step {
    statements: Vec<String>,
    next: usize,
    sets: Vec<ResultSet>,
    command: StepResult,
}

pub(super) struct Session {
    connection: Connection,
    step: Option<Step>,
}

impl Session {
    /// A session on `connection`, with the busy handler that reports waits and the look at
    /// the step's deadline.
    pub(super) fn new(connection: Connection) -> rusqlite::Result<Session> {
        connection.busy_handler(Some(busy_handler))?;
        connection.progress_handler(INSTRUCTIONS_PER_LOOK, Some(past_deadline));
        Ok(Session {
            connection,
            step: None,
        })
    }

    /// Takes a step to run: nothing runs until [`Session::run`].
    pub(super) fn send(&mut self, sql: &str) {
        self.step = Some(Step::new(sql));
    }

    /// Forgets the step sent: a waiting one is given up (its statement changed nothing).
    pub(super) fn drop_step(&mut self) {
        self.step = None;
    }

    /// Runs the step sent from where it stands until it ends, waits, or passes `deadline`;
    /// `None` when no step was sent.
    pub(super) fn run(&mut self, deadline: Option<Instant>) -> Option<Progress> {
        let step = self.step.as_mut()?;
        DEADLINE.with(|d| d.set(deadline));
        let progress = match step.advance(&self.connection) {
            Ok(()) => Progress::Done(step.result()),
            Err(error) if is_busy(&error) && ASKED.with(Cell::get) => Progress::Waiting,
            Err(error) if is_interrupt(&error) && past_deadline() => Progress::TimedOut,
            Err(error) => Progress::Done(StepResult::Failed(db_error(&error))),
        };
        DEADLINE.with(|d| d.set(None));
        if !matches!(progress, Progress::Waiting) {
            self.step = None;
        }
        Some(progress)
    }

    /// Runs SQL of the tool's own to its end; a wait is a failure.
    pub(super) fn execute(&mut self, sql: &str) -> StepResult {
        self.send(sql);
        let result = match self.run(None) {
            Some(Progress::Done(result)) => result,
            _ => StepResult::Failed(DbError {
                kind: ErrorKind::Busy,
                code: "SQLITE_BUSY".into(),
                message: "database is locked".into(),
                constraint: None,
            }),
        };
        self.step = None;
        result
    }

    /// The session's transaction, as SQLite sees it now.
    pub(super) fn state(&self) -> TxnState {
        match self.connection.transaction_state(None) {
            Ok(TransactionState::Write) => TxnState::Write,
            Ok(TransactionState::Read) => TxnState::Read,
            _ if !self.connection.is_autocommit() => TxnState::Open,
            _ => TxnState::None,
        }
    }
}

impl Step {
    fn new(sql: &str) -> Step {
        Step {
            statements: statements(sql),
            next: 0,
            sets: Vec::new(),
            command: StepResult::Command { rows_affected: 0 },
        }
    }

    /// Runs the statements from the next one to the last, or to the first that fails, which is
    /// then the next one.
    fn advance(&mut self, connection: &Connection) -> rusqlite::Result<()> {
        while let Some(sql) = self.statements.get(self.next) {
            ASKED.with(|asked| asked.set(false));
            match run_statement(connection, sql)? {
                Ran::Rows(set) => self.sets.push(set),
                Ran::Command(command) => self.command = command,
                Ran::Nothing => {}
            }
            self.next += 1;
        }
        Ok(())
    }

    /// Like PostgreSQL's simple protocol, the last statement that returned rows speaks for the
    /// step, and the earlier sets come with it.
    fn result(&mut self) -> StepResult {
        let mut sets = std::mem::take(&mut self.sets);
        match sets.pop() {
            Some(last) => StepResult::Rows(ResultSet {
                earlier: sets,
                ..last
            }),
            None => self.command.clone(),
        }
    }
}

/// What one statement gave.
enum Ran {
    Rows(ResultSet),
    Command(StepResult),
    /// Only comments or white space.
    Nothing,
}

/// Runs the one statement in `sql`.
fn run_statement(connection: &Connection, sql: &str) -> rusqlite::Result<Ran> {
    let mut batch = Batch::new(connection, sql);
    let Some(mut statement) = batch.next()? else {
        return Ok(Ran::Nothing);
    };
    if statement.column_count() == 0 {
        // SQLite's change count is sticky: BEGIN and COMMIT (read-only statements to SQLite)
        // would repeat the last UPDATE's count.
        let read_only = statement.readonly();
        let changes = statement.execute([])?;
        return Ok(Ran::Command(StepResult::Command {
            rows_affected: if read_only { 0 } else { changes as u64 },
        }));
    }
    let columns: Vec<String> = statement
        .column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let n_columns = columns.len();
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..n_columns)
            .map(|i| row.get_ref(i).map(text))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(values);
    }
    Ok(Ran::Rows(ResultSet {
        columns,
        rows: out,
        earlier: Vec::new(),
    }))
}

/// `sql` cut into its statements, each ending at a semicolon SQLite calls the end of a
/// complete statement (`sqlite3_complete`: not one in a string, a comment or a trigger's
/// body); white space and comments after the last one are a statement of nothing.
pub(super) fn statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    for (at, _) in sql.match_indices(';') {
        let candidate = &sql[start..=at];
        if is_complete(candidate) {
            statements.push(candidate.to_string());
            start = at + 1;
        }
    }
    if !sql[start..].trim().is_empty() {
        statements.push(sql[start..].to_string());
    }
    statements
}

/// SQLite's own word on whether `sql` ends with a complete statement.
fn is_complete(sql: &str) -> bool {
    let Ok(text) = std::ffi::CString::new(sql) else {
        return false;
    };
    // SAFETY: `text` is a NUL-terminated string that lives across the call, which only reads it.
    unsafe { rusqlite::ffi::sqlite3_complete(text.as_ptr()) != 0 }
}

/// Runs every statement of `sql` to its end on `connection` (the bench's workers, which wait
/// with SQLite's own busy timeout): a failure is a result.
pub(super) fn execute(connection: &Connection, sql: &str) -> StepResult {
    let mut step = Step::new(sql);
    match step.advance(connection) {
        Ok(()) => step.result(),
        Err(error) => StepResult::Failed(db_error(&error)),
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
}

fn is_interrupt(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(ErrorCode::OperationInterrupted)
}

fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(r) => Some(r.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(b.iter().map(|byte| format!("{byte:02x}")).collect()),
    }
}

fn db_error(error: &rusqlite::Error) -> DbError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let kind = match failure.code {
                ErrorCode::DatabaseBusy => ErrorKind::Busy,
                ErrorCode::DatabaseLocked => ErrorKind::Locked,
                ErrorCode::ConstraintViolation => ErrorKind::Constraint,
                ErrorCode::OperationInterrupted => ErrorKind::Cancelled,
                ErrorCode::ReadOnly => ErrorKind::ReadOnly,
                ErrorCode::TypeMismatch | ErrorCode::TooBig | ErrorCode::ParameterOutOfRange => {
                    ErrorKind::DataException
                }
                _ => kind_from_message(message.as_deref().unwrap_or_default()),
            };
            let message = message.clone().unwrap_or_else(|| failure.to_string());
            DbError {
                kind,
                code: code_name(failure.extended_code),
                constraint: (kind == ErrorKind::Constraint)
                    .then(|| constraint_named(&message))
                    .flatten(),
                message,
            }
        }
        // A statement SQLite could not prepare: a syntax error, an unknown table or column.
        rusqlite::Error::SqlInputError { error, msg, .. } => DbError {
            kind: kind_from_message(msg),
            code: code_name(error.extended_code),
            message: msg.clone(),
            constraint: None,
        },
        other => DbError {
            kind: ErrorKind::Other,
            code: "error".to_string(),
            message: other.to_string(),
            constraint: None,
        },
    }
}

/// SQLite reports a syntax error and an unknown name with one code, SQLITE_ERROR: its words
/// tell them apart.
fn kind_from_message(message: &str) -> ErrorKind {
    if message.contains("syntax error") || message.starts_with("unrecognized token") {
        ErrorKind::Syntax
    } else if message.starts_with("no such ") || message.contains("has no column named") {
        ErrorKind::UndefinedObject
    } else {
        ErrorKind::Other
    }
}

/// The constraint SQLite names in `CHECK constraint failed: balance_floor` or
/// `UNIQUE constraint failed: locks.name`.
fn constraint_named(message: &str) -> Option<String> {
    let (_, name) = message.split_once("constraint failed: ")?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// The name of an extended result code, as SQLite's documentation spells it.
fn code_name(code: i32) -> String {
    use rusqlite::ffi;
    let name = match code {
        ffi::SQLITE_BUSY => "SQLITE_BUSY",
        ffi::SQLITE_BUSY_RECOVERY => "SQLITE_BUSY_RECOVERY",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
        ffi::SQLITE_LOCKED_SHAREDCACHE => "SQLITE_LOCKED_SHAREDCACHE",
        ffi::SQLITE_LOCKED_VTAB => "SQLITE_LOCKED_VTAB",
        ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
        ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "SQLITE_CONSTRAINT_FOREIGNKEY",
        ffi::SQLITE_CONSTRAINT_TRIGGER => "SQLITE_CONSTRAINT_TRIGGER",
        ffi::SQLITE_ERROR => "SQLITE_ERROR",
        ffi::SQLITE_READONLY => "SQLITE_READONLY",
        ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
        ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
        ffi::SQLITE_RANGE => "SQLITE_RANGE",
        other => return format!("SQLITE_{other}"),
    };
    name.to_string()
}
