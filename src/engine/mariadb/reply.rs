//! A server error as the timeline records it: its portable kind and the rule it names.

use crate::timeline::{DbError, ErrorKind};

pub(super) fn db_error(code: u16, _state: &str, message: &str) -> DbError {
    DbError {
        kind: error_kind(code),
        code: code.to_string(),
        message: message.to_string(),
        constraint: constraint_named(code, message),
    }
}

/// The portable kind of a server error number.
fn error_kind(code: u16) -> ErrorKind {
    match code {
        // ER_LOCK_DEADLOCK: the victim's transaction is rolled back.
        1213 => ErrorKind::Deadlock,
        // ER_LOCK_WAIT_TIMEOUT (only the statement is rolled back; also MariaDB's NOWAIT),
        // MySQL's ER_LOCK_NOWAIT.
        1205 | 3572 => ErrorKind::LockNotAvailable,
        // ER_CHECKREAD: "Record has changed since last read" (innodb_snapshot_isolation).
        1020 => ErrorKind::SerializationFailure,
        // Duplicate key, NOT NULL, foreign keys, CHECK (MySQL 3819, MariaDB 4025).
        1062 | 1048 | 1216 | 1217 | 1451 | 1452 | 1557 | 1586 | 3819 | 4025 => {
            ErrorKind::Constraint
        }
        1064 | 1149 => ErrorKind::Syntax,
        // Unknown table, column, function or procedure, database, variable.
        1146 | 1054 | 1305 | 1049 | 1109 | 1193 | 1630 => ErrorKind::UndefinedObject,
        // Out of range, division by zero, bad values for a type.
        1264 | 1365 | 1292 | 1366 | 1690 | 1406 | 1265 => ErrorKind::DataException,
        // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
        1792 => ErrorKind::ReadOnly,
        // Access denied: to a database, a table, a column, a command; a privilege it needs.
        1044 | 1142 | 1143 | 1227 | 1370 => ErrorKind::Privilege,
        // Interrupted (KILL QUERY), or a statement time limit.
        1317 | 1969 | 3024 => ErrorKind::Cancelled,
        _ => ErrorKind::Other,
    }
}

/// The rule a write broke, where the message names it: `` CONSTRAINT `balance_floor` failed ``,
/// a foreign key's `` CONSTRAINT `fk` ``, a duplicate's `for key 'PRIMARY'`.
fn constraint_named(code: u16, message: &str) -> Option<String> {
    let between = |after: &str, close: char| -> Option<String> {
        let start = message.find(after)? + after.len();
        let end = message[start..].find(close)?;
        Some(message[start..start + end].to_string())
    };
    match code {
        4025 | 3819 | 1451 | 1452 => between("CONSTRAINT `", '`'),
        1062 => between("for key '", '\'').map(|key| {
            // MySQL 8 names the key with its table: `accounts.PRIMARY`.
            key.rsplit('.').next().unwrap_or(&key).to_string()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_failures_and_constraints_are_mechanisms_and_the_rest_are_not() {
        for code in [1213, 1205, 1020, 1062, 4025, 3819, 1452, 1048] {
            assert!(error_kind(code).is_mechanism(), "{code}");
        }
        for code in [1064, 1146, 1054, 1317, 1792, 1365, 1142, 9999] {
            assert!(!error_kind(code).is_mechanism(), "{code}");
        }
    }

    #[test]
    fn the_broken_rule_is_named() {
        let check = "CONSTRAINT `balance_floor` failed for `anomalies_1`.`accounts`";
        assert_eq!(
            constraint_named(4025, check).as_deref(),
            Some("balance_floor")
        );
        let duplicate = "Duplicate entry '1' for key 'PRIMARY'";
        assert_eq!(
            constraint_named(1062, duplicate).as_deref(),
            Some("PRIMARY")
        );
        let mysql = "Duplicate entry '1' for key 'jobs.PRIMARY'";
        assert_eq!(constraint_named(1062, mysql).as_deref(), Some("PRIMARY"));
    }
}
