//! `anomalies explore`: every order of a scenario's steps that keeps each session's own order,
//! and how each one ends. Enumeration and classification are pure; the app runs the orders.

use std::collections::BTreeSet;

use crate::outcome::Finding;
use crate::report::Report;
use crate::scenario::expected::{Expected, Mechanism};
use crate::scenario::{display_name, Interleaving, Scenario, StepId};

/// How one order ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Anomaly,
    Prevented(Mechanism),
    /// The run was broken (a scenario error): no verdict.
    Error,
    /// A step was due on a session still waiting for a lock: the order cannot happen.
    Impossible {
        step: StepId,
        waiting_for: Vec<usize>,
    },
}

/// One order and what it showed.
#[derive(Debug, Clone)]
pub struct Explored {
    pub order: Interleaving,
    pub outcome: Outcome,
    pub report: Report,
}

/// How many orders ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub anomaly: usize,
    pub blocking: usize,
    pub abort: usize,
    pub consistent_read: usize,
    pub constraint: usize,
    pub retry: usize,
    pub guard: usize,
    pub skip: usize,
    pub impossible: usize,
    /// Orders whose run was broken (a step failed for a reason of the scenario's own).
    pub error: usize,
}

/// Which orders to run: all of them, or a sample when there are more than `limit`.
#[derive(Debug, Clone)]
pub struct Orders {
    pub orders: Vec<Interleaving>,
    /// How many orders there are in all.
    pub total: u128,
    /// Set when `orders` is a sample of `total`.
    pub sampled: bool,
}

/// The seed of `--limit`'s sample, so a sample is the same from run to run.
pub const SAMPLE_SEED: u64 = 0x616e_6f6d_616c_6965;

/// Above this many orders, `explore` asks for `--limit` rather than running them all.
pub const MAX_ORDERS: u128 = 100_000;

impl Counts {
    pub fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Anomaly => self.anomaly += 1,
            Outcome::Prevented(Mechanism::Blocking) => self.blocking += 1,
            Outcome::Prevented(Mechanism::Abort) => self.abort += 1,
            Outcome::Prevented(Mechanism::ConsistentRead) => self.consistent_read += 1,
            Outcome::Prevented(Mechanism::Constraint) => self.constraint += 1,
            Outcome::Prevented(Mechanism::Retry) => self.retry += 1,
            Outcome::Prevented(Mechanism::Guard) => self.guard += 1,
            Outcome::Prevented(Mechanism::Skip) => self.skip += 1,
            Outcome::Impossible { .. } => self.impossible += 1,
            Outcome::Error => self.error += 1,
        }
    }

    pub fn of(explored: &[Explored]) -> Counts {
        let mut counts = Counts::default();
        for e in explored {
            counts.add(&e.outcome);
        }
        counts
    }
}

impl Outcome {
    /// What a run showed, or that it could not happen.
    pub fn of(report: &Report) -> Outcome {
        match &report.timeline.impossible {
            Some(impossible) => Outcome::Impossible {
                step: impossible.step,
                waiting_for: impossible.waiting_for.clone(),
            },
            None => match report.verdict.finding {
                Finding::Anomaly => Outcome::Anomaly,
                Finding::Prevented(m) => Outcome::Prevented(m),
                Finding::Error => Outcome::Error,
            },
        }
    }

    /// `anomaly`, `prevented by abort`, `impossible (Alice is waiting for John)`
    pub fn describe(&self, scenario: &Scenario) -> String {
        match self {
            Outcome::Anomaly => "anomaly".to_string(),
            Outcome::Prevented(m) => Expected::Prevented(*m).to_string(),
            Outcome::Error => "error".to_string(),
            Outcome::Impossible { step, waiting_for } => format!(
                "impossible ({} is waiting for {})",
                display_name(&scenario.sessions[step.session].name),
                crate::outcome::session_list(scenario, waiting_for)
            ),
        }
    }
}

/// How many orders keep each session's steps in order: the multinomial coefficient.
pub fn count(lengths: &[usize]) -> u128 {
    let mut total: u128 = 1;
    let mut placed: u128 = 0;
    for &length in lengths {
        for k in 1..=length as u128 {
            placed += 1;
            // total * placed / k stays an integer at every step: C(placed, k) grows by it.
            total = total.saturating_mul(placed) / k;
        }
    }
    total
}

