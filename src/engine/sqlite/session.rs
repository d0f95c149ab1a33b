//! A session's thread: its connection, the busy handler that reports waits, and statements run
//! as steps (a failure is a result, as on PostgreSQL).

use std::cell::RefCell;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use rusqlite::types::ValueRef;
use rusqlite::{Batch, Connection, ErrorCode, InterruptHandle, TransactionState};
use tokio::sync::mpsc;

use crate::engine::EngineError;
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

pub(super) struct SqliteSession {
    pub(super) commands: Option<std_mpsc::Sender<String>>,
    pub(super) events: mpsc::UnboundedReceiver<SessionEvent>,
    pub(super) pokes: std_mpsc::Sender<Poke>,
    pub(super) interrupt: InterruptHandle,
    /// The busy handler is blocked waiting for a poke.
    pub(super) in_busy_handler: bool,
    pub(super) thread: Option<JoinHandle<()>>,
}

pub(super) enum SessionEvent {
    Waiting,
    Done(StepResult, TxnState),
}

pub(super) enum Poke {
    Retry,
    GiveUp,
}

struct BusyLink {
    events: mpsc::UnboundedSender<SessionEvent>,
    pokes: std_mpsc::Receiver<Poke>,
}

thread_local! {
    /// The busy handler is a plain `fn`; it finds its session's channels here.
    static BUSY_LINK: RefCell<Option<BusyLink>> = const { RefCell::new(None) };
}

/// Called by SQLite when a lock is taken: report waiting, then wait for the runner's word.
pub(super) fn busy_handler(_attempt: i32) -> bool {
    BUSY_LINK.with(|link| {
        let link = link.borrow();
        let Some(link) = link.as_ref() else {
            return false;
        };
        if link.events.send(SessionEvent::Waiting).is_err() {
            return false;
        }
        matches!(link.pokes.recv(), Ok(Poke::Retry))
    })
}

pub(super) fn spawn_session(
    connection: Connection,
    name: &str,
) -> Result<SqliteSession, EngineError> {
    let (command_tx, command_rx) = std_mpsc::channel::<String>();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let (poke_tx, poke_rx) = std_mpsc::channel();
    let interrupt = connection.get_interrupt_handle();
    let thread = std::thread::Builder::new()
        .name(format!("sqlite-{name}"))
        .spawn(move || {
            BUSY_LINK.with(|link| {
                *link.borrow_mut() = Some(BusyLink {
                    events: event_tx.clone(),
                    pokes: poke_rx,
                })
            });
            for sql in command_rx {
                let result = execute(&connection, &sql);
                let state = match connection.transaction_state(None) {
                    Ok(TransactionState::Write) => TxnState::Write,
                    Ok(TransactionState::Read) => TxnState::Read,
                    _ if !connection.is_autocommit() => TxnState::Open,
                    _ => TxnState::None,
                };
                if event_tx.send(SessionEvent::Done(result, state)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| EngineError::Sqlite(format!("cannot start a session thread: {e}")))?;
    Ok(SqliteSession {
        commands: Some(command_tx),
        events: event_rx,
        pokes: poke_tx,
        interrupt,
        in_busy_handler: false,
        thread: Some(thread),
    })
}

/// Runs a step's statements; like PostgreSQL's simple protocol, the last one that returned rows
/// speaks for the step, and a failure is a result.
pub(super) fn execute(connection: &Connection, sql: &str) -> StepResult {
    let run = || -> rusqlite::Result<StepResult> {
        let mut batch = Batch::new(connection, sql);
        let mut sets: Vec<ResultSet> = Vec::new();
        let mut command = StepResult::Command { rows_affected: 0 };
        while let Some(mut statement) = batch.next()? {
            if statement.column_count() == 0 {
                // SQLite's change count is sticky: BEGIN and COMMIT (read-only statements to
                // SQLite) would repeat the last UPDATE's count.
                let read_only = statement.readonly();
                let changes = statement.execute([])?;
                command = StepResult::Command {
                    rows_affected: if read_only { 0 } else { changes as u64 },
                };
                continue;
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
            sets.push(ResultSet {
                columns,
                rows: out,
                earlier: Vec::new(),
            });
        }
        // The last set speaks for the step; the earlier ones come with it.
        Ok(match sets.pop() {
            Some(last) => StepResult::Rows(ResultSet {
                earlier: sets,
                ..last
            }),
            None => command,
        })
    };
    match run() {
        Ok(result) => result,
        Err(error) => StepResult::Failed(db_error(&error)),
    }
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
