//! The bench's workers on MariaDB: the run's session connections (each a task of its own that
//! owns the connection), answered as a step is.

use async_trait::async_trait;

use super::run::MariaRun;
use super::worker::{received, step_result, Worker as Connection};
use crate::engine::bench::{BenchConnection, Worker};
use crate::engine::EngineError;
use crate::timeline::StepResult;

struct MariaWorker(Connection);

pub(super) fn workers(run: &MariaRun) -> Vec<Worker> {
    run.sessions
        .iter()
        .map(|session| Worker::new(Box::new(MariaWorker(session.worker.clone()))))
        .collect()
}

#[async_trait(?Send)]
impl BenchConnection for MariaWorker {
    async fn execute(&self, sql: &str) -> Result<StepResult, EngineError> {
        step_result(received(self.0.submit(sql).await)?)
    }
}
