//! What a condition sees of a finished run: the values its references name.

use crate::scenario::expr::{Facts, Ref, Value};
use crate::scenario::{Scenario, StepId};
use crate::timeline::{last_verb, StepResult, Timeline};

pub(super) struct RunFacts<'a> {
    pub scenario: &'a Scenario,
    pub timeline: &'a Timeline,
}

impl Facts for RunFacts<'_> {
    fn value(&self, reference: &Ref) -> Result<Option<Value>, String> {
        let (set, source) = match reference {
            Ref::Final { .. } => match &self.timeline.final_state {
                Some(set) => (set, "the final query".to_string()),
                None => return Ok(None),
            },
            Ref::Read { session, step, .. } => {
                let Some(id) = self.scenario.step_id(session, step) else {
                    return Ok(None);
                };
                match self.timeline.result_of(id) {
                    Some(StepResult::Rows(set)) => (set, format!("{session}.{step}")),
                    Some(StepResult::Command { rows_affected }) => {
                        return Err(format!(
                            "`{reference}`: {session}.{step} returned no rows to read a column                              from (it is a command; it changed {rows_affected} row(s))"
                        ))
                    }
                    Some(StepResult::Failed(_)) | None => return Ok(None),
                }
            }
        };
        let column = match reference {
            Ref::Final { column } | Ref::Read { column, .. } => column,
        };
        set.checked_first(column, &source)
            .map(|value| value.map(Value::from_db))
    }

    fn committed(&self, session: &str) -> bool {
        let Some(index) = self.scenario.session_index(session) else {
            return false;
        };
        let last = StepId {
            session: index,
            step: self.scenario.sessions[index].steps.len() - 1,
        };
        let is_commit = matches!(
            last_verb(&self.scenario.step(last).sql.render(|_| String::new())).as_str(),
            "COMMIT" | "END"
        );
        is_commit
            && matches!(
                self.timeline.result_of(last),
                Some(StepResult::Command { .. })
            )
    }
}
