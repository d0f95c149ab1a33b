//! The engine layer's own failures, each one line.

use super::{cluster, mariadb, redis};

/// A failure of the tool's own work with a database: no server, a lost connection, bad setup SQL.
/// A statement of a step that fails is not this: it is a [`StepResult::Failed`] in the timeline.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Setup(String),
    /// No server binaries to start a throwaway server from (`Choice::Auto` then falls back).
    #[error("{0}")]
    NoServer(String),
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("cannot connect to MariaDB at {target}: {reason}")]
    MariadbConnect { target: String, reason: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("MariaDB: {0}")]
    Mariadb(String),
    #[error("SQLite: {0}")]
    Sqlite(String),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    MariaServer(#[from] mariadb::server::MariaError),
    #[error("cannot connect to Redis at {target}: {reason}")]
    RedisConnect { target: String, reason: String },
    #[error("Redis: {0}")]
    Redis(String),
    #[error(transparent)]
    RedisServer(#[from] redis::server::RedisServerError),
}
