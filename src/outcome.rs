//! Judging a run: (Scenario, Timeline) -> Verdict. Pure.

use crate::scenario::expected::{Expected, Mechanism};
use crate::scenario::expr::Unfit;
use crate::scenario::{display_name, Places, Scenario, StepId, StepKind};
use crate::timeline::{verb, DbError, ErrorKind, EventKind, RetryReason, StepResult, Timeline};

/// What a run found: the anomaly, what prevented it, or that the run was broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    Anomaly,
    Prevented(Mechanism),
    /// The scenario or the environment is broken (a syntax error, a missing column, a step the
    /// tool cancelled): there is no verdict.
    Error,
}

/// The judgement of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub finding: Finding,
    /// The step that waited or failed, when that is what prevented the anomaly or broke the run.
    pub cause: Option<Cause>,
    /// The values read and the rule, in words; empty for an error.
    pub witness: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    Failed {
        step: StepId,
        error: DbError,
    },
    TimedOut {
        step: StepId,
        after_ms: u64,
    },
    /// Waited for a session that had nothing left to run, so the runner cancelled it.
    Stuck {
        step: StepId,
        blocked_by: Vec<usize>,
    },
    Waited {
        step: StepId,
        blocked_by: Vec<usize>,
    },
    /// The session rolled back after this step and ran its transaction again.
    Retried {
        step: StepId,
        attempt: u32,
        reason: RetryReason,
        /// The error that made it retry, for a failed step.
        error: Option<DbError>,
    },
    /// The step matched no row and the session stopped there.
    GaveUp {
        step: StepId,
    },
    /// This step failed, but only after the condition was settled by steps that had finished
    /// (after a wait, when one came first): the failure prevented nothing.
    SettledBefore {
        step: StepId,
        error: DbError,
        waited: Option<(StepId, Vec<usize>)>,
    },
    /// A reference the run could not fill: `FILE:LINE:COL: no column fre in john.look …`.
    Broken {
        message: String,
    },
    /// This SKIP LOCKED read passed over the rows that `holders`' open transactions had locked.
    Skipped {
        step: StepId,
        holders: Vec<usize>,
    },
}

impl Finding {
    /// `anomaly`, `prevented` or `error`.
    pub fn word(self) -> &'static str {
        match self {
            Finding::Anomaly => "anomaly",
            Finding::Prevented(_) => "prevented",
            Finding::Error => "error",
        }
    }

    /// What an expectation would say of it; `None` for an error, which no expectation states.
    pub fn expected(self) -> Option<Expected> {
        match self {
            Finding::Anomaly => Some(Expected::Anomaly),
            Finding::Prevented(m) => Some(Expected::Prevented(m)),
            Finding::Error => None,
        }
    }

    pub fn mechanism(self) -> Option<Mechanism> {
        match self {
            Finding::Prevented(m) => Some(m),
            _ => None,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expected() {
            Some(expected) => expected.fmt(f),
            None => f.write_str("error"),
        }
    }
}

impl Verdict {
    pub fn is_anomaly(&self) -> bool {
        self.finding == Finding::Anomaly
    }

    pub fn is_error(&self) -> bool {
        self.finding == Finding::Error
    }

    /// Whether the run shows what `expected` says. An error never does.
    pub fn matches(&self, expected: &Expected) -> bool {
        self.finding.expected() == Some(*expected)
    }

    /// `anomaly`, `prevented` or `error`.
    pub fn word(&self) -> &'static str {
        self.finding.word()
    }

    /// One sentence: *prevented — John's COMMIT failed with 40001 (could not serialize ...)*.
    pub fn summary(&self, scenario: &Scenario) -> String {
        match self.finding {
            Finding::Anomaly => format!("anomaly — {}", self.witness),
            Finding::Error => format!(
                "error — {}: the scenario is broken, so there is no verdict",
                self.cause
                    .as_ref()
                    .map_or("the run failed".to_string(), |c| broken_phrase(scenario, c))
            ),
            Finding::Prevented(_) => {
                format!("prevented — {}; {}", self.how(scenario), self.witness)
            }
        }
    }

    fn how(&self, scenario: &Scenario) -> String {
        match &self.cause {
            Some(Cause::Failed { step, error }) if error.kind == ErrorKind::Constraint => {
                format!(
                    "{} broke {} and was refused with {} ({})",
                    step_phrase(scenario, *step),
                    error
                        .constraint
                        .as_ref()
                        .map_or("a constraint".to_string(), |c| format!(
                            "the constraint {c}"
                        )),
                    error.code,
                    error.message
                )
            }
            Some(Cause::Failed { step, error }) => format!(
                "{} failed with {} ({})",
                step_phrase(scenario, *step),
                error.code,
                error.message
            ),
            Some(Cause::TimedOut { step, .. }) => format!(
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
            Some(Cause::SettledBefore {
                step,
                error,
                waited,
            }) => {
                let before = match waited {
                    Some((waiter, blocked_by)) => format!(
                        "{} waited for {}, then saw a serial outcome",
                        step_phrase(scenario, *waiter),
                        session_list(scenario, blocked_by)
                    ),
                    None => "every read the outcome depends on returned a committed or snapshot \
                             value"
                        .to_string(),
                };
                format!(
                    "{before}; {} failed with {} ({}) only after that, so the failure prevented \
                     nothing here",
                    step_phrase(scenario, *step),
                    error.code,
                    error.message
                )
            }
            Some(Cause::Broken { message }) => message.clone(),
            Some(Cause::Skipped { step, holders }) => format!(
                "{} skipped the rows {} had locked (SKIP LOCKED) and took another, without waiting",
                step_phrase(scenario, *step),
                session_list(scenario, holders)
            ),
            None => "no step waited or failed: every read returned a committed or snapshot value"
                .to_string(),
        }
    }
}

