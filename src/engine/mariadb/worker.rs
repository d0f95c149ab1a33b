//! A connection driven by a task of its own: SQL goes in over a channel, each answer comes back
//! on a oneshot. A caller may stop listening (a probe that lost the race to the step's reply)
//! and the task still reads the whole answer, so the connection never falls out of step with
//! the server; the next job simply queues behind it.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use tokio::sync::{mpsc, oneshot};

use super::connect::error_text;
use super::reply::db_error;
use crate::engine::EngineError;
use crate::timeline::{ResultSet, StepResult};

/// One statement's answer: rows (with their columns), or a command's count.
#[derive(Debug, Clone)]
pub(super) struct Set {
    pub(super) columns: Option<Vec<String>>,
    pub(super) rows: Vec<Vec<Option<String>>>,
    pub(super) affected: u64,
}

pub(super) type Answer = Result<Vec<Set>, mysql_async::Error>;

enum Job {
    Sql {
        sql: String,
        done: oneshot::Sender<Answer>,
    },
    /// `COM_RESET_CONNECTION`; answers whether the server has it.
    Reset {
        done: oneshot::Sender<Result<bool, mysql_async::Error>>,
    },
}

#[derive(Clone)]
pub(super) struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    /// The connection's id (`CONNECTION_ID()`), which the server's lock lists name.
    pub(super) id: u32,
}

impl Worker {
    pub(super) fn start(mut conn: Conn) -> Worker {
        let id = conn.id();
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Sql { sql, done } => {
                        let _ = done.send(read_sets(&mut conn, &sql).await);
                    }
                    Job::Reset { done } => {
                        let _ = done.send(conn.reset().await);
                    }
                }
            }
            let _ = conn.disconnect().await;
        });
        Worker { jobs, id }
    }

    /// Sends SQL; the answer arrives on the returned receiver.
    pub(super) fn submit(&self, sql: &str) -> oneshot::Receiver<Answer> {
        let (done, answer) = oneshot::channel();
        // A closed queue drops `done`, and the receiver reports the connection gone.
        let _ = self.jobs.send(Job::Sql {
            sql: sql.to_string(),
            done,
        });
        answer
    }

    /// Resets the connection as the server does for a pooled one (`COM_RESET_CONNECTION`): its
    /// transaction rolled back, its session variables, user variables, temporary tables,
    /// prepared statements, table locks and `GET_LOCK` locks gone. `false`, having done
    /// nothing, on a server without it (MariaDB before 10.2.4, MySQL before 5.7.3).
    pub(super) async fn reset(&self) -> Result<bool, EngineError> {
        let (done, answer) = oneshot::channel();
        let _ = self.jobs.send(Job::Reset { done });
        received(answer.await)?.map_err(|e| EngineError::Mariadb(error_text(&e)))
    }

    /// SQL of the tool's own: a server error is an `Err` here.
    pub(super) async fn query(&self, sql: &str) -> Result<Vec<Set>, EngineError> {
        received(self.submit(sql).await)?.map_err(|e| EngineError::Mariadb(error_text(&e)))
    }

    /// The first column of every row, NULLs left out.
    pub(super) async fn column(&self, sql: &str) -> Result<Vec<String>, EngineError> {
        let sets = self.query(sql).await?;
        Ok(sets
            .into_iter()
            .flat_map(|set| set.rows)
            .filter_map(|row| row.into_iter().next().flatten())
            .collect())
    }

    /// The first value of the last set of rows.
    pub(super) async fn value(&self, sql: &str) -> Result<Option<String>, EngineError> {
        let sets = self.query(sql).await?;
        Ok(sets
            .iter()
            .rev()
            .find(|set| set.columns.is_some())
            .and_then(|set| set.rows.first())
            .and_then(|row| row.first().cloned().flatten()))
    }
}

/// What a oneshot brought: the answer, or the news that the connection's task has ended.
pub(super) fn received<T>(answer: Result<T, oneshot::error::RecvError>) -> Result<T, EngineError> {
    answer.map_err(|_| EngineError::Mariadb("the connection to the server is gone".into()))
}

/// A step's answer as the timeline records it: a server error is a failed step; the last set of
/// rows speaks for a step of several statements, else the last command.
pub(super) fn step_result(answer: Answer) -> Result<StepResult, EngineError> {
    let sets = match answer {
        Ok(sets) => sets,
        Err(mysql_async::Error::Server(error)) => {
            return Ok(StepResult::Failed(db_error(
                error.code,
                &error.state,
                &error.message,
            )))
        }
        Err(other) => return Err(EngineError::Mariadb(error_text(&other))),
    };
    let mut with_rows: Vec<ResultSet> = sets
        .iter()
        .filter_map(|set| {
            Some(ResultSet {
                columns: set.columns.clone()?,
                rows: set.rows.clone(),
                earlier: Vec::new(),
            })
        })
        .collect();
    let rows = with_rows.pop().map(|last| ResultSet {
        earlier: with_rows,
        ..last
    });
    Ok(match (rows, sets.last()) {
        (Some(set), _) => StepResult::Rows(set),
        (None, Some(last)) => StepResult::Command {
            rows_affected: last.affected,
        },
        (None, None) => StepResult::Command { rows_affected: 0 },
    })
}

async fn read_sets(conn: &mut Conn, sql: &str) -> Answer {
    let mut sets = Vec::new();
    let mut reply = conn.query_iter(sql).await?;
    loop {
        let columns = reply
            .columns()
            .filter(|columns| !columns.is_empty())
            .map(|columns| columns.iter().map(|c| c.name_str().into_owned()).collect());
        let affected = reply.affected_rows();
        let rows: Vec<Row> = reply.collect().await?;
        sets.push(Set {
            columns,
            rows: rows.into_iter().map(row_values).collect(),
            affected,
        });
        if reply.is_empty() {
            // A later statement's error waits as the pending result, which `is_empty` does not
            // count: reading once more brings it out (and reads nothing when there is none).
            let _: Vec<Row> = reply.collect().await?;
            return Ok(sets);
        }
    }
}

/// The text protocol sends every value as text (or NULL).
fn row_values(row: Row) -> Vec<Option<String>> {
    row.unwrap()
        .into_iter()
        .map(|value| match value {
            Value::NULL => None,
            Value::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => Some(other.as_sql(true).trim_matches('\'').to_string()),
        })
        .collect()
}
