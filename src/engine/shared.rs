//! What the engines' folders share: the first of several replies, the final query's rows, and
//! the SQL that saves and restores a run's data.

use std::future::Future;

use tokio::time::Instant;

use super::EngineError;
use crate::timeline::{DbError, ResultSet, StepResult};

/// The first reply to arrive, before `deadline`, of the `waiting` sessions that have one in
/// flight (`replies` gives each session's, in session order): its session and its answer.
pub(super) async fn first_reply<'a, F: Future + Unpin + 'a>(
    replies: impl Iterator<Item = Option<&'a mut F>>,
    waiting: &[usize],
    deadline: Instant,
) -> Option<(usize, F::Output)> {
    let (indices, futures): (Vec<usize>, Vec<&mut F>) = replies
        .enumerate()
        .filter(|(index, _)| waiting.contains(index))
        .filter_map(|(index, reply)| reply.map(|r| (index, r)))
        .unzip();
    if futures.is_empty() {
        return None;
    }
    let any = futures_util::future::select_all(futures);
    let (answer, position, _) = tokio::time::timeout_at(deadline, any).await.ok()?;
    Some((indices[position], answer))
}

/// The final query's answer as rows: a failure, or a command with no rows, is the tool's error.
/// `more` adds to a failure's message (PostgreSQL says when the run's role lacked a privilege).
pub(super) fn final_rows(
    result: StepResult,
    more: impl FnOnce(&DbError) -> String,
) -> Result<ResultSet, EngineError> {
    match result {
        StepResult::Rows(rows) => Ok(rows),
        StepResult::Reply(reply) => Ok(reply.rows()),
        StepResult::Failed(e) => Err(EngineError::Setup(format!(
            "the final check query failed: {}{}",
            e.message,
            more(&e)
        ))),
        StepResult::Command { .. } => Err(EngineError::Setup(
            "the final check query returned no rows".into(),
        )),
    }
}

/// SQL of the tool's own that keeps a copy of `tables` as the setup left them, and SQL that puts
/// them back (DELETE and INSERT, no DDL), for replaying many orders on one set of connections.
/// `quote` is the engine's identifier quote (`"`, or MariaDB's backtick).
pub(super) fn snapshot_sql(tables: &[String], quote: char) -> (String, String) {
    let q = |name: &str| format!("{quote}{name}{quote}");
    let saved = |t: &str| q(&format!("anomalies_saved_{t}"));
    let save = tables
        .iter()
        .map(|t| format!("CREATE TABLE {} AS SELECT * FROM {};", saved(t), q(t)))
        .collect();
    let deletes = tables
        .iter()
        .rev()
        .map(|t| format!("DELETE FROM {};", q(t)));
    let inserts = tables
        .iter()
        .map(|t| format!("INSERT INTO {} SELECT * FROM {};", q(t), saved(t)));
    (save, deletes.chain(inserts).collect())
}
