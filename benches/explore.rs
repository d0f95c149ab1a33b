//! `cargo bench --bench explore`: the same orders through `anomalies explore` and through
//! PostgreSQL's own isolation tester, on the same throwaway server, with the round-trip floor,
//! all paired round by round in one run. Asserts nothing about speed.
//!
//! Each round runs, back to back: every possible order through the library as `explore` does
//! (replay, judge, reset of the data, on connections prepared once), the isolation tester on
//! the same orders as one spec, the tester on the first order alone, and pgbench's `SELECT 1`
//! on one connection. Every side gives the same statistic, the mean time an order adds:
//! explore's pass divided by its orders; the tester's (all − one) / (orders − 1), which takes
//! out its start-up and keeps its per-permutation setup and teardown. The floor is the round
//! trips an order needs (each step sent, one question per wait, the reset sent with the final
//! query) times pgbench's mean latency. Printed: the median over rounds of each round's ratios.
//!
//! The same pass also runs as the command does by default on this machine's cores: the orders
//! shared among `JOBS` runs, each on connections of its own, all on the one thread (each order
//! to whichever run is free next). The tester has no such mode; that figure is the command's,
//! beside the serial one, never instead of it.
//!
//! The isolation tester cannot skip an order in which a step is due on a session that waits
//! (it waits for it), so both sides run only the orders explore found possible.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anomalies::engine::cluster::{find_bindir, Cluster};
use anomalies::engine::{Choice, ConnectOptions, Engine, Run};
use anomalies::explore;
use anomalies::level::Level;
use anomalies::outcome::judge;
use anomalies::runner::{replay_then_reset, RunOptions};
use anomalies::scenario::{Interleaving, Scenario};
use anomalies::timeline::{EventKind, Timeline};
use tokio_postgres::config::Host;

#[path = "support/tester.rs"]
mod tester;
use tester::{isolation_tester, run_tester, spec, spec_first_only};

const ROUNDS: usize = 7;
/// Runs sharing the orders in the second pass, as `explore --jobs 2`.
const JOBS: usize = 2;
/// Transactions pgbench runs for the floor, each round.
const FLOOR_TRANSACTIONS: &str = "2000";

const RUN_OPTIONS: RunOptions = RunOptions {
    step_timeout: Duration::from_secs(10),
    stop_when_impossible: true,
};

struct Round {
    explore: f64,
    /// The orders shared among `JOBS` runs.
    explore_jobs: f64,
    /// pgbench running the first order's statements, the reset and the final query.
    same_work: f64,
    /// Questions (wait probes) asked per order.
    questions: f64,
    tester: f64,
    floor: f64,
}

