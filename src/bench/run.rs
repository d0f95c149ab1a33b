//! The grid on one engine: for each cell, a run of its own (made by [`Engine::prepare`], so in
//! the run's private schema, database or file, with the same clean-up as `anomalies run`), its
//! workers driven for the warm-up and the measured time, then the count from the database.

use std::time::Instant;

use super::drive::{drive, measured, Clock, Draw};
use super::strategy::{self, Shape, Strategy};
use super::waits;
use super::workload::{count_sql, judge, setup};
use super::{Cell, NotRun, Report, Spec};
use crate::engine::{Engine, EngineError};
use crate::scenario::{EngineKind, Scenario};

/// Runs every cell of the grid; `progress` hears of each cell as it ends (and of each strategy
/// the engine cannot run, as a cell that is not run).
pub async fn run_grid(
    engine: &mut Engine,
    spec: &Spec,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, EngineError> {
    let kind = engine.info().name;
    let load_before = load_average();
    let mut cells = Vec::new();
    let mut not_run = Vec::new();
    for name in &spec.strategies {
        let Some(strategy) = strategy::of(spec.workload).find(|s| s.name == *name) else {
            continue;
        };
        let plan = match (strategy.plan)(kind) {
            Ok(plan) => Ok(plan),
            Err(reason) => Err(reason.to_string()),
        };
        // A Redis lock needs a Redis: without redis-server (and no --redis-url) the strategy
        // is not run, and says why, rather than the whole grid failing.
        let plan = match plan {
            Ok(plan) if matches!(plan.shape, Shape::RedisLock(_)) => {
                match engine.redis_locks(0).await {
                    Ok(_) => Ok(plan),
                    Err(EngineError::RedisServer(missing)) => Err(missing.to_string()),
                    Err(other) => return Err(other),
                }
            }
            other => other,
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => {
                not_run.push(NotRun {
                    strategy: strategy.name.into(),
                    reason,
                });
                for _ in 0..cells_per_strategy(spec) {
                    progress(strategy.name);
                }
                continue;
            }
        };
        for &hot in hot_sizes(spec) {
            for &workers in &spec.workers {
                let cell = run_cell(engine, spec, strategy, &plan, kind, workers, hot).await?;
                progress(&format!("{} ×{} on {}", strategy.name, workers, hot));
                cells.push(cell);
            }
        }
    }
    Ok(Report {
        engine: engine.info().clone(),
        workload: spec.workload,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before,
        load_after: load_average(),
        warmup_ms: spec.warmup.as_millis() as u64,
        duration_ms: spec.duration.as_millis() as u64,
        seed: spec.seed,
        cells,
        not_run,
    })
}

/// The cells of one strategy.
pub fn cells_per_strategy(spec: &Spec) -> usize {
    hot_sizes(spec).len() * spec.workers.len()
}

/// The queue has no hot set: one table of jobs.
fn hot_sizes(spec: &Spec) -> &[u64] {
    match spec.workload {
        super::Workload::Payments => &spec.hot,
        super::Workload::Queue => &[1],
    }
}

async fn run_cell(
    engine: &mut Engine,
    spec: &Spec,
    strategy: &Strategy,
    plan: &strategy::Plan,
    kind: EngineKind,
    workers: u64,
    hot: u64,
) -> Result<Cell, EngineError> {
    let owners = match plan.shape {
        Shape::Partitioned(_) => Some(workers.min(hot)),
        _ => None,
    };
    let connections = owners.unwrap_or(workers) as usize;
    let probes = waits::probes(kind);
    // One more connection, for the wait probe, where the engine can tell.
    let sessions = connections + usize::from(probes.is_some());
    let scenario = cell_scenario(&setup(kind, spec.workload, hot, plan), sessions)?;
    let mut run = engine.prepare(&scenario, plan.level).await?;
    let level = engine.effective_level(plan.level);
    let draws = (0..workers as usize)
        .map(|worker| Draw::new(spec.seed, worker, hot))
        .collect();
    // Before the clock starts: the first redis-lock cell may start the throwaway Redis.
    let locks = match plan.shape {
        Shape::RedisLock(_) => engine.redis_locks(workers as usize).await?,
        _ => Vec::new(),
    };
    let start = Instant::now();
    let clock = Clock {
        measured_from: start + spec.warmup,
        until: start + spec.warmup + spec.duration,
    };
    let mut lent = run.workers()?;
    let probe = probes.and_then(|_| lent.pop());
    let driven = drive(lent, locks, &plan.shape, clock, draws, spec.rendezvous);
    let sampled = async {
        match (&probe, probes) {
            (Some(probe), Some(queries)) => {
                waits::sample(probe, queries, connections as u64, clock).await
            }
            _ => Ok(None),
        }
    };
    let (tally, lock_wait_share) = tokio::try_join!(driven, sampled)?;
    drop(probe);
    let count = run.final_query(count_sql(spec.workload)).await?;
    run.finish().await?;
    let judgement = judge(spec.workload, hot, &count).map_err(EngineError::Setup)?;
    let seconds = measured(&clock).as_secs_f64();
    Ok(Cell {
        strategy: strategy.name.into(),
        workload: spec.workload,
        engine: kind.name().into(),
        workers,
        hot,
        owners,
        level: level.to_string(),
        committed: tally.committed,
        refused: tally.refused,
        gave_up: tally.gave_up,
        seconds,
        tps: tally.committed as f64 / seconds.max(1e-9),
        p50_ms: tally.latency_ms(0.50),
        p95_ms: tally.latency_ms(0.95),
        p99_ms: tally.latency_ms(0.99),
        attempts_per_commit: tally.attempts_per_commit(),
        aborts: tally.aborts,
        lock_wait_share,
        judgement,
    })
}

/// A cell's run as the engine sees any run: the setup, and one session per connection (the
/// sessions' steps are never sent; the bench's workers use their connections).
fn cell_scenario(setup: &str, connections: usize) -> Result<Scenario, EngineError> {
    let mut file = toml::Table::new();
    let text = |s: &str| toml::Value::String(s.into());
    for (key, value) in [
        ("id", "bench"),
        ("title", "anomalies bench"),
        ("anomaly", "none"),
        ("code", "-"),
        ("story", "a cell of anomalies bench"),
    ] {
        file.insert(key.into(), text(value));
    }
    file.insert("setup".into(), text(setup));
    let mut sessions = Vec::new();
    let mut steps = Vec::new();
    for n in 1..=connections {
        let step = toml::toml! { name = "s" sql = "SELECT 1" say = "unused" };
        let mut session = toml::Table::new();
        session.insert("name".into(), text(&format!("w{n}")));
        session.insert("step".into(), toml::Value::Array(vec![step.into()]));
        sessions.push(toml::Value::Table(session));
        steps.push(text(&format!("w{n}.s")));
    }
    file.insert("session".into(), toml::Value::Array(sessions));
    let mut interleaving = toml::Table::new();
    interleaving.insert("name".into(), text("unused"));
    interleaving.insert("steps".into(), toml::Value::Array(steps));
    file.insert(
        "interleaving".into(),
        toml::Value::Array(vec![interleaving.into()]),
    );
    let outcome = toml::toml! {
        final = "SELECT 1 AS x"
        anomaly_if = "final.x = 2"
        anomaly = "unused"
        prevented = "unused"
    };
    file.insert("outcome".into(), outcome.into());
    let text = toml::to_string(&file)
        .map_err(|e| EngineError::Setup(format!("the bench's setup: {e}")))?;
    Scenario::parse(&text, "bench")
        .map_err(|e| EngineError::Setup(format!("the bench's setup: {e}")))
}

/// `/proc/loadavg`'s 1, 5 and 15 minute figures, where there is one.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}
