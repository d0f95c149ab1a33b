//! The bench's side of the seam: a run's connections as plain workers that execute SQL and
//! answer with a [`StepResult`] (rows, a command's count, or a failure with its portable
//! [`ErrorKind`](crate::timeline::ErrorKind)), with no wait probes, so that many of them can run
//! flat out at once. A run made by [`Engine::prepare`](super::Engine::prepare) keeps its private
//! schema (or database, or file) and its clean-up; the workers are lent, and are dropped before
//! [`Run::finish`](super::Run::finish).

use async_trait::async_trait;

pub use super::redis::RedisLock;
use super::{Engine, EngineError, Run};
use crate::timeline::StepResult;

/// What one engine's folder implements for the bench (`engine/<engine>/bench.rs`).
#[async_trait(?Send)]
pub(crate) trait BenchConnection {
    /// Runs `sql` (one statement or several) and returns the last result that had rows, else
    /// the last command's count; a failing statement is `StepResult::Failed`, as in a run.
    async fn execute(&self, sql: &str) -> Result<StepResult, EngineError>;
}

/// One connection of a run, for the bench.
pub struct Worker(Box<dyn BenchConnection>);

impl Worker {
    pub(crate) fn new(connection: Box<dyn BenchConnection>) -> Worker {
        Worker(connection)
    }

    pub async fn execute(&self, sql: &str) -> Result<StepResult, EngineError> {
        self.0.execute(sql).await
    }
}

impl Run {
    /// One worker per session of the run, on the session's connection (at the session's level,
    /// in the run's private data). Drop them before [`Run::finish`].
    pub fn workers(&mut self) -> Result<Vec<Worker>, EngineError> {
        self.db.bench_workers()
    }
}

impl Engine {
    /// `n` Redis lock clients (the bench's `redis-lock`), on the Redis beside the database:
    /// `--redis-url`'s, or a throwaway one started now.
    pub async fn redis_locks(&self, n: usize) -> Result<Vec<RedisLock>, EngineError> {
        self.redis().await?.locks(n).await
    }
}
