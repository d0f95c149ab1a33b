//! `cargo bench`: what a run costs. Prints medians and spreads; asserts nothing.
//!
//! - replay: one interleaving on open connections (the runner and the engine, no setup), also
//!   with fixes in place whose sessions retry (attempt 2 included in the time);
//! - prepare + finish: a private schema or file, the setup SQL, one connection per session;
//! - wait detection: from sending a step that blocks on a row lock to knowing it waits, and from
//!   the blocker's ROLLBACK to knowing the wait ended (PostgreSQL and MariaDB);
//! - the whole command, server start and stop included, as a user types it;
//! - on SQLite, the anchor: the statements a replay sent, in its order, on plain rusqlite
//!   connections to a file like the run's (WAL, `synchronous = OFF`), with no runner and no
//!   engine, paired round by round with the replay.
//!
//! PostgreSQL and MariaDB are throwaway servers started from the installed server binaries.
//! Names after `--` choose engines: `cargo bench --bench run -- sqlite`.

use std::process::Command;
use std::time::{Duration, Instant};

use anomalies::engine::{Choice, ConnectOptions, Engine, Settled};
use anomalies::level::Level;
use anomalies::runner::{replay, RunOptions};
use anomalies::scenario::{EngineKind, Scenario};
use anomalies::timeline::{EventKind, Timeline};

#[path = "support/stats.rs"]
mod stats;
use stats::stats;

const ROUNDS: usize = 200;
const COMMAND_ROUNDS: usize = 20;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let engines: Vec<EngineKind> = EngineKind::ALL
        .into_iter()
        .filter(|kind| chosen.is_empty() || chosen.iter().any(|c| c == kind.name()))
        .collect();
    for &kind in &engines {
        runtime.block_on(engine_figures(Choice::Only(kind)));
    }
    command_figures(&engines);
}

async fn engine_figures(choice: Choice) {
    let options = ConnectOptions {
        choice,
        url: None,
        standby_url: None,
        node_urls: Vec::new(),
        connect_timeout: Duration::from_secs(5),
        pg_bindir: None,
        mariadb_bindir: None,
        redis_url: None,
        topology: Default::default(),
    };
    let (mut engine, _) = Engine::connect(&options).await.expect("engine");
    let info = engine.info().clone();
    println!("\n{} {} ({})", info.name, info.version, info.detail);
    let run_options = RunOptions {
        step_timeout: Duration::from_secs(10),
        stop_when_impossible: false,
    };
    for (id, fix, level) in [
        ("write-skew", None, Level::Serializable),
        ("lost-update", None, Level::ReadCommitted),
        ("read-skew", None, Level::RepeatableRead),
        ("lost-update", Some("optimistic"), Level::ReadCommitted),
        (
            "write-skew",
            Some("serializable-retry"),
            Level::Serializable,
        ),
        ("job-queue", Some("skip-locked"), Level::ReadCommitted),
    ] {
        let mut scenario = Scenario::load(id).expect("built-in").for_engine(info.name);
        if let Some(fix) = fix {
            scenario = scenario.with_fix(fix).expect("fix");
            let unavailable = scenario
                .applied
                .as_ref()
                .and_then(|f| f.unavailable_on(info.name));
            if unavailable.is_some() {
                continue;
            }
        }
        let id = scenario.label();
        let interleaving = &scenario.interleavings[0];
        let mut prepares = Vec::new();
        let mut replays = Vec::new();
        let mut anchors = Vec::new();
        let mut ratios = Vec::new();
        let mut questions = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let mut run = engine.prepare(&scenario, level).await.expect("prepare");
            let prepared = started.elapsed();
            let started = Instant::now();
            let timeline = replay(&mut run, &scenario, interleaving, run_options, None)
                .await
                .expect("replay");
            let replayed = started.elapsed();
            replays.push(replayed);
            questions += run.questions();
            let started = Instant::now();
            run.finish().await.expect("finish");
            prepares.push(prepared + started.elapsed());
            if info.name == EngineKind::Sqlite {
                let anchor = sqlite_same_statements(&scenario, &timeline);
                ratios.push(replayed.as_secs_f64() / anchor.as_secs_f64());
                anchors.push(anchor);
            }
        }
        let steps = interleaving.steps.len();
        println!(
            "  {id} at {level} ({steps} steps): replay {}; prepare + finish {}; {:.2} questions a replay",
            stats(&mut replays),
            stats(&mut prepares),
            questions as f64 / ROUNDS as f64
        );
        if !anchors.is_empty() {
            ratios.sort_by(f64::total_cmp);
            println!(
                "    the same statements on plain rusqlite connections: {}; replay / that: {:.1}x (median of the rounds' ratios)",
                stats(&mut anchors),
                ratios[ratios.len() / 2]
            );
        }
    }
    if choice != Choice::Only(EngineKind::Sqlite) {
        wait_detection(&mut engine).await;
    }
    engine.close().await.expect("close");
}

