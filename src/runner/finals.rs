//! An order's final queries: what they are, where their answers go in the timeline, and where
//! a refused one is placed in the scenario's file.

use crate::engine::EngineError;
use crate::scenario::Scenario;
use crate::timeline::{ResultSet, Timeline};

/// The final queries' SQL: the `final` query first, then the named ones.
pub(super) fn sqls(scenario: &Scenario) -> Vec<&str> {
    let decision = &scenario.decision;
    (decision.final_query.iter())
        .chain(decision.named_finals.iter().map(|(_, sql)| sql))
        .map(String::as_str)
        .collect()
}

/// Each answer where the timeline keeps it, in [`sqls`]' order.
pub(super) fn record(timeline: &mut Timeline, scenario: &Scenario, answers: Vec<ResultSet>) {
    let decision = &scenario.decision;
    let mut answers = answers.into_iter();
    if decision.final_query.is_some() {
        timeline.final_state = answers.next();
    }
    let named = decision.named_finals.iter().map(|(name, _)| name.clone());
    timeline.named_finals = named.zip(answers).collect();
}

/// A final query the database refuses is the scenario's own error: placed in its file.
pub(super) fn placed(scenario: &Scenario, error: EngineError) -> EngineError {
    match error {
        EngineError::Setup(message) => {
            EngineError::Setup(format!("{}: {message}", scenario.decision.final_at))
        }
        other => other,
    }
}
