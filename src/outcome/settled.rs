//! A failure that came after the condition was settled prevented nothing. When the anomaly
//! condition names only values of steps that finished before the run's first failure (no
//! `committed()`, no final query, nothing of the failing step), that failure could not have
//! changed what it decided: what kept the condition false came before it.

use crate::scenario::expr::Mention;
use crate::scenario::{Scenario, StepId};
use crate::timeline::{StepResult, Timeline};

/// The position of the run's first failure (a failed step, or a wait the runner cancelled),
/// when the condition was already settled by then.
pub(super) fn failure_after_settled(scenario: &Scenario, timeline: &Timeline) -> Option<usize> {
    let failure = first_failure(timeline)?;
    let mentions = scenario.decision.anomaly_if.mentions();
    let settled = !mentions.is_empty()
        && mentions.iter().all(|(_, mention)| match mention {
            Mention::Step(name) => scenario
                .step_id(&name.session, &name.step)
                .is_some_and(|id| finished_before(timeline, id, failure)),
            _ => false,
        });
    settled.then_some(failure)
}

fn first_failure(timeline: &Timeline) -> Option<usize> {
    // A timed-out step never gets here: it makes the run an error first.
    timeline
        .events
        .iter()
        .position(|event| event.kind.is_failure())
}

/// The step returned before `failure`, and nothing of it happened after.
fn finished_before(timeline: &Timeline, id: StepId, failure: usize) -> bool {
    let mut events = timeline
        .events
        .iter()
        .enumerate()
        .filter(|(_, event)| event.step == id);
    let mut returned = false;
    events.all(|(index, event)| {
        returned |= matches!(event.kind.result(), Some(r) if !matches!(r, StepResult::Failed(_)));
        index < failure
    }) && returned
}