/// What broke a run: `alice.check failed with 42703 (column "totl" does not exist)`.
fn broken_phrase(scenario: &Scenario, cause: &Cause) -> String {
    let name = |step: &StepId| scenario.step_name(*step);
    match cause {
        Cause::Failed { step, error } => format!(
            "{} failed with {} ({})",
            name(step),
            error.code,
            error.message
        ),
        Cause::TimedOut { step, after_ms } => format!(
            "{} did not end within the step timeout ({after_ms} ms), so the tool cancelled it",
            name(step)
        ),
        Cause::Broken { message } => message.clone(),
        // `broken` makes only the three above.
        _ => "the run failed".to_string(),
    }
}

/// `John's COMMIT`
pub fn step_phrase(scenario: &Scenario, step: StepId) -> String {
    let at = scenario.step(step);
    // A replica step sends no SQL: its name says what it does (`catch-up`, `wait`).
    let verb = match at.kind {
        StepKind::Replica => at.name.clone(),
        _ => verb(&at.sql.render(|_| String::new())),
    };
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

/// Judges a finished run: a broken run is an error before anything else; then the anomaly
/// condition; then what prevented it.
pub fn judge(scenario: &Scenario, timeline: &Timeline) -> Verdict {
    if let Some(cause) = broken(timeline) {
        return Verdict {
            finding: Finding::Error,
            cause: Some(cause),
            witness: String::new(),
        };
    }
    let facts = facts::RunFacts { scenario, timeline };
    let decision = &scenario.decision;
    let [condition_at, anomaly_at, prevented_at] = &decision.at;
    let anomaly = match decision.anomaly_if.holds(&facts) {
        Ok(holds) => holds == Some(true),
        Err(unfit) => return broken_reference(condition_at, unfit),
    };
    let (template, template_at) = if anomaly {
        (&decision.anomaly_witness, anomaly_at)
    } else {
        (&decision.prevented_witness, prevented_at)
    };
    let witness = match template.fill(&facts) {
        Ok(witness) => witness,
        Err(unfit) => return broken_reference(template_at, unfit),
    };
    if anomaly {
        return Verdict {
            finding: Finding::Anomaly,
            cause: None,
            witness,
        };
    }
    let cause = match (
        prevention(timeline),
        settled::failure_after_settled(scenario, timeline),
    ) {
        (Some(Cause::Failed { step, error }), Some(at)) => Some(Cause::SettledBefore {
            step,
            error,
            waited: waited_before(timeline, at),
        }),
        (None, _) => skipped::past_locks(timeline),
        (cause, _) => cause,
    };
    let mechanism = match &cause {
        Some(Cause::Retried { .. }) => Mechanism::Retry,
        Some(Cause::GaveUp { .. }) => Mechanism::Guard,
        Some(Cause::Failed { error, .. }) if error.kind == ErrorKind::Constraint => {
            Mechanism::Constraint
        }
        Some(Cause::Failed { .. } | Cause::TimedOut { .. } | Cause::Stuck { .. }) => {
            Mechanism::Abort
        }
        Some(Cause::Waited { .. })
        | Some(Cause::SettledBefore {
            waited: Some(_), ..
        }) => Mechanism::Blocking,
        Some(Cause::SettledBefore { waited: None, .. }) => Mechanism::ConsistentRead,
        Some(Cause::Skipped { .. }) => Mechanism::Skip,
        Some(Cause::Broken { .. }) | None => Mechanism::ConsistentRead,
    };
    Verdict {
        finding: Finding::Prevented(mechanism),
        cause,
        witness,
    }
}

/// An error verdict for a reference that cannot be right, placed where it is written.
fn broken_reference(places: &Places, unfit: Unfit) -> Verdict {
    Verdict {
        finding: Finding::Error,
        cause: Some(Cause::Broken {
            message: format!("{}: {}", places.at(unfit.at), unfit.message),
        }),
        witness: String::new(),
    }
}

/// The first event that shows the run itself broken: a step that failed for a reason that is
/// neither a concurrency failure nor a constraint, a step the tool cancelled on its own
/// timeout, or a step whose SQL could not be filled in.
fn broken(timeline: &Timeline) -> Option<Cause> {
    timeline.events.iter().find_map(|event| match &event.kind {
        EventKind::TimedOut { after_ms } => Some(Cause::TimedOut {
            step: event.step,
            after_ms: *after_ms,
        }),
        EventKind::NotSent { problem } => Some(Cause::Broken {
            message: problem.clone(),
        }),
        kind => match kind.result() {
            Some(StepResult::Failed(error)) if !error.kind.is_mechanism() => Some(Cause::Failed {
                step: event.step,
                error: error.clone(),
            }),
            _ => None,
        },
    })
}

/// What prevented the anomaly: the application's own decision (a retry, a give-up) first, then
/// a failure the database chose, then a wait.
fn prevention(timeline: &Timeline) -> Option<Cause> {
    let failure = timeline.events.iter().find_map(|event| match &event.kind {
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
    decision.or(failure).or_else(wait)
}

/// The first wait before event `at`, with whom it waited for.
fn waited_before(timeline: &Timeline, at: usize) -> Option<(StepId, Vec<usize>)> {
    timeline.events[..at]
        .iter()
        .find_map(|event| match &event.kind {
            EventKind::Waiting { blocked_by } => Some((event.step, blocked_by.clone())),
            _ => None,
        })
}

mod facts;
mod settled;
mod skipped;
#[cfg(test)]
mod tests;
