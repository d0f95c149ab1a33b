//! Steps sent as prepared statements where `explore` replays them order after order: a query a
//! session has sent is prepared on its connection at the next reset (pipelined behind its
//! `ROLLBACK`, so no round trip is added), and from then on goes out as `EXECUTE`, which the
//! server neither parses nor plans again. The reply is the same: the simple protocol's text rows,
//! the statement's own command tag, its errors. Only where every step of the scenario is made of
//! queries and transaction control (no DDL, no `SET`, no `LOCK`), so that a plan made once stays
//! the one the text would get, and only where the split of a step into statements is sure.

use std::collections::HashMap;
use std::future::Future;

use tokio_postgres::Client;

use super::connect::pg_error;
use super::reply::answer;
use super::waits::{controls_transaction, first_word};
use super::PgSession;
use crate::engine::EngineError;
use crate::scenario::template::Part;
use crate::scenario::{Scenario, StepKind};

/// The most statements a session prepares: a step whose holes fill in differently in every
/// order would otherwise prepare one statement an order.
const MOST: usize = 64;

/// The statements of `sql`, split at its semicolons, where that split is sure: outside quotes
/// (`'…'` and `"…"`, doubled to escape), with no dollar quote, comment or backslash escape.
/// `None` otherwise.
pub(super) fn statements(sql: &str) -> Option<Vec<&str>> {
    if sql.contains(['$', '\\']) || sql.contains("--") || sql.contains("/*") {
        return None;
    }
    let (mut statements, mut start, mut quote) = (Vec::new(), 0, None);
    for (i, c) in sql.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => {
                statements.push(sql[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return None;
    }
    statements.push(sql[start..].trim());
    statements.retain(|s| !s.is_empty());
    Some(statements)
}

/// A statement `PREPARE` takes: a query.
fn is_query(statement: &str) -> bool {
    let word = first_word(statement);
    [
        "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "VALUES", "TABLE",
    ]
    .iter()
    .any(|k| word.eq_ignore_ascii_case(k))
}

/// Whether `scenario`'s steps may be prepared: every SQL step, its holes aside, splits surely
/// into queries and transaction control. A step that changes a table's definition, the search
/// path or a setting could leave a prepared plan other than the one its text would get.
pub(super) fn scenario_prepares(scenario: &Scenario) -> bool {
    let steps = scenario.sessions.iter().flat_map(|s| &s.steps);
    steps.filter(|step| step.kind == StepKind::Sql).all(|step| {
        let text: String = (step.sql.parts.iter())
            .map(|part| match part {
                Part::Text(text) => text.as_str(),
                Part::Hole(_) => "0",
            })
            .collect();
        statements(&text).is_some_and(|statements| {
            (statements.iter()).all(|s| is_query(s) || controls_transaction(s, true))
        })
    })
}

/// A query to prepare, and the name it gets.
#[derive(Debug)]
pub(super) struct Due {
    name: String,
    query: String,
}

impl Due {
    fn sql(&self) -> String {
        format!("PREPARE {} AS {}", self.name, self.query)
    }
}

/// One connection's prepared statements.
#[derive(Default)]
pub(super) struct Prepared {
    /// A query's text, and the name it is prepared under (`None`: its `PREPARE` failed, and it
    /// goes as text).
    names: HashMap<String, Option<String>>,
    /// Queries sent as text, to prepare at the next reset.
    due: Vec<String>,
}

impl Prepared {
    /// `sql` as it goes out on this connection: each query prepared here as its `EXECUTE`. A
    /// query that is not yet is noted for the next reset.
    pub(super) fn rewrite(&mut self, sql: &str) -> String {
        let Some(statements) = statements(sql) else {
            return sql.to_string();
        };
        let mut rewritten = false;
        let sent: Vec<String> = statements
            .into_iter()
            .map(|statement| match self.names.get(statement) {
                Some(Some(name)) => {
                    rewritten = true;
                    format!("EXECUTE {name}")
                }
                Some(None) => statement.to_string(),
                None => {
                    let room = self.names.len() + self.due.len() < MOST;
                    if room && is_query(statement) && !self.due.iter().any(|d| d == statement) {
                        self.due.push(statement.to_string());
                    }
                    statement.to_string()
                }
            })
            .collect();
        match rewritten {
            true => sent.join("; "),
            false => sql.to_string(),
        }
    }

    /// The queries due, each named, for [`Prepared::record`].
    pub(super) fn take_due(&mut self) -> Vec<Due> {
        let first = self.names.len();
        std::mem::take(&mut self.due)
            .into_iter()
            .enumerate()
            .map(|(i, query)| Due {
                name: format!("anomalies_{}", first + i + 1),
                query,
            })
            .collect()
    }

    /// Whether each of [`Prepared::take_due`]'s `PREPARE`s took, in its order.
    pub(super) fn record(&mut self, due: Vec<Due>, prepared: Vec<bool>) {
        for (Due { name, query }, ok) in due.into_iter().zip(prepared) {
            self.names.insert(query, ok.then_some(name));
        }
    }

    /// The connection was reset (`DISCARD ALL`): nothing is prepared on it.
    pub(super) fn clear(&mut self) {
        self.names.clear();
        self.due.clear();
    }
}

/// Ends every session's transaction, on the primary and on a standby, while `with` runs; with
/// `prepare`, the queries due on a session's connection are prepared behind its `ROLLBACK`,
/// pipelined: still one round trip of waiting. `with`'s own output.
pub(super) async fn end_sessions<T>(
    sessions: &mut [PgSession],
    prepare: bool,
    with: impl Future<Output = T>,
) -> Result<T, EngineError> {
    let due: Vec<Vec<Due>> = (sessions.iter_mut())
        .map(|session| match prepare {
            true => session.prepared.take_due(),
            false => Vec::new(),
        })
        .collect();
    let ends =
        (sessions.iter().zip(&due)).map(|(session, due)| end_and_prepare(&session.client, due));
    let standby_ends = (sessions.iter().flat_map(|session| &session.standby))
        .map(|(client, _)| client.simple_query("ROLLBACK"));
    let (ended, standby_ended, output) = tokio::join!(
        futures_util::future::join_all(ends),
        futures_util::future::join_all(standby_ends),
        with
    );
    for result in standby_ended {
        result.map_err(pg_error)?;
    }
    for ((session, due), ended) in sessions.iter_mut().zip(due).zip(ended) {
        session.prepared.record(due, ended.map_err(pg_error)?);
    }
    Ok(output)
}

/// `ROLLBACK`, then each `PREPARE` of `due`, sent one behind the other before any answer is
/// read; whether each `PREPARE` took. A failed one, outside any transaction, changed nothing.
async fn end_and_prepare(client: &Client, due: &[Due]) -> Result<Vec<bool>, tokio_postgres::Error> {
    let rollback = client.simple_query_raw("ROLLBACK").await;
    let mut prepares = Vec::with_capacity(due.len());
    for due in due {
        prepares.push(client.simple_query_raw(&due.sql()).await);
    }
    answer(rollback).await?;
    let mut prepared = Vec::with_capacity(prepares.len());
    for prepare in prepares {
        prepared.push(answer(prepare).await.is_ok());
    }
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::{scenario_prepares, statements, Prepared};
    use crate::scenario::template::{Part, SqlTemplate};
    use crate::scenario::Scenario;

    #[test]
    fn a_step_splits_only_where_the_split_is_sure() {
        assert_eq!(
            statements("BEGIN; SELECT 'a;b' AS \"x;\" FROM t;"),
            Some(vec!["BEGIN", "SELECT 'a;b' AS \"x;\" FROM t"])
        );
        assert_eq!(
            statements("SELECT 'it''s; fine'"),
            Some(vec!["SELECT 'it''s; fine'"])
        );
        for unsure in [
            "SELECT $$;$$",
            "SELECT 1 -- ;",
            "SELECT /* ; */ 1",
            "SELECT E'\\'; 1'",
            "SELECT 'open",
        ] {
            assert_eq!(statements(unsure), None, "{unsure}");
        }
    }

    #[test]
    fn a_query_goes_as_execute_once_it_is_prepared() {
        let mut prepared = Prepared::default();
        let step = "BEGIN; SELECT balance FROM accounts WHERE id = 1";
        assert_eq!(prepared.rewrite(step), step, "nothing prepared yet");
        assert_eq!(prepared.rewrite(step), step);
        let due = prepared.take_due();
        let sql: Vec<String> = due.iter().map(|d| d.sql()).collect();
        assert_eq!(
            sql,
            ["PREPARE anomalies_1 AS SELECT balance FROM accounts WHERE id = 1"],
            "one PREPARE for a query sent twice, none for BEGIN"
        );
        prepared.record(due, vec![true]);
        assert_eq!(prepared.rewrite(step), "BEGIN; EXECUTE anomalies_1");
        prepared.rewrite("UPDATE accounts SET balance = 0");
        let due = prepared.take_due();
        assert_eq!(
            due[0].sql(),
            "PREPARE anomalies_2 AS UPDATE accounts SET balance = 0"
        );
        prepared.record(due, vec![false]);
        assert_eq!(
            prepared.rewrite("UPDATE accounts SET balance = 0"),
            "UPDATE accounts SET balance = 0",
            "a query whose PREPARE failed goes as text"
        );
        assert!(prepared.take_due().is_empty(), "and is not prepared again");
        prepared.clear();
        assert_eq!(prepared.rewrite(step), step, "DISCARD ALL dropped them");
    }

    #[test]
    fn only_queries_and_transaction_control_are_prepared() {
        let with = |sql: &str| {
            let mut scenario = Scenario::load("lost-update").unwrap();
            let step = &mut scenario.sessions[0].steps[0];
            step.sql = SqlTemplate {
                parts: vec![Part::Text(sql.to_string())],
            };
            scenario_prepares(&scenario)
        };
        assert!(scenario_prepares(&Scenario::load("lost-update").unwrap()));
        assert!(with("BEGIN; SELECT 1"));
        for sql in [
            "BEGIN; SET LOCAL lock_timeout = '1s'",
            "LOCK TABLE accounts",
            "ALTER TABLE accounts ADD COLUMN x int",
            "SELECT $$x$$",
        ] {
            assert!(!with(sql), "{sql}");
        }
    }
}