/// Alice holds a row lock; John's UPDATE of the same row is sent and settled: how long until
/// the runner knows John waits? And once Alice rolls back, how long until it knows John's UPDATE
/// is done?
async fn wait_detection(engine: &mut Engine) {
    let scenario = Scenario::load("lost-update").expect("built-in");
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(10);
    let mut waits = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..ROUNDS {
        let mut run = engine
            .prepare(&scenario, Level::ReadCommitted)
            .await
            .expect("prepare");
        for (session, sql) in [
            (0, "BEGIN"),
            (1, "BEGIN"),
            (0, "UPDATE accounts SET balance = 1 WHERE id = 1"),
        ] {
            run.send(session, anomalies::scenario::PRIMARY, sql);
            run.settle(session, deadline()).await.expect("settle");
        }
        let started = Instant::now();
        run.send(
            1,
            anomalies::scenario::PRIMARY,
            "UPDATE accounts SET balance = 2 WHERE id = 1",
        );
        let settled = run.settle(1, deadline()).await.expect("settle");
        waits.push(started.elapsed());
        assert_eq!(
            settled,
            Settled::Waiting(vec![0]),
            "John should wait for Alice"
        );
        run.rollback(0).await.expect("rollback");
        let started = Instant::now();
        let settled = run.recheck(1, deadline()).await.expect("recheck");
        ends.push(started.elapsed());
        assert!(
            matches!(settled, Settled::Done(_)),
            "John's UPDATE should be done once Alice rolled back: {settled:?}"
        );
        run.rollback(1).await.expect("rollback");
        run.finish().await.expect("finish");
    }
    println!(
        "  wait detection (send → known waiting): {}",
        stats(&mut waits)
    );
    println!(
        "  wait end (blocker's ROLLBACK returned → step known done): {}",
        stats(&mut ends)
    );
}

/// The statements `timeline` shows sent (a waiting step's first try included, answered
/// `SQLITE_BUSY` at once as no busy handler retries), a retry's or give-up's ROLLBACK and the
/// final queries, on plain connections to a new file with `scenario`'s setup: how long SQLite
/// itself takes for a replay's work. Only the statements are timed.
fn sqlite_same_statements(scenario: &Scenario, timeline: &Timeline) -> Duration {
    use rusqlite::Connection;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("anchor.db");
    let setup = Connection::open(&path).expect("open");
    setup
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
        .expect("wal");
    setup.execute_batch(&scenario.setup).expect("setup");
    drop(setup);
    let sessions: Vec<Connection> = (0..scenario.sessions.len())
        .map(|_| {
            let connection = Connection::open(&path).expect("open");
            connection
                .pragma_update(None, "synchronous", "OFF")
                .expect("synchronous");
            connection
        })
        .collect();
    let last = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open");
    let finals: Vec<&String> = scenario
        .decision
        .final_query
        .iter()
        .chain(scenario.decision.named_finals.iter().map(|(_, sql)| sql))
        .collect();
    let read_all = |connection: &Connection, sql: &str| -> rusqlite::Result<usize> {
        let mut batch = rusqlite::Batch::new(connection, sql);
        let mut values = 0;
        while let Some(mut statement) = batch.next()? {
            let columns = statement.column_count();
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next()? {
                for i in 0..columns {
                    values += usize::from(row.get_ref(i)?.as_str().is_ok());
                }
            }
        }
        Ok(values)
    };
    let started = Instant::now();
    for event in &timeline.events {
        let sql = match &event.kind {
            EventKind::Done { .. } | EventKind::Waiting { .. } | EventKind::Resumed { .. } => {
                event.sql.as_str()
            }
            EventKind::Retried { .. } | EventKind::GaveUp => "ROLLBACK",
            _ => continue,
        };
        // A failure is an answer here too, as in the replay.
        let _ = read_all(&sessions[event.step.session], sql);
    }
    for sql in finals {
        read_all(&last, sql).expect("the final query");
    }
    started.elapsed()
}

/// The command as a user runs it, warm, per engine; then goal 5's two commands of issue 14:
/// `matrix --engine postgres` (goal: 0.4 s) when PostgreSQL is chosen, and `check --engine
/// all` (goal: 1.5 s) when every engine is.
fn command_figures(engines: &[EngineKind]) {
    println!("\nwhole command, {COMMAND_ROUNDS} runs each (warm cache)");
    for engine in engines.iter().map(|kind| kind.name()) {
        let args = [
            "run",
            "write-skew",
            "--level",
            "serializable",
            "--engine",
            engine,
        ];
        println!("  anomalies {}: {}", args.join(" "), command(&args));
    }
    let mut goals = Vec::new();
    if engines.contains(&EngineKind::Postgres) {
        goals.push((["matrix", "--engine", "postgres"], "0.4 s"));
    }
    if engines.len() == EngineKind::ALL.len() {
        goals.push((["check", "--engine", "all"], "1.5 s"));
    }
    for (args, goal) in goals {
        println!(
            "  anomalies {}: {} (goal: {goal})",
            args.join(" "),
            command(&args)
        );
    }
}

/// `anomalies ARGS`, `COMMAND_ROUNDS` times after one untimed run that warms the caches.
fn command(args: &[&str]) -> String {
    let binary = env!("CARGO_BIN_EXE_anomalies");
    let mut times = Vec::new();
    for round in 0..=COMMAND_ROUNDS {
        let started = Instant::now();
        let output = Command::new(binary)
            .args(args)
            .args(["--format", "json"])
            .output()
            .expect("the binary runs");
        if round > 0 {
            times.push(started.elapsed());
        }
        // A mismatch is said on stdout, in the JSON: its lines that are not as expected.
        let said = String::from_utf8_lossy(&output.stdout);
        let mismatches: Vec<&str> = said
            .lines()
            .filter(|line| line.contains("\"line\"") && !line.contains("as expected"))
            .collect();
        assert!(
            output.status.success(),
            "anomalies {} ended with {}: {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            mismatches.join("\n")
        );
    }
    stats(&mut times)
}
