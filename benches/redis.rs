//! `cargo bench --bench redis`: what Redis steps cost. Prints medians and spreads; asserts
//! nothing about time.
//!
//! - a Redis step, replayed on open connections (each is a `COMMAND GETKEYS` and the command),
//!   against `redis-benchmark -c 1` on the same server in the same process run, paired round
//!   by round: the same statistic on both sides (each round's mean per request, then the
//!   rounds' median);
//! - the whole command with a throwaway Redis (its start and stop included), with the same
//!   scenario's `--fix setnx` (a table as the lock, no Redis) and with `--redis-url` to a Redis
//!   already running, alternating A B C in each round.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anomalies::engine::{Choice, ConnectOptions, Engine};
use anomalies::level::Level;
use anomalies::runner::{replay, RunOptions};
use anomalies::scenario::{EngineKind, Scenario};

#[path = "support/stats.rs"]
mod stats;
use stats::stats;

const ROUNDS: usize = 200;
const COMMAND_ROUNDS: usize = 20;
/// Redis steps in the replayed scenario: SET, GET, INCR, DEL, repeated.
const STEPS: usize = 40;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let redis = BenchRedis::start(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(step_figures(&redis, dir.path()));
    command_figures(&redis);
}

/// A Redis of the bench's own on a Unix socket, for `--redis-url` and `redis-benchmark`.
struct BenchRedis {
    child: Child,
    socket: PathBuf,
}

impl BenchRedis {
    fn start(dir: &Path) -> BenchRedis {
        let socket = dir.join("redis.sock");
        let program = ["/usr/bin/redis-server", "/usr/bin/redis-check-rdb"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("redis-server or redis-check-rdb in /usr/bin");
        let mut command = Command::new(program);
        std::os::unix::process::CommandExt::arg0(&mut command, "redis-server");
        let child = command
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let started = Instant::now();
        while !ping(&socket) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis did not start"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        BenchRedis { child, socket }
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for BenchRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(socket: &Path) -> bool {
    Command::new("redis-cli")
        .arg("-s")
        .arg(socket)
        .arg("PING")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
}

/// A scenario of one session and `STEPS` Redis steps.
fn redis_scenario() -> String {
    let verbs = ["SET k v", "GET k", "INCR n", "DEL k"];
    let mut text = String::from(
        "id = \"redis-steps\"\ntitle = \"t\"\nanomaly = \"none\"\ncode = \"none\"\nstory = \"s\"\n\
         setup = \"CREATE TABLE t (v INTEGER)\"\n\n[[session]]\nname = \"alice\"\n",
    );
    let mut names = Vec::new();
    for i in 0..STEPS {
        text.push_str(&format!(
            "[[session.step]]\nname = \"s{i}\"\nredis = \"{}\"\nsay = \".\"\n",
            verbs[i % verbs.len()]
        ));
        names.push(format!("\"alice.s{i}\""));
    }
    text.push_str(&format!(
        "\n[[interleaving]]\nname = \"only\"\nsteps = [{}]\n\n[outcome]\nanomaly_if = \"1 = 0\"\n\
         anomaly = \"a\"\nprevented = \"p\"\n",
        names.join(", ")
    ));
    text
}

async fn step_figures(redis: &BenchRedis, dir: &Path) {
    let file = dir.join("redis-steps.toml");
    std::fs::write(&file, redis_scenario()).unwrap();
    let scenario = Scenario::parse(&redis_scenario(), &file.display().to_string()).unwrap();
    let options = ConnectOptions {
        choice: Choice::Only(EngineKind::Sqlite),
        url: None,
        standby_url: None,
        node_urls: Vec::new(),
        connect_timeout: Duration::from_secs(5),
        pg_bindir: None,
        mariadb_bindir: None,
        redis_url: Some(redis.url()),
        topology: Default::default(),
    };
    let (engine, _) = Engine::connect(&options).await.expect("engine");
    let run_options = RunOptions {
        step_timeout: Duration::from_secs(10),
        stop_when_impossible: false,
    };
    let mut run = engine
        .prepare(&scenario, Level::Serializable)
        .await
        .expect("prepare");
    run.save_initial_state().await.expect("save");
    let interleaving = &scenario.interleavings[0];
    let mut ours = Vec::new();
    let mut floor = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        replay(&mut run, &scenario, interleaving, run_options, None)
            .await
            .expect("replay");
        ours.push(started.elapsed() / STEPS as u32);
        run.reset().await.expect("reset");
        floor.push(redis_benchmark(&redis.socket));
    }
    run.finish().await.expect("finish");
    engine.close().await.expect("close");
    println!("\nRedis {STEPS}-step replay on open connections, per step, paired with redis-benchmark -c 1");
    println!(
        "  anomalies, mean per Redis step of a replay: {}",
        stats(&mut ours)
    );
    println!(
        "  redis-benchmark -c 1 -n 2000 -t set,get,incr, mean per request: {}",
        stats(&mut floor)
    );
}

/// `redis-benchmark`'s mean latency of one client sending one request at a time, over SET, GET
/// and INCR.
fn redis_benchmark(socket: &Path) -> Duration {
    let output = Command::new("redis-benchmark")
        .arg("-s")
        .arg(socket)
        .args(["-c", "1", "-n", "2000", "-t", "set,get,incr", "--csv"])
        .output()
        .expect("redis-benchmark runs (redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout);
    // "test","rps","avg_latency_ms",…: the mean per request, as ours is the mean per step of
    // a round; each side's rounds then give their median.
    let means: Vec<f64> = text
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(2))
        .filter_map(|field| field.trim_matches('"').parse().ok())
        .collect();
    assert!(!means.is_empty(), "redis-benchmark printed {text}");
    let mean = means.iter().sum::<f64>() / means.len() as f64;
    Duration::from_secs_f64(mean / 1000.0)
}

fn command_figures(redis: &BenchRedis) {
    let binary = env!("CARGO_BIN_EXE_anomalies");
    let url = redis.url();
    let cases: [(&str, Vec<&str>); 3] = [
        ("--fix setnx (a table as the lock)", vec!["--fix", "setnx"]),
        (
            "--fix redis-setnx, throwaway Redis",
            vec!["--fix", "redis-setnx"],
        ),
        (
            "--fix redis-setnx --redis-url (Redis already running)",
            vec!["--fix", "redis-setnx", "--redis-url", &url],
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for _ in 0..COMMAND_ROUNDS {
        for (index, (_, args)) in cases.iter().enumerate() {
            let started = Instant::now();
            let output = Command::new(binary)
                .args([
                    "run",
                    "distributed-lock",
                    "--engine",
                    "sqlite",
                    "--format",
                    "json",
                ])
                .args(args)
                .output()
                .expect("the binary runs");
            times[index].push(started.elapsed());
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    println!("\nwhole command, anomalies run distributed-lock --engine sqlite, {COMMAND_ROUNDS} rounds A B C (warm cache)");
    for ((label, _), samples) in cases.iter().zip(&mut times) {
        println!("  {label}: {}", stats(samples));
    }
}
