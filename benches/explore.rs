//! `cargo bench --bench explore`: the same interleavings through `anomalies explore` and through
//! PostgreSQL's own isolation tester, on the same throwaway server. Prints per-order times for
//! both and their ratio; asserts nothing about speed.
//!
//! The isolation tester cannot skip an order in which a step is due on a session that waits (it
//! waits up to 300 s), so it is given only the orders explore found possible. Its per-order time
//! is (time for all orders - time for one order) / (orders - 1), which takes out its start-up;
//! explore's is the median of each order's replay plus the reset of the data after it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anomalies::engine::cluster::{find_bindir, Cluster};
use anomalies::engine::{Choice, ConnectOptions, Engine};
use anomalies::explore;
use anomalies::level::Level;
use anomalies::runner::{replay, RunOptions};
use anomalies::scenario::{Interleaving, Scenario};
use tokio_postgres::config::Host;

const TESTER_ROUNDS: usize = 5;
/// Times explore replays the whole set of orders, for a steadier median.
const EXPLORE_PASSES: usize = 10;

fn main() {
    let bindir = find_bindir().expect("PostgreSQL server binaries are not installed");
    let tester = isolation_tester(&bindir);
    let cluster = Cluster::start(&bindir).expect("a throwaway server");
    let conninfo = conninfo(&cluster);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("isolation tester: {}", tester.display());
    for (file, level) in [
        ("bench/lost-update.toml", Level::ReadCommitted),
        ("bench/write-skew.toml", Level::Serializable),
    ] {
        let scenario = Scenario::load(file).expect("bench scenario");
        let (possible, impossible, ours, reset) =
            runtime.block_on(explore_orders(&scenario, level, &conninfo));
        let spec = spec(&scenario, level, &possible);
        let all = median_duration(TESTER_ROUNDS, || run_tester(&tester, &conninfo, &spec));
        let one = median_duration(TESTER_ROUNDS, || {
            run_tester(&tester, &conninfo, &spec_first_only(&spec))
        });
        let n = possible.len() as f64;
        let tester_per_order = (all.as_secs_f64() - one.as_secs_f64()) / (n - 1.0);
        let ours_median = median(&ours);
        println!(
            "\n{} at {level}: {} orders, {} possible (given to both), {} impossible (explore only)",
            scenario.id,
            possible.len() + impossible,
            possible.len(),
            impossible
        );
        println!(
            "  explore:           {:.3} ms per order (median of {} order runs; p90 {:.3} ms; of which the data reset {:.3} ms)",
            ours_median * 1e3,
            ours.len(),
            percentile(&ours, 0.9) * 1e3,
            reset * 1e3
        );
        println!(
            "  isolation tester:  {:.3} ms per order ({:.1} ms for all, {:.1} ms for one; median of {TESTER_ROUNDS} runs)",
            tester_per_order * 1e3,
            all.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e3
        );
        println!(
            "  ratio:             {:.1}x",
            tester_per_order / ours_median
        );
    }
    cluster.stop().expect("stop the server");
}

/// Runs every order through the library as `explore` does, timing each order (replay + reset).
/// Returns the possible orders, how many were impossible, the possible orders' times, and the
/// median time of the data reset between orders.
async fn explore_orders(
    scenario: &Scenario,
    level: Level,
    conninfo: &str,
) -> (Vec<Interleaving>, usize, Vec<f64>, f64) {
    let options = ConnectOptions {
        choice: Choice::Only(anomalies::scenario::EngineKind::Postgres),
        url: Some(conninfo.to_string()),
        connect_timeout: Duration::from_secs(5),
        pg_bindir: None,
        mariadb_bindir: None,
        redis_url: None,
    };
    let (mut engine, _) = Engine::connect(&options).await.expect("connect");
    let run_options = RunOptions {
        step_timeout: Duration::from_secs(10),
        stop_when_impossible: true,
    };
    let orders = explore::orders(scenario, None).expect("orders").orders;
    let mut run = engine.prepare(scenario, level).await.expect("prepare");
    run.save_initial_state().await.expect("save");
    let (mut possible, mut impossible, mut times) = (Vec::new(), 0, Vec::new());
    let mut resets = Vec::new();
    let passes = std::iter::repeat_n(&orders, EXPLORE_PASSES)
        .flatten()
        .enumerate();
    for (index, order) in passes {
        let first_pass = index < orders.len();
        let started = Instant::now();
        let timeline = replay(&mut run, scenario, order, run_options, None)
            .await
            .expect("replay");
        let reset_started = Instant::now();
        run.reset().await.expect("reset");
        resets.push(reset_started.elapsed().as_secs_f64());
        let elapsed = started.elapsed().as_secs_f64();
        if timeline.impossible.is_some() {
            impossible += usize::from(first_pass);
        } else {
            times.push(elapsed);
            if first_pass {
                possible.push(order.clone());
            }
        }
    }
    run.finish().await.expect("finish");
    engine.close().await.expect("close");
    (possible, impossible, times, median(&resets))
}

/// The scenario as an isolation tester spec, with one permutation per order.
fn spec(scenario: &Scenario, level: Level, orders: &[Interleaving]) -> String {
    let tables: Vec<&str> = scenario
        .setup
        .split("CREATE TABLE")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let mut spec = format!(
        "setup {{ {} }}\nteardown {{ DROP TABLE {}; }}\n",
        scenario.setup.trim(),
        tables.join(", ")
    );
    for session in &scenario.sessions {
        spec.push_str(&format!(
            "session {0}\nsetup {{ SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {1}; }}\n",
            session.name,
            level.sql()
        ));
        for step in &session.steps {
            spec.push_str(&format!(
                "step {}_{} {{ {} }}\n",
                session.name,
                step.name,
                step.sql.render(|_| String::new())
            ));
        }
    }
    for order in orders {
        let steps: Vec<String> = order
            .steps
            .iter()
            .map(|id| {
                format!(
                    "{}_{}",
                    scenario.sessions[id.session].name,
                    scenario.step(*id).name
                )
            })
            .collect();
        spec.push_str(&format!("permutation {}\n", steps.join(" ")));
    }
    spec
}

fn spec_first_only(spec: &str) -> String {
    let mut seen = false;
    spec.lines()
        .filter(|line| {
            if !line.starts_with("permutation") {
                return true;
            }
            let keep = !seen;
            seen = true;
            keep
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

fn run_tester(tester: &Path, conninfo: &str, spec: &str) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(tester)
        .arg(conninfo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the isolation tester starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.as_bytes())
        .expect("write the spec");
    let output = child.wait_with_output().expect("the isolation tester ends");
    assert!(
        output.status.success(),
        "isolation tester failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// The isolation tester that ships with the server binaries (postgresql-client-NN on Debian).
fn isolation_tester(bindir: &Path) -> PathBuf {
    let real = std::fs::canonicalize(bindir.join("postgres")).expect("postgres binary");
    let tester = real
        .parent()
        .and_then(Path::parent)
        .expect("server directory")
        .join("lib/pgxs/src/test/isolation/isolationtester");
    assert!(
        tester.exists(),
        "no isolation tester at {}",
        tester.display()
    );
    tester
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

fn median_duration(rounds: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..rounds).map(|_| f()).collect();
    times.sort();
    times[rounds / 2]
}

fn median(samples: &[f64]) -> f64 {
    percentile(samples, 0.5)
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