fn main() {
    let bindir = find_bindir().expect("PostgreSQL server binaries are not installed");
    let tester = isolation_tester(&bindir);
    let pgbench = beside_postgres(&bindir, "pgbench");
    let cluster = Cluster::start(&bindir).expect("a throwaway server");
    let conninfo = conninfo(&cluster);
    let select1 = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(select1.path(), "SELECT 1;\n").expect("write the pgbench script");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("isolation tester: {}", tester.display());
    for (file, level) in [
        ("bench/lost-update.toml", Level::ReadCommitted),
        ("bench/write-skew.toml", Level::Serializable),
        ("bench/read-only-anomaly.toml", Level::Serializable),
    ] {
        let scenario = Scenario::load(file).expect("bench scenario");
        let (engine, mut run) = runtime.block_on(prepare(&scenario, level, &conninfo));
        let mut others: Vec<Run> = runtime.block_on(async {
            let mut others = Vec::new();
            for _ in 1..JOBS {
                let mut other = engine.prepare(&scenario, level).await.expect("prepare");
                other.save_initial_state().await.expect("save");
                others.push(other);
            }
            others
        });
        let (possible, impossible, round_trips) =
            runtime.block_on(possible_orders(&mut run, &scenario));
        let spec = spec(&scenario, level, &possible);
        let first = spec_first_only(&spec);
        let same = same_work(&scenario, level, &possible[0], &conninfo, &bindir);
        let n = possible.len() as f64;
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let (started, asked) = (Instant::now(), run.questions());
            runtime.block_on(pass(&mut run, &scenario, &possible));
            let explore = started.elapsed().as_secs_f64() / n;
            let questions = (run.questions() - asked) as f64 / n;
            let started = Instant::now();
            runtime.block_on(pass_shared(&mut run, &mut others, &scenario, &possible));
            let explore_jobs = started.elapsed().as_secs_f64() / n;
            let all = run_tester(&tester, &conninfo, &spec).as_secs_f64();
            let one = run_tester(&tester, &conninfo, &first).as_secs_f64();
            let latency = pgbench_latency(&pgbench, &conninfo, select1.path(), &[]);
            let same_work =
                pgbench_latency(&pgbench, &conninfo, same.script.path(), &same.environment);
            rounds.push(Round {
                explore,
                explore_jobs,
                same_work,
                questions,
                tester: (all - one) / (n - 1.0),
                floor: round_trips * latency,
            });
        }
        psql(
            &bindir,
            &conninfo,
            "SET client_min_messages TO warning; DROP SCHEMA bench_same_work CASCADE",
        );
        runtime.block_on(async {
            for other in others {
                other.finish().await.expect("finish");
            }
            run.finish().await.expect("finish");
            engine.close().await.expect("close");
        });
        let median_of =
            |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        println!(
            "\n{} at {level}: {} orders, {} possible (run by both), {} impossible (skipped by both); {round_trips:.1} round trips an order",
            scenario.id,
            possible.len() + impossible,
            possible.len(),
            impossible,
        );
        println!(
            "  explore:          {:.3} ms an order (median of {ROUNDS} rounds)",
            median_of(&|r| r.explore) * 1e3
        );
        println!(
            "  explore, {JOBS} jobs:  {:.3} ms an order (the orders shared among {JOBS} runs, as the command runs them on 2 cores)",
            median_of(&|r| r.explore_jobs) * 1e3
        );
        println!(
            "  questions:        {:.2} an order (wait probes)",
            median_of(&|r| r.questions)
        );
        println!(
            "  isolation tester: {:.3} ms an order",
            median_of(&|r| r.tester) * 1e3
        );
        println!(
            "  floor:            {:.3} ms an order (round trips × pgbench -c1 SELECT 1)",
            median_of(&|r| r.floor) * 1e3
        );
        println!(
            "  same work:        {:.3} ms an order (pgbench -c1: the first order's statements, the rollbacks, the restore, the final query)",
            median_of(&|r| r.same_work) * 1e3
        );
        println!(
            "  explore is {:.2}× the same work in pgbench",
            median_of(&|r| r.explore / r.same_work)
        );
        println!(
            "  explore is {:.1}× faster than the tester and {:.2}× the floor (medians of the rounds' ratios)",
            median_of(&|r| r.tester / r.explore),
            median_of(&|r| r.explore / r.floor)
        );
        println!(
            "  explore with {JOBS} jobs is {:.1}× faster than the tester",
            median_of(&|r| r.tester / r.explore_jobs)
        );
    }
    cluster.stop().expect("stop the server");
}

async fn prepare(scenario: &Scenario, level: Level, conninfo: &str) -> (Engine, Run) {
    let options = ConnectOptions {
        choice: Choice::Only(anomalies::scenario::EngineKind::Postgres),
        url: Some(conninfo.to_string()),
        standby_url: None,
        node_urls: Vec::new(),
        connect_timeout: Duration::from_secs(5),
        pg_bindir: None,
        mariadb_bindir: None,
        redis_url: None,
        topology: Default::default(),
    };
    let (engine, _) = Engine::connect(&options).await.expect("connect");
    let mut run = engine.prepare(scenario, level).await.expect("prepare");
    run.save_initial_state().await.expect("save");
    (engine, run)
}

/// Runs every order once: the possible ones, how many were impossible, and the mean round
/// trips a possible order needs.
async fn possible_orders(run: &mut Run, scenario: &Scenario) -> (Vec<Interleaving>, usize, f64) {
    let orders = explore::orders(scenario, None).expect("orders").orders;
    let (mut possible, mut round_trips) = (Vec::new(), 0);
    for order in &orders {
        let timeline = replay_then_reset(run, scenario, order, RUN_OPTIONS)
            .await
            .expect("replay");
        if timeline.impossible.is_none() {
            round_trips += needed_round_trips(&timeline);
            possible.push(order.clone());
        }
    }
    let impossible = orders.len() - possible.len();
    let mean = round_trips as f64 / possible.len() as f64;
    (possible, impossible, mean)
}

/// What an order cannot do without: each statement sent (a step, a retry's or a give-up's
/// ROLLBACK), the one question that finds each wait, and the reset with the final queries,
/// which can all go at once (`Run::finals_then_reset`).
fn needed_round_trips(timeline: &Timeline) -> usize {
    let sent = timeline
        .events
        .iter()
        .map(|event| match event.kind {
            EventKind::Waiting { .. } => 2,
            EventKind::Done { .. }
            | EventKind::TimedOut { .. }
            | EventKind::Retried { .. }
            | EventKind::GaveUp => 1,
            _ => 0,
        })
        .sum::<usize>();
    sent + 1
}

/// Every order as `explore` runs it: replayed, judged, the data put back.
async fn pass(run: &mut Run, scenario: &Scenario, orders: &[Interleaving]) {
    for order in orders {
        let timeline = replay_then_reset(run, scenario, order, RUN_OPTIONS)
            .await
            .expect("replay");
        std::hint::black_box(judge(scenario, &timeline));
    }
}

