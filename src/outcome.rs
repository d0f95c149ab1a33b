//! Judging a run: (Scenario, Timeline) -> Verdict. Pure.

use serde::Serialize;

use crate::scenario::expected::{Expected, Mechanism};
use crate::scenario::expr::{Facts, Ref, Value};
use crate::scenario::{display_name, Scenario, StepId};
use crate::timeline::{last_verb, verb, DbError, EventKind, RetryReason, StepResult, Timeline};

/// The judgement of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub anomaly: bool,
    /// Set when the anomaly was prevented.
    pub mechanism: Option<Mechanism>,
    /// The step that waited or failed, when that is what prevented the anomaly.
    pub cause: Option<Cause>,
    /// The values read and the rule, in words.
    pub witness: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cause {
    Failed {
        #[serde(skip)]
        step: StepId,
        error: DbError,
    },
    TimedOut {
        #[serde(skip)]
        step: StepId,
    },
    /// Waited for a session that had nothing left to run, so the runner cancelled it.
    Stuck {
        #[serde(skip)]
        step: StepId,
        #[serde(skip)]
        blocked_by: Vec<usize>,
    },
    Waited {
        #[serde(skip)]
        step: StepId,
        #[serde(skip)]
        blocked_by: Vec<usize>,
    },
    /// The session rolled back after this step and ran its transaction again.
    Retried {
        #[serde(skip)]
        step: StepId,
        attempt: u32,
        reason: RetryReason,
        /// The error that made it retry, for a failed step.
        error: Option<DbError>,
    },
    /// The step matched no row and the session stopped there.
    GaveUp {
        #[serde(skip)]
        step: StepId,
    },
}

impl Verdict {
    /// Whether the run shows what `expected` says.
    pub fn matches(&self, expected: &Expected) -> bool {
        match expected {
            Expected::Anomaly => self.anomaly,
            Expected::Prevented(m) => !self.anomaly && self.mechanism == Some(*m),
        }
    }

    /// What the run showed, in the words expectations use.
    pub fn observed(&self) -> Expected {
        match self.mechanism {
            Some(m) if !self.anomaly => Expected::Prevented(m),
            _ => Expected::Anomaly,
        }
    }

    /// `anomaly` or `prevented`.
    pub fn word(&self) -> &'static str {
        if self.anomaly {
            "anomaly"
        } else {
            "prevented"
        }
    }

    /// One sentence: *prevented — John's COMMIT failed with 40001 (could not serialize ...)*.
    pub fn summary(&self, scenario: &Scenario) -> String {
        if self.anomaly {
            return format!("anomaly — {}", self.witness);
        }
        let how = match &self.cause {
            Some(Cause::Failed { step, error }) => format!(
                "{} failed with {} ({})",
                step_phrase(scenario, *step),
                error.code,
                error.message
            ),
            Some(Cause::TimedOut { step }) => format!(
                "{} did not finish within the step timeout and was cancelled",
                step_phrase(scenario, *step)
            ),
            Some(Cause::Stuck { step, blocked_by }) => format!(
                "{} waited for {}, which had nothing left to run, and was cancelled",
                step_phrase(scenario, *step),
                session_list(scenario, blocked_by)
            ),
            Some(Cause::Waited { step, blocked_by }) => format!(
                "{} waited for {}, then saw a serial outcome",
                step_phrase(scenario, *step),
                session_list(scenario, blocked_by)
            ),
            Some(Cause::Retried {
                step,
                attempt,
                reason,
                error,
            }) => {
                let what = match (reason, error) {
                    (RetryReason::Failed, Some(error)) => format!(
                        "{} failed with {} ({})",
                        step_phrase(scenario, *step),
                        error.code,
                        error.message
                    ),
                    _ => format!(
                        "{} matched no row: what it had read had changed",
                        step_phrase(scenario, *step)
                    ),
                };
                format!(
                    "{what}, so {} rolled back and ran the transaction again (attempt {attempt})",
                    display_name(&scenario.sessions[step.session].name)
                )
            }
            Some(Cause::GaveUp { step }) => format!(
                "{} matched no row, so {} rolled back and did not go on",
                step_phrase(scenario, *step),
                display_name(&scenario.sessions[step.session].name)
            ),
            None => "no step waited or failed: every read returned a committed or snapshot value"
                .to_string(),
        };
        format!("prevented — {how}; {}", self.witness)
    }
}

