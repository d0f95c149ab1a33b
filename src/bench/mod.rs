//! `anomalies bench`: the concurrency-control playbook under real contention. A grid of cells
//! (strategy × workers × hot accounts), each on fresh data in the run's own private schema,
//! database or file; each cell's workers run flat out for the same warm-up and the same
//! measured time, and the invariants are counted from the database at the end.
//!
//! `strategy.rs` the strategies as SQL per engine; `workload.rs` the tables, the count and its
//! judgement; `drive.rs` the workers' loops; `stats.rs` the per-cell tallies; `waits.rs` the
//! sampled share of time waiting for locks; `run.rs` the grid on an engine. Only `engine::bench` touches a connection.

mod drive;
mod run;
pub mod stats;
pub mod strategy;
mod waits;
pub mod workload;

use std::time::Duration;

use serde::Serialize;

pub use run::{cells_per_strategy, run_grid};
pub use strategy::Workload;
pub use workload::Judgement;

use crate::engine::EngineInfo;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Spec {
    pub workload: Workload,
    /// Strategy names, in the order asked (all of the workload's by default).
    pub strategies: Vec<&'static str>,
    pub workers: Vec<u64>,
    pub hot: Vec<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// Test hook: each worker makes one payment (or claims one job), which waits between its
    /// unlocked read and its write until every worker has read: the lost update, or the job
    /// done twice, made certain. Strategies that lock on their read make theirs without
    /// waiting (they would wait for each other forever).
    pub rendezvous: bool,
}

/// One cell: a strategy at a number of workers on a hot set, as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub strategy: String,
    pub workload: Workload,
    pub engine: String,
    pub workers: u64,
    pub hot: u64,
    /// Partitioned: the owners (one connection each) the workers forward to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owners: Option<u64>,
    pub level: String,
    pub committed: u64,
    pub refused: u64,
    pub gave_up: u64,
    pub seconds: f64,
    pub tps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub attempts_per_commit: f64,
    pub aborts: std::collections::BTreeMap<String, u64>,
    /// The share of the connections' measured time spent waiting for a lock, sampled; `None`
    /// where the engine cannot tell (SQLite).
    pub lock_wait_share: Option<f64>,
    #[serde(flatten)]
    pub judgement: Judgement,
}

/// A strategy the engine cannot run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotRun {
    pub strategy: String,
    pub reason: String,
}

/// The grid as run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub engine: EngineInfo,
    pub workload: Workload,
    /// The machine's cores, which the workers and (on a throwaway or local server) the server
    /// share.
    pub cores: usize,
    /// `/proc/loadavg`'s first three figures, before and after the grid.
    pub load_before: Option<String>,
    pub load_after: Option<String>,
    pub warmup_ms: u64,
    pub duration_ms: u64,
    pub seed: u64,
    pub cells: Vec<Cell>,
    pub not_run: Vec<NotRun>,
}

/// `--strategies`: each name must be one of the workload's; a misspelt one is refused with the
/// closest name.
pub fn strategies(workload: Workload, asked: &[String]) -> Result<Vec<&'static str>, String> {
    let known: Vec<&'static str> = strategy::of(workload).map(|s| s.name).collect();
    if asked.is_empty() {
        return Ok(known);
    }
    let mut chosen = Vec::new();
    for name in asked {
        let Some(found) = known.iter().find(|k| **k == name.trim()) else {
            let hint = match crate::scenario::did_you_mean(name, &known) {
                Some(closest) => format!("did you mean `{closest}`?"),
                None => format!("known: {}", known.join(", ")),
            };
            return Err(format!("unknown strategy `{name}`; {hint}"));
        };
        if !chosen.contains(found) {
            chosen.push(*found);
        }
    }
    Ok(chosen)
}

/// `--workers 1,4,16` or `--hot 5,1000`: positive whole numbers, at most `max`.
pub fn counts(option: &str, text: &str, max: u64) -> Result<Vec<u64>, String> {
    let mut values = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => values.push(n),
            _ => {
                return Err(format!(
                    "--{option} takes a list of whole numbers from 1 to {max}, such as 1,4,16; \
                     not `{part}`"
                ))
            }
        }
    }
    values.dedup();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_strategy_gets_the_closest_name() {
        let asked = vec!["optimstic".to_string()];
        assert_eq!(
            strategies(Workload::Payments, &asked).unwrap_err(),
            "unknown strategy `optimstic`; did you mean `optimistic`?"
        );
        let queue = strategies(Workload::Queue, &[]).unwrap();
        assert_eq!(queue, ["naive", "for-update", "skip-locked"]);
    }

    #[test]
    fn counts_are_positive_numbers() {
        assert_eq!(counts("workers", "1, 4,16", 200).unwrap(), [1, 4, 16]);
        assert!(counts("workers", "1,x", 200)
            .unwrap_err()
            .contains("not `x`"));
        assert!(counts("workers", "0", 200).is_err());
        assert!(counts("hot", "", 10).is_err());
    }
}
