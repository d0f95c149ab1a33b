//! The bench's workers on PostgreSQL: the run's session connections, each statement sent with
//! the simple protocol (as pgbench's default `-M simple` does), answered as a step is.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::Client;

use super::reply::step_result;
use super::PgRun;
use crate::engine::bench::{BenchConnection, Worker};
use crate::engine::{EngineError, Settled};
use crate::timeline::StepResult;

struct PgWorker(Arc<Client>);

pub(super) fn workers(run: &PgRun) -> Vec<Worker> {
    run.sessions
        .iter()
        .map(|session| Worker::new(Box::new(PgWorker(session.client.clone()))))
        .collect()
}

#[async_trait(?Send)]
impl BenchConnection for PgWorker {
    async fn execute(&self, sql: &str) -> Result<StepResult, EngineError> {
        match step_result(self.0.simple_query(sql).await)? {
            Settled::Done(result) => Ok(result),
            other => Err(EngineError::Postgres(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}