/// `John's COMMIT`
pub fn step_phrase(scenario: &Scenario, step: StepId) -> String {
    let verb = verb(&scenario.step(step).sql.render(|_| String::new()));
    format!(
        "{}'s {verb}",
        display_name(&scenario.sessions[step.session].name)
    )
}

/// `Alice`, `Alice and John`, `Alice, John and Maria`
pub fn session_list(scenario: &Scenario, sessions: &[usize]) -> String {
    let names: Vec<String> = sessions
        .iter()
        .map(|s| display_name(&scenario.sessions[*s].name))
        .collect();
    match names.as_slice() {
        [] => "another session".to_string(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Judges a finished run.
pub fn judge(scenario: &Scenario, timeline: &Timeline) -> Verdict {
    let facts = RunFacts { scenario, timeline };
    let decision = &scenario.decision;
    let anomaly = decision.anomaly_if.holds(&facts) == Some(true);
    let template = if anomaly {
        &decision.anomaly_witness
    } else {
        &decision.prevented_witness
    };
    let witness = template.render(|r| facts.value(r).unwrap_or(Value::Unknown).to_string());
    if anomaly {
        return Verdict {
            anomaly,
            mechanism: None,
            cause: None,
            witness,
        };
    }
    let failure = timeline.events.iter().find_map(|event| match &event.kind {
        EventKind::TimedOut { .. } => Some(Cause::TimedOut { step: event.step }),
        EventKind::Stuck { blocked_by } => Some(Cause::Stuck {
            step: event.step,
            blocked_by: blocked_by.clone(),
        }),
        kind => match kind.result() {
            Some(StepResult::Failed(error)) => Some(Cause::Failed {
                step: event.step,
                error: error.clone(),
            }),
            _ => None,
        },
    });
    let wait = || {
        timeline.events.iter().find_map(|event| match &event.kind {
            EventKind::Waiting { blocked_by } => Some(Cause::Waited {
                step: event.step,
                blocked_by: blocked_by.clone(),
            }),
            _ => None,
        })
    };
    let decision = timeline
        .events
        .iter()
        .enumerate()
        .find_map(|(index, event)| match &event.kind {
            EventKind::Retried {
                attempt, reason, ..
            } => Some(Cause::Retried {
                step: event.step,
                attempt: *attempt,
                reason: reason.clone(),
                error: index.checked_sub(1).and_then(|before| {
                    match timeline.events[before].kind.result() {
                        Some(StepResult::Failed(error)) => Some(error.clone()),
                        _ => None,
                    }
                }),
            }),
            EventKind::GaveUp => Some(Cause::GaveUp { step: event.step }),
            _ => None,
        });
    let cause = decision.or(failure).or_else(wait);
    let mechanism = match cause {
        Some(Cause::Retried { .. }) => Mechanism::Retry,
        Some(Cause::GaveUp { .. }) => Mechanism::Guard,
        Some(Cause::Failed { .. } | Cause::TimedOut { .. } | Cause::Stuck { .. }) => {
            Mechanism::Abort
        }
        Some(Cause::Waited { .. }) => Mechanism::Blocking,
        None => Mechanism::ConsistentRead,
    };
    Verdict {
        anomaly,
        mechanism: Some(mechanism),
        cause,
        witness,
    }
}

struct RunFacts<'a> {
    scenario: &'a Scenario,
    timeline: &'a Timeline,
}

impl Facts for RunFacts<'_> {
    fn value(&self, reference: &Ref) -> Option<Value> {
        let (result_set, column) = match reference {
            Ref::Final { column } => (self.timeline.final_state.as_ref()?, column),
            Ref::Read {
                session,
                step,
                column,
            } => {
                let session_index = self.scenario.session_index(session)?;
                let step_index = self.scenario.sessions[session_index]
                    .steps
                    .iter()
                    .position(|s| &s.name == step)?;
                let id = StepId {
                    session: session_index,
                    step: step_index,
                };
                match self.timeline.result_of(id)? {
                    StepResult::Rows(rows) => (rows, column),
                    _ => return None,
                }
            }
        };
        result_set.first(column).map(Value::from_db)
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

#[cfg(test)]
mod tests;
