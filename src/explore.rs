//! `anomalies explore`: every order of a scenario's steps that keeps each session's own order,
//! and how each one ends. Enumeration and classification are pure; the app runs the orders.

use std::collections::BTreeSet;

use indexmap::IndexSet;

use crate::engine::EngineInfo;
use crate::level::Level;
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
    /// Run again (`--repeat`), the order did not end the same way every time: each outcome,
    /// and how many of the runs ended so, in the order first seen. Two sessions waiting for one
    /// row is such a race: which one the server lets go first after a commit is its choice.
    Racy(Vec<(Outcome, usize)>),
}

/// One order and what it showed.
#[derive(Debug, Clone)]
pub struct Explored {
    pub order: Interleaving,
    pub outcome: Outcome,
    pub report: Report,
}

/// What `explore` keeps of one level, order by order as they end: the counts, the anomalous
/// order to show, and, when asked (for JSON), each order's outcome in a few bytes. Never every
/// report: a level of 34,650 orders keeps one.
#[derive(Debug, Clone)]
pub struct Exploration {
    pub level: Level,
    pub counts: Counts,
    /// The level as the first order's report words it (`read uncommitted → serializable`), and
    /// the engine it names; `None` until an order ends.
    pub first: Option<(String, Level, EngineInfo)>,
    /// The order [`Exploration::add`] would show first, with its report and its place.
    pub shortest: Option<Explored>,
    shortest_key: (usize, usize, usize),
    /// Whether some order's run was broken (its verdict is an error).
    pub any_error: bool,
    /// Each order's line, in order, when kept.
    pub lines: Option<Vec<Line>>,
    /// Each summary once; a line keeps its index.
    summaries: IndexSet<String>,
}

/// One order's outcome, as JSON lists it.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its place in [`Orders::orders`].
    pub order: u32,
    pub outcome: Outcome,
    /// The verdict's summary ([`Exploration::summary`]), when the order could happen.
    summary: Option<u32>,
}

impl Exploration {
    pub fn new(level: Level, keep_lines: bool) -> Exploration {
        Exploration {
            level,
            counts: Counts::default(),
            first: None,
            shortest: None,
            shortest_key: (usize::MAX, usize::MAX, usize::MAX),
            any_error: false,
            lines: keep_lines.then(Vec::new),
            summaries: IndexSet::new(),
        }
    }

    /// Counts the order at `index` of the orders and keeps what the output needs of it.
    pub fn add(&mut self, index: usize, explored: Explored, scenario: &Scenario) {
        let report = &explored.report;
        self.counts.add(&explored.outcome);
        self.any_error |= report.verdict.is_error();
        if self.first.is_none() {
            self.first = Some((report.level_text(), report.effective, report.engine.clone()));
        }
        if let Some(lines) = &mut self.lines {
            let one_way = !matches!(explored.outcome, Outcome::Racy(_));
            let summary = (report.timeline.impossible.is_none() && one_way).then(|| {
                self.summaries
                    .insert_full(report.verdict.summary(scenario))
                    .0 as u32
            });
            lines.push(Line {
                order: index as u32,
                outcome: explored.outcome.clone(),
                summary,
            });
        }
        if explored.outcome == Outcome::Anomaly {
            let (switches, events) = shortness(&explored);
            let key = (switches, events, index);
            if key < self.shortest_key {
                self.shortest_key = key;
                self.shortest = Some(explored);
            }
        }
    }

    /// Once every order is in: the lines in the orders' order, however the runs that shared
    /// them finished.
    pub fn finish(&mut self) {
        if let Some(lines) = &mut self.lines {
            lines.sort_unstable_by_key(|line| line.order);
        }
    }

    /// A line's verdict summary: `anomaly — both committed, yet…`.
    pub fn summary(&self, line: &Line) -> Option<&str> {
        line.summary
            .and_then(|id| self.summaries.get_index(id as usize))
            .map(String::as_str)
    }
}

/// The anomalous order a student should look at first has the fewest switches between
/// sessions, then the fewest events (no waits), then comes first in order (the key's third
/// part, [`Exploration::add`]'s index).
fn shortness(explored: &Explored) -> (usize, usize) {
    let switches = explored
        .order
        .steps
        .windows(2)
        .filter(|pair| pair[0].session != pair[1].session)
        .count();
    (switches, explored.report.timeline.events.len())
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
    /// Orders that did not end the same way each time they ran (`--repeat`).
    pub racy: usize,
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
            Outcome::Racy(_) => self.racy += 1,
        }
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

    /// The outcome of runs of one order: the one they all had, or [`Outcome::Racy`].
    pub fn of_runs(outcomes: Vec<Outcome>) -> Outcome {
        let mut seen: Vec<(Outcome, usize)> = Vec::new();
        for outcome in outcomes {
            match seen.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, n)) => *n += 1,
                None => seen.push((outcome, 1)),
            }
        }
        match seen.len() {
            1 => seen.remove(0).0,
            _ => Outcome::Racy(seen),
        }
    }

    /// `anomaly`, `prevented by abort`, `impossible (Alice is waiting for John)`, `racy
    /// (anomaly 2 times, impossible (Maria is waiting for Alice) once)`
    pub fn describe(&self, scenario: &Scenario) -> String {
        match self {
            Outcome::Racy(seen) => {
                let each: Vec<String> = seen
                    .iter()
                    .map(|(outcome, n)| match n {
                        1 => format!("{} once", outcome.describe(scenario)),
                        n => format!("{} {n} times", outcome.describe(scenario)),
                    })
                    .collect();
                format!("racy ({})", each.join(", "))
            }
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

/// How many runs share the orders: as many as asked, else one per core, fewer where their
/// connections (one per session, two of the tool's) would pass [`MAX_CONNECTIONS`]. One, for a
/// scenario that must run alone ([`Scenario::runs_alone`]): runs at once would pause and
/// resume a standby's replay for each other, wait for each other's locks unseen, or outlast a
/// lease.
pub fn jobs(asked: Option<usize>, cores: usize, scenario: &Scenario) -> usize {
    if scenario.runs_alone() {
        return 1;
    }
    let per_run = scenario.sessions.len() + 2;
    asked.unwrap_or_else(|| cores.min(MAX_CONNECTIONS / per_run).max(1))
}

/// The most connections the runs of an explore open by default.
pub const MAX_CONNECTIONS: usize = 100;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_an_order_that_ended_differently_are_racy() {
        let scenario = Scenario::load("job-queue").unwrap();
        let waiting = Outcome::Impossible {
            step: StepId {
                session: 2,
                step: 2,
            },
            waiting_for: vec![0],
        };
        let same = Outcome::of_runs(vec![Outcome::Anomaly, Outcome::Anomaly]);
        assert_eq!(same, Outcome::Anomaly);
        let racy = Outcome::of_runs(vec![Outcome::Anomaly, waiting.clone(), Outcome::Anomaly]);
        assert_eq!(
            racy,
            Outcome::Racy(vec![(Outcome::Anomaly, 2), (waiting, 1)])
        );
        assert_eq!(
            racy.describe(&scenario),
            "racy (anomaly 2 times, impossible (Maria is waiting for Alice) once)"
        );
        let mut counts = Counts::default();
        counts.add(&racy);
        assert_eq!((counts.racy, counts.anomaly), (1, 0));
    }

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
