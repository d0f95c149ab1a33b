//! Filling a step's `${step.column}` holes from what its session read earlier in the run.

use crate::scenario::template::SqlHole;
use crate::scenario::{Scenario, StepId, StepKind};
use crate::timeline::{StepResult, Timeline};

/// A step's SQL as the timeline shows it, with every `${step.column}` its session can fill
/// filled and the others as written; and why the first of those cannot be filled, if one
/// cannot: the scenario is broken then, and the step is not sent.
pub(super) struct Filled {
    pub sql: String,
    pub problem: Option<String>,
}

/// Fills the step's holes from what its session read earlier in the run.
pub(super) fn fill(scenario: &Scenario, timeline: &Timeline, id: StepId) -> Filled {
    let mut problem = None;
    let step = scenario.step(id);
    let literal = |value: Option<&str>| match (step.kind, value) {
        (StepKind::Sql, Some(value)) => sql_literal(value),
        (StepKind::Sql, None) => "NULL".to_string(),
        // Redis has no null argument: an empty one.
        (_, value) => redis_argument(value.unwrap_or_default()),
    };
    let sql = step.sql.render(|hole| {
        hole_value(scenario, timeline, id.session, hole, &literal).unwrap_or_else(|why| {
            problem.get_or_insert(why);
            format!("${{{}.{}}}", hole.step_name, hole.column)
        })
    });
    Filled { sql, problem }
}

fn hole_value(
    scenario: &Scenario,
    timeline: &Timeline,
    session: usize,
    hole: &SqlHole,
    literal: &dyn Fn(Option<&str>) -> String,
) -> Result<String, String> {
    let earlier = StepId {
        session,
        step: hole.step,
    };
    let source = scenario.step_name(earlier);
    let reference = format!("${{{}.{}}}", hole.step_name, hole.column);
    let problem = |message: String| format!("{}: {message}", hole.at);
    let reply;
    let rows = match timeline.result_of(earlier) {
        Some(StepResult::Reply(answer)) => {
            reply = answer.rows();
            Some(&reply)
        }
        Some(StepResult::Rows(rows)) => Some(rows),
        _ => None,
    };
    match (rows, timeline.result_of(earlier)) {
        (Some(rows), _) => match rows.first(&hole.column, &source) {
            Ok(Some(value)) => Ok(literal(value)),
            Ok(None) => Err(problem(format!(
                "{source} returned no rows, so {reference} has no value (`no_rows = \
                 \"give-up\"` on {source} stops the session there instead)"
            ))),
            Err(message) => Err(problem(message)),
        },
        (None, Some(StepResult::Command { .. })) => Err(problem(format!(
            "{source} is a command and returned no rows, so {reference} has no value"
        ))),
        (None, _) => Err(problem(format!(
            "{source} has not returned anything, so {reference} has no value"
        ))),
    }
}

/// A value written into a Redis command: as it is, or quoted when it holds white space or
/// quotes, so that it stays one argument.
fn redis_argument(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        return value.to_string();
    }
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A value read by the database, written back into SQL: numbers as they are, text quoted.
fn sql_literal(value: &str) -> String {
    if value.parse::<f64>().is_ok() {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{Event, EventKind, ResultSet};

    /// Lost-update's John, whose write is `... ${read.balance} - 120 ...`, after his read
    /// returned `result`.
    fn john_write(result: StepResult) -> Result<String, String> {
        let scenario = Scenario::load("lost-update").unwrap();
        let read = StepId {
            session: 1,
            step: 1,
        };
        let timeline = Timeline {
            events: vec![Event {
                step: read,
                sql: String::new(),
                kind: EventKind::Done { result },
                deferred: false,
                attempt: 1,
            }],
            ..Default::default()
        };
        let write = StepId {
            session: 1,
            step: 2,
        };
        let filled = fill(&scenario, &timeline, write);
        filled.problem.map_or(Ok(filled.sql), Err)
    }

    fn rows(columns: &[&str], rows: &[&[Option<&str>]]) -> StepResult {
        StepResult::Rows(ResultSet {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|row| row.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
            earlier: Vec::new(),
        })
    }

    #[test]
    fn numbers_text_and_null_go_in_as_sql() {
        let sql = john_write(rows(&["balance"], &[&[Some("200")]])).unwrap();
        assert_eq!(sql, "UPDATE accounts SET balance = 200 - 120 WHERE id = 1");
        let sql = john_write(rows(&["balance"], &[&[Some("it's")]])).unwrap();
        assert!(sql.contains("= 'it''s' - 120"), "{sql}");
        let sql = john_write(rows(&["balance"], &[&[None]])).unwrap();
        assert!(sql.contains("= NULL - 120"), "{sql}");
    }

    #[test]
    fn a_hole_that_cannot_be_filled_says_why_and_where() {
        let error = john_write(rows(&["id", "balanc"], &[&[Some("1"), Some("200")]])).unwrap_err();
        assert!(
            error.starts_with("builtin:lost-update:")
                && error.ends_with(
                    "no column balance in john.read (columns: id, balanc); did you mean balanc?"
                ),
            "{error}"
        );
        let error = john_write(rows(&["balance"], &[])).unwrap_err();
        assert!(error.contains("john.read returned no rows"), "{error}");
        let error = john_write(StepResult::Command { rows_affected: 1 }).unwrap_err();
        assert!(error.contains("john.read is a command"), "{error}");
    }
}