/// The orders to run for a scenario: all of them when there are at most `limit` (or no limit),
/// else `limit` of them drawn evenly at random with a fixed seed, in order.
pub fn orders(scenario: &Scenario, limit: Option<usize>) -> Result<Orders, String> {
    let lengths: Vec<usize> = scenario.sessions.iter().map(|s| s.steps.len()).collect();
    let total = count(&lengths);
    let wanted = match limit {
        Some(limit) if (limit as u128) < total => limit,
        _ if total > MAX_ORDERS => {
            return Err(format!(
                "{} has {total} orders; pass --limit N to run a sample of them",
                scenario.id
            ))
        }
        _ => total as usize,
    };
    let sequences = if wanted as u128 == total {
        all(&lengths)
    } else {
        sample(&lengths, wanted)
    };
    Ok(Orders {
        orders: sequences
            .iter()
            .map(|sequence| interleaving(scenario, sequence))
            .collect(),
        total,
        sampled: (wanted as u128) < total,
    })
}

/// Every order, as sequences of session indices, in lexicographic order.
pub fn all(lengths: &[usize]) -> Vec<Vec<usize>> {
    fn extend(remaining: &mut [usize], prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if remaining.iter().all(|r| *r == 0) {
            out.push(prefix.clone());
            return;
        }
        for session in 0..remaining.len() {
            if remaining[session] > 0 {
                remaining[session] -= 1;
                prefix.push(session);
                extend(remaining, prefix, out);
                prefix.pop();
                remaining[session] += 1;
            }
        }
    }
    let mut out = Vec::new();
    extend(&mut lengths.to_vec(), &mut Vec::new(), &mut out);
    out
}

/// `n` distinct orders drawn uniformly (a shuffled multiset of session indices is a uniformly
/// drawn order), sorted.
fn sample(lengths: &[usize], n: usize) -> Vec<Vec<usize>> {
    let mut rng = fastrand::Rng::with_seed(SAMPLE_SEED);
    let mut base: Vec<usize> = lengths
        .iter()
        .enumerate()
        .flat_map(|(session, &length)| std::iter::repeat_n(session, length))
        .collect();
    let mut seen = BTreeSet::new();
    while seen.len() < n {
        rng.shuffle(&mut base);
        seen.insert(base.clone());
    }
    seen.into_iter().collect()
}

/// A sequence of session indices as steps: each session's next step in turn.
fn interleaving(scenario: &Scenario, sequence: &[usize]) -> Interleaving {
    let mut next = vec![0; scenario.sessions.len()];
    let steps: Vec<StepId> = sequence
        .iter()
        .map(|&session| {
            let step = next[session];
            next[session] += 1;
            StepId { session, step }
        })
        .collect();
    let name = steps
        .iter()
        .map(|id| scenario.step_name(*id))
        .collect::<Vec<_>>()
        .join(" ");
    Interleaving { name, steps }
}

/// The anomalous order a student should look at first: the fewest switches between sessions,
/// then the fewest events (no waits), then the first in order.
pub fn shortest_anomaly(explored: &[Explored]) -> Option<&Explored> {
    explored
        .iter()
        .filter(|e| e.outcome == Outcome::Anomaly)
        .min_by_key(|e| {
            let switches = e
                .order
                .steps
                .windows(2)
                .filter(|pair| pair[0].session != pair[1].session)
                .count();
            (switches, e.report.timeline.events.len())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_multinomial() {
        assert_eq!(count(&[2, 2]), 6);
        assert_eq!(count(&[3, 3]), 20);
        assert_eq!(count(&[4, 4]), 70);
        assert_eq!(count(&[4, 4, 4]), 34_650);
        assert_eq!(count(&[1, 1, 1]), 6);
    }

    #[test]
    fn enumeration_keeps_each_sessions_order_and_finds_every_order() {
        let orders = all(&[2, 2]);
        let expected: Vec<Vec<usize>> = vec![
            vec![0, 0, 1, 1],
            vec![0, 1, 0, 1],
            vec![0, 1, 1, 0],
            vec![1, 0, 0, 1],
            vec![1, 0, 1, 0],
            vec![1, 1, 0, 0],
        ];
        assert_eq!(orders, expected);
        assert_eq!(all(&[3, 2, 2]).len() as u128, count(&[3, 2, 2]));
    }

    #[test]
    fn a_sample_is_distinct_sorted_and_the_same_every_time() {
        let first = sample(&[4, 4], 10);
        assert_eq!(first.len(), 10);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        assert!(first
            .iter()
            .all(|o| o.iter().filter(|s| **s == 0).count() == 4));
        assert_eq!(first, sample(&[4, 4], 10));
    }

    #[test]
    fn orders_name_their_steps() {
        let scenario = Scenario::load("lost-update").unwrap();
        let orders = orders(&scenario, Some(3)).unwrap();
        assert_eq!(
            (orders.total, orders.sampled, orders.orders.len()),
            (70, true, 3)
        );
        let all = super::orders(&scenario, None).unwrap();
        assert_eq!(
            all.orders[0].name,
            "alice.begin alice.read alice.write alice.commit john.begin john.read john.write john.commit"
        );
    }
}
