//! A server's reply to a step, as the timeline records it: rows, a command, or a database error
//! with its portable kind.

use futures_util::TryStreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryStream};

use super::connect::pg_error;
use crate::engine::{EngineError, Settled};
use crate::timeline::{DbError, ErrorKind, ResultSet, StepResult};

/// The whole answer to a query sent with `simple_query_raw`, which resolves once the query is
/// on the wire: so several can be sent, one behind the other, before any answer is read.
pub(super) async fn answer(
    sent: Result<SimpleQueryStream, tokio_postgres::Error>,
) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
    sent?.try_collect().await
}

pub(super) fn step_result(
    answer: Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>,
) -> Result<Settled, EngineError> {
    let messages = match answer {
        Ok(messages) => messages,
        Err(error) => {
            let Some(db) = error.as_db_error() else {
                return Err(pg_error(error));
            };
            let code = db.code();
            let kind = error_kind(code);
            return Ok(Settled::Done(StepResult::Failed(DbError {
                kind,
                code: code.code().to_string(),
                message: db.message().to_string(),
                constraint: db.constraint().map(str::to_string),
            })));
        }
    };
    // A step may hold several statements; the last one that returned rows speaks for it.
    let mut result = StepResult::Command { rows_affected: 0 };
    let mut current: Option<ResultSet> = None;
    // Every set of rows, in order; the last speaks for the step and carries the others.
    let mut earlier: Vec<ResultSet> = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current = Some(ResultSet {
                    columns: columns.iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                    earlier: Vec::new(),
                });
            }
            SimpleQueryMessage::Row(row) => {
                let set = current.get_or_insert_with(|| ResultSet {
                    columns: row.columns().iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                    earlier: Vec::new(),
                });
                set.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(count) => {
                result = match current.take() {
                    Some(set) => {
                        if let StepResult::Rows(before) =
                            std::mem::replace(&mut result, StepResult::Command { rows_affected: 0 })
                        {
                            earlier.push(ResultSet {
                                earlier: Vec::new(),
                                ..before
                            });
                        }
                        StepResult::Rows(ResultSet {
                            earlier: earlier.clone(),
                            ..set
                        })
                    }
                    None if matches!(result, StepResult::Rows(_)) => continue,
                    None => StepResult::Command {
                        rows_affected: count,
                    },
                };
            }
            _ => {}
        }
    }
    Ok(Settled::Done(result))
}

/// The portable kind of a SQLSTATE.
fn error_kind(code: &SqlState) -> ErrorKind {
    let undefined = [
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_COLUMN,
        SqlState::UNDEFINED_FUNCTION,
        SqlState::UNDEFINED_OBJECT,
        SqlState::UNDEFINED_PARAMETER,
        SqlState::INVALID_SCHEMA_NAME,
    ];
    if *code == SqlState::T_R_SERIALIZATION_FAILURE {
        ErrorKind::SerializationFailure
    } else if *code == SqlState::T_R_DEADLOCK_DETECTED {
        ErrorKind::Deadlock
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        ErrorKind::LockNotAvailable
    } else if *code == SqlState::QUERY_CANCELED {
        ErrorKind::Cancelled
    } else if code.code().starts_with("23") {
        ErrorKind::Constraint
    } else if *code == SqlState::SYNTAX_ERROR {
        ErrorKind::Syntax
    } else if undefined.contains(code) {
        ErrorKind::UndefinedObject
    } else if code.code().starts_with("22") {
        ErrorKind::DataException
    } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        ErrorKind::ReadOnly
    } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
        ErrorKind::Privilege
    } else {
        ErrorKind::Other
    }
}

pub(super) fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}