/// Every order as `explore --jobs` runs it: each to whichever of the runs is free next, all
/// on this thread.
async fn pass_shared(
    first: &mut Run,
    others: &mut [Run],
    scenario: &Scenario,
    orders: &[Interleaving],
) {
    let next = std::cell::Cell::new(0);
    let workers = std::iter::once(first).chain(others.iter_mut()).map(|run| {
        let next = &next;
        async move {
            while let Some(order) = orders.get(next.get()) {
                next.set(next.get() + 1);
                let timeline = replay_then_reset(run, scenario, order, RUN_OPTIONS)
                    .await
                    .expect("replay");
                std::hint::black_box(judge(scenario, &timeline));
            }
        }
    });
    futures_util::future::join_all(workers).await;
}

/// A pgbench script that does, on one connection, what explore's run does for `order` when
/// nothing waits: each step's statements as one query, every session's ROLLBACK, the restore
/// of the data from saved copies, the final queries; on tables of a schema of its own.
struct SameWork {
    script: tempfile::NamedTempFile,
    environment: Vec<(String, String)>,
}

fn same_work(
    scenario: &Scenario,
    level: Level,
    order: &Interleaving,
    conninfo: &str,
    bindir: &Path,
) -> SameWork {
    let tables = tables(scenario);
    let saved = |t: &str| format!("anomalies_saved_{t}");
    let mut setup = format!(
        "SET client_min_messages TO warning; \
         DROP SCHEMA IF EXISTS bench_same_work CASCADE; CREATE SCHEMA bench_same_work; \
         SET search_path TO bench_same_work; {}",
        scenario.setup
    );
    for t in &tables {
        setup.push_str(&format!("CREATE TABLE {} AS SELECT * FROM {t};", saved(t)));
    }
    psql(bindir, conninfo, &setup);
    // One pgbench command per step: `\;` keeps a step's statements in one query.
    let one_query = |sql: &str| {
        format!(
            "{};\n",
            sql.trim().trim_end_matches(';').replace(';', " \\;")
        )
    };
    let mut script = String::new();
    for id in &order.steps {
        script.push_str(&one_query(
            &scenario.step(*id).sql.render(|_| String::new()),
        ));
    }
    for _ in &scenario.sessions {
        script.push_str("ROLLBACK;\n");
    }
    let restore: Vec<String> = tables
        .iter()
        .rev()
        .map(|t| format!("DELETE FROM {t}"))
        .chain(
            tables
                .iter()
                .map(|t| format!("INSERT INTO {t} SELECT * FROM {}", saved(t))),
        )
        .collect();
    script.push_str(&one_query(&restore.join("; ")));
    if let Some(sql) = &scenario.decision.final_query {
        script.push_str(&one_query(sql));
    }
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), script).expect("write the pgbench script");
    let options = format!(
        "-c search_path=bench_same_work -c default_transaction_isolation={} -c client_min_messages=error",
        level.sql().to_lowercase().replace(' ', "\\ ")
    );
    SameWork {
        script: file,
        environment: vec![("PGOPTIONS".into(), options)],
    }
}

/// A program of the server's installation (the real one, where `bindir` has links).
fn beside_postgres(bindir: &Path, program: &str) -> PathBuf {
    std::fs::canonicalize(bindir.join("postgres"))
        .expect("postgres binary")
        .with_file_name(program)
}

fn psql(bindir: &Path, conninfo: &str, sql: &str) {
    let status = Command::new(beside_postgres(bindir, "psql"))
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql, conninfo])
        .status()
        .expect("psql runs");
    assert!(status.success(), "psql failed on {sql}");
}

/// pgbench's mean latency of a script on one connection, in seconds.
fn pgbench_latency(
    pgbench: &Path,
    conninfo: &str,
    script: &Path,
    environment: &[(String, String)],
) -> f64 {
    let output = Command::new(pgbench)
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .args([
            "-n",
            "-M",
            "simple",
            "-c",
            "1",
            "-t",
            FLOOR_TRANSACTIONS,
            "-f",
        ])
        .arg(script)
        .arg(conninfo)
        .output()
        .expect("pgbench runs");
    assert!(
        output.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|line| line.starts_with("latency average"))
        .expect("pgbench prints its latency");
    let ms: f64 = line
        .split('=')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .expect("a latency in ms");
    ms / 1e3
}

/// The tables the setup creates, in order (the bench scenarios' setups are plain `CREATE
/// TABLE name (…)`).
fn tables(scenario: &Scenario) -> Vec<&str> {
    scenario
        .setup
        .split("CREATE TABLE")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

fn conninfo(cluster: &Cluster) -> String {
    let config = cluster.config();
    let Some(Host::Unix(socket)) = config.get_hosts().first() else {
        panic!("the cluster listens on a unix socket");
    };
    format!(
        "host={} port={} user={} dbname={}",
        socket.display(),
        config.get_ports()[0],
        config.get_user().unwrap_or("anomalies"),
        config.get_dbname().unwrap_or("postgres")
    )
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
