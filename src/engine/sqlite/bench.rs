//! The bench's workers on SQLite: a connection of their own to the run's file, one thread
//! each, and SQLite's own busy timeout instead of the runner's busy handler (which waits for
//! the runner's word that another step finished). Dropping a worker ends its thread.

use std::path::Path;
use std::sync::mpsc as std_mpsc;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::session::execute;
use super::sqlite_error;
use crate::engine::bench::{BenchConnection, Worker};
use crate::engine::EngineError;
use crate::timeline::StepResult;

/// How long a bench statement waits for SQLite's write lock before `SQLITE_BUSY`.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type Job = (String, oneshot::Sender<StepResult>);

struct SqliteWorker(std_mpsc::Sender<Job>);

/// `n` workers on the database at `path`.
pub(super) fn workers(path: &Path, n: usize) -> Result<Vec<Worker>, EngineError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut workers = Vec::with_capacity(n);
    for index in 0..n {
        let connection = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(sqlite_error)?;
        let (jobs, queue) = std_mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("sqlite-bench-{index}"))
            .spawn(move || {
                for (sql, done) in queue {
                    let _ = done.send(execute(&connection, &sql));
                }
            })
            .map_err(|e| EngineError::Sqlite(format!("cannot start a bench thread: {e}")))?;
        workers.push(Worker::new(Box::new(SqliteWorker(jobs))));
    }
    Ok(workers)
}

#[async_trait(?Send)]
impl BenchConnection for SqliteWorker {
    async fn execute(&self, sql: &str) -> Result<StepResult, EngineError> {
        let (done, answer) = oneshot::channel();
        self.0
            .send((sql.to_string(), done))
            .map_err(|_| EngineError::Sqlite("a bench thread ended unexpectedly".into()))?;
        answer
            .await
            .map_err(|_| EngineError::Sqlite("a bench thread ended unexpectedly".into()))
    }
}
