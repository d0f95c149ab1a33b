//! Filling a step's `${step.column}` holes from what its session read earlier in the run.

use crate::scenario::template::SqlHole;
use crate::scenario::{Scenario, StepId};
use crate::timeline::{StepResult, Timeline};

/// The step's SQL with `${step.column}` filled from what its session read earlier, or why
/// a hole cannot be filled: the scenario is broken, and the step is not sent.
pub(super) fn filled(
    scenario: &Scenario,
    timeline: &Timeline,
    id: StepId,
) -> Result<String, String> {
    let step = scenario.step(id);
    let mut problem = None;
    let sql = step.sql.render(|hole| {
        let value = hole_value(scenario, timeline, id.session, hole);
        value.unwrap_or_else(|why| {
            problem.get_or_insert(why);
            format!("${{{}.{}}}", hole.step_name, hole.column)
        })
    });
    problem.map_or(Ok(sql), Err)
}

fn hole_value(
    scenario: &Scenario,
    timeline: &Timeline,
    session: usize,
    hole: &SqlHole,
) -> Result<String, String> {
    let earlier = StepId {
        session,
        step: hole.step,
    };
    let source = format!("{}.{}", scenario.sessions[session].name, hole.step_name);
    let reference = format!("${{{}.{}}}", hole.step_name, hole.column);
    let problem = |message: String| format!("{}: {message}", hole.at);
    match timeline.result_of(earlier) {
        Some(StepResult::Rows(rows)) => match rows.checked_first(&hole.column, &source) {
            Ok(Some(Some(value))) => Ok(sql_literal(value)),
            Ok(Some(None)) => Ok("NULL".to_string()),
            Ok(None) => Err(problem(format!(
                "{source} returned no rows, so {reference} has no value (`no_rows = \
                 \"give-up\"` on {source} stops the session there instead)"
            ))),
            Err(message) => Err(problem(message)),
        },
        Some(StepResult::Command { .. }) => Err(problem(format!(
            "{source} is a command and returned no rows, so {reference} has no value"
        ))),
        Some(StepResult::Failed(_)) | None => Err(problem(format!(
            "{source} has not returned anything, so {reference} has no value"
        ))),
    }
}

/// The SQL a timeline shows for a step: filled where it can be, as written where not.
pub(super) fn shown(scenario: &Scenario, timeline: &Timeline, id: StepId) -> String {
    filled(scenario, timeline, id).unwrap_or_else(|_| {
        scenario.step(id).sql.render(|hole| {
            match hole_value(scenario, timeline, id.session, hole) {
                Ok(value) => value,
                Err(_) => format!("${{{}.{}}}", hole.step_name, hole.column),
            }
        })
    })
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
        filled(
            &scenario,
            &timeline,
            StepId {
                session: 1,
                step: 2,
            },
        )
    }

    fn rows(columns: &[&str], rows: &[&[Option<&str>]]) -> StepResult {
        StepResult::Rows(ResultSet {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|row| row.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
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
