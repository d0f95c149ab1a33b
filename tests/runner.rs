//! The runner's harder paths on real databases: deadlocks, deferred steps, stuck waits,
//! timeouts, and a user's own server (its schema left untouched, nothing left behind, Ctrl-C).

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::confine::OUR_ROLES;
use crate::support::{anomalies, json_runs, records, stderr, stdout};
use crate::user_server::UserServer;

fn run_json(fixture: &str, engine: &str, level: &str, extra: &[&str]) -> Value {
    run_json_exiting(fixture, engine, level, extra, 0)
}

/// As [`run_json`], for a run that exits with `code` (2 for a broken run).
fn run_json_exiting(fixture: &str, engine: &str, level: &str, extra: &[&str], code: i32) -> Value {
    let output = anomalies()
        .args([
            "run",
            &format!("tests/fixtures/{fixture}.toml"),
            "--format",
            "json",
        ])
        .args(["--engine", engine, "--level", level])
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// `event` of each timeline entry, as `session.step:event`, with `+deferred` when deferred.
fn events(run: &Value) -> Vec<String> {
    run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let deferred = if e["deferred"] == Value::Bool(true) {
                "+deferred"
            } else {
                ""
            };
            let attempt = match e["attempt"].as_u64() {
                Some(n) if n > 1 => format!("#{n}"),
                _ => String::new(),
            };
            format!(
                "{}.{}:{}{deferred}{attempt}",
                e["session"].as_str().unwrap(),
                e["step"].as_str().unwrap(),
                e["event"].as_str().unwrap()
            )
        })
        .collect()
}

/// A built-in scenario with a fix in place, as JSON.
fn run_fix(scenario: &str, fix: &str, engine: &str, level: &str) -> Value {
    let output = anomalies()
        .args(["run", scenario, "--fix", fix, "--format", "json"])
        .args(["--engine", engine, "--level", level])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[test]
fn a_version_check_that_matches_no_row_runs_the_transaction_again() {
    let run = run_fix("lost-update", "optimistic", "postgres", "read-committed");
    assert_eq!(
        events(&run),
        [
            "alice.begin:done",
            "john.begin:done",
            "alice.read:done",
            "john.read:done",
            "alice.write:done",
            "john.write:waiting",
            "alice.commit:done",
            "john.write:resumed",
            "john.write:retried#2",
            "john.begin:done#2",
            "john.read:done#2",
            "john.write:done#2",
            "john.commit:done#2",
        ]
    );
    let timeline = run["timeline"].as_array().unwrap();
    assert_eq!(timeline[7]["result"]["rows_affected"], 0);
    assert_eq!(timeline[8]["sql"], "ROLLBACK");
    assert_eq!(timeline[8]["reason"], "no-rows");
    assert_eq!(timeline[8]["from_step"], "begin");
    // Attempt 2 writes what attempt 2 read.
    assert_eq!(records(&timeline[10]["result"])[0]["balance"], 150);
    assert_eq!(
        timeline[11]["sql"],
        "UPDATE accounts SET balance = 150 - 120, version = version + 1 WHERE id = 1 AND version = 2"
    );
    assert_eq!(records(&run["final_state"])[0]["balance"], 30);
    assert_eq!(run["prevented_by"], "retry");
}

#[test]
fn a_retry_backs_off_until_the_sessions_next_step() {
    // SQLite refuses John's write at once while Alice still holds the write lock; retrying
    // right away would fail again, so attempt 2 starts when John's next step (his COMMIT)
    // comes due, after Alice's COMMIT.
    let run = run_fix(
        "lost-update",
        "serializable-retry",
        "sqlite",
        "serializable",
    );
    assert_eq!(
        events(&run)[5..],
        [
            "john.write:done",
            "john.write:retried#2",
            "alice.commit:done",
            "john.begin:done#2",
            "john.read:done#2",
            "john.write:done#2",
            "john.commit:done#2",
        ]
    );
    assert_eq!(run["timeline"][5]["result"]["code"], "SQLITE_BUSY");
    assert_eq!(records(&run["final_state"])[0]["balance"], 30);
    assert_eq!(run["prevented_by"], "retry");
}

#[test]
fn retries_stop_after_the_sessions_attempts() {
    let dir = crate::support::open_tempdir();
    let path = dir.path().join("retry.toml");
    let text = std::fs::read_to_string("scenarios/lost-update.toml")
        .unwrap()
        .replace(
            "[[fix.session]]\nname = \"john\"\nretry_on = [\"serialization-failure\", \"deadlock\", \"busy\"]",
            "[[fix.session]]\nname = \"john\"\nretry_on = [\"serialization-failure\", \"deadlock\", \"busy\"]\nattempts = 1",
        );
    assert!(text.contains("attempts = 1"));
    std::fs::write(&path, text).unwrap();
    let output = anomalies()
        .args(["run", path.to_str().unwrap(), "--fix", "serializable-retry"])
        .args(["--engine", "sqlite", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    // One attempt in all: the failure stands.
    assert_eq!(run["level"]["requested"], "serializable");
    assert!(!events(&run).iter().any(|e| e.contains("retried")));
    assert_eq!(run["prevented_by"], "abort");
}

#[test]
fn postgres_breaks_a_deadlock_and_the_survivor_goes_on() {
    let run = run_json("deadlock", "postgres", "read-committed", &[]);
    assert_eq!(run["prevented_by"], "abort");
    let timeline = run["timeline"].as_array().unwrap();
    let victims: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["result"]["code"] == "40P01")
        .collect();
    assert_eq!(victims.len(), 1, "{:#?}", events(&run));
    assert_eq!(victims[0]["event"], "resumed");
    assert_eq!(victims[0]["result"]["kind"], "deadlock");
    let victim = victims[0]["session"].as_str().unwrap();
    let survivor = if victim == "alice" { "john" } else { "alice" };
    let tail: Vec<String> = events(&run).into_iter().skip(4).collect();
    assert_eq!(
        tail,
        [
            "alice.credit:waiting".to_string(),
            "john.credit:waiting".to_string(),
            format!("{victim}.credit:resumed"),
            format!("{victim}.commit:skipped"),
            format!("{survivor}.credit:resumed"),
            format!("{survivor}.commit:done+deferred"),
        ]
    );
    // The survivor was released by the victim's abort, whichever answer reached us first.
    assert_eq!(timeline[6]["released_by_position"], Value::Null);
    assert_eq!(timeline[8]["released_by_position"], 7);
    assert_eq!(records(&run["final_state"])[0]["total"], 200);
}

#[test]
fn a_commit_that_checks_a_deferred_constraint_is_seen_waiting() {
    // PostgreSQL asks about a COMMIT only where the scenario leaves it a lock to take: here a
    // deferred unique check. John's INSERT found Alice's uncommitted row of the same seat, so
    // his COMMIT checks again and waits for her.
    let run = run_json("deferred-commit", "postgres", "read-committed", &[]);
    assert_eq!(
        events(&run),
        [
            "alice.book:done",
            "john.book:done",
            "john.commit:waiting",
            "alice.cancel:done",
            "john.commit:resumed",
        ]
    );
    let timeline = run["timeline"].as_array().unwrap();
    assert_eq!(timeline[2]["blocked_by"], serde_json::json!(["alice"]));
    assert_eq!(records(&run["final_state"])[0]["booked"], 1);
}

#[test]
fn sqlite_waits_in_its_busy_handler_and_sends_deferred_steps_after() {
    let run = run_json("deadlock", "sqlite", "serializable", &[]);
    assert_eq!(run["prevented_by"], "blocking", "{}", run["summary"]);
    assert_eq!(
        events(&run),
        [
            "alice.begin:done",
            "john.begin:done",
            "alice.debit:done",
            "john.debit:waiting",
            "alice.credit:done",
            "alice.commit:done",
            "john.debit:resumed",
            "john.credit:done+deferred",
            // John's wait ended before his COMMIT's turn came: sent in order, not deferred.
            "john.commit:done",
        ]
    );
    let timeline = run["timeline"].as_array().unwrap();
    assert_eq!(timeline[3]["blocked_by"], serde_json::json!(["alice"]));
    assert_eq!(timeline[6]["released_by_position"], 6);
    assert_eq!(records(&run["final_state"])[0]["total"], 200);
}

#[test]
fn a_wait_on_a_session_with_nothing_left_is_cancelled_at_once() {
    for (engine, level) in [("postgres", "read-committed"), ("sqlite", "serializable")] {
        let started = Instant::now();
        let run = run_json("stuck", engine, level, &["--step-timeout", "60s"]);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{engine} waited out the timeout"
        );
        assert_eq!(
            events(&run),
            [
                "alice.begin:done",
                "alice.write:done",
                "john.begin:done",
                "john.write:waiting",
                "john.write:stuck",
                "john.commit:skipped",
            ],
            "{engine}"
        );
        assert_eq!(
            run["summary"],
            "prevented — John's UPDATE waited for Alice, which had nothing left to run, and was \
             cancelled; the balance is 100",
            "{engine}"
        );
    }
}

#[test]
fn a_step_that_neither_finishes_nor_waits_is_cancelled_after_the_step_timeout() {
    let started = Instant::now();
    let run = run_json_exiting(
        "slow",
        "postgres",
        "read-committed",
        &["--step-timeout", "300ms"],
        2,
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        events(&run),
        [
            "alice.begin:done",
            "alice.slow:timed-out",
            "alice.commit:skipped"
        ]
    );
    // The tool's own timeout is no database guarantee: the run is broken, not prevented.
    assert_eq!(run["verdict"], "error");
    assert_eq!(run["prevented_by"], Value::Null);
    assert_eq!(run["cause"]["kind"], "timed-out");
    assert_eq!(run["cause"]["step"], "alice.slow");
}

const OUR_SCHEMAS: &str = "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%'";
const OUR_BACKENDS: &str =
    "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'anomalies %'";

#[test]
fn a_users_server_keeps_its_data_and_gets_nothing_left_behind() {
    let server = UserServer::start();
    // The user's own data, named like the scenario's table. Cached data directories are reused,
    // so it lives in a schema of this run's own, dropped at the end.
    let schema = format!("bank_{}", std::process::id());
    server.query(&format!("CREATE SCHEMA {schema}"));
    server.query(&format!(
        "CREATE TABLE {schema}.accounts (id int, balance int)"
    ));
    server.query(&format!("INSERT INTO {schema}.accounts VALUES (1, 7)"));
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--level",
            "all",
            "--format",
            "json",
            "--url",
            &server.url,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = json_runs(&stdout(&output));
    assert_eq!(runs[3]["prevented_by"], "abort");
    assert!(runs[0]["engine"]["detail"]
        .as_str()
        .unwrap()
        .ends_with("/postgres"));
    let balances = server.query(&format!("SELECT balance::text FROM {schema}.accounts"));
    server.query(&format!("DROP SCHEMA {schema} CASCADE"));
    assert_eq!(balances, ["7"]);
    assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new());
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(server.until_empty(OUR_BACKENDS), Vec::<String>::new());
}

#[test]
fn ctrl_c_during_a_step_cleans_up_and_exits_130() {
    let server = UserServer::start();
    let binary = assert_cmd::cargo::cargo_bin("anomalies");
    let mut child = std::process::Command::new(binary)
        .args([
            "run",
            "tests/fixtures/slow.toml",
            "--step-timeout",
            "60s",
            "--url",
            &server.url,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the server says Alice's slow statement is running.
    let running = "SELECT application_name FROM pg_stat_activity \
                   WHERE application_name = 'anomalies alice' AND query LIKE '%pg_sleep%' AND state = 'active'";
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.query(running).is_empty() {
        assert!(Instant::now() < deadline, "the slow step never started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    // A file that is not a built-in, on a user's server where the user may create roles: it
    // runs as a role of its own, so there is no notice of the user's privileges.
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(lines[0], "error: interrupted; cleaned up");
    assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new());
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(server.until_empty(OUR_BACKENDS), Vec::<String>::new());
}

#[test]
fn three_sessions_queue_on_one_row_and_resume_one_at_a_time() {
    let head = [
        "alice.begin:done",
        "bob.begin:done",
        "carol.begin:done",
        "alice.deposit:done",
        "bob.deposit:waiting",
        "carol.deposit:waiting",
        "alice.commit:done",
    ];
    let bob_first = [
        "bob.deposit:resumed",
        "bob.commit:done",
        "carol.deposit:resumed",
        "carol.commit:done",
    ];
    // PostgreSQL at read committed has no FIFO queue here: when Alice commits, Bob and Carol
    // both re-check the new row version and race for its lock. Carol wins about one run in
    // twenty on this machine; Bob's COMMIT then waits behind his deposit and goes deferred.
    let carol_first = [
        "carol.deposit:resumed",
        "carol.commit:done",
        "bob.deposit:resumed",
        "bob.commit:done+deferred",
    ];
    for (engine, level) in [("postgres", "read-committed"), ("sqlite", "serializable")] {
        let run = run_json("queue", engine, level, &[]);
        assert_eq!(
            run["matches_expectation"], true,
            "{engine}: {}",
            run["summary"]
        );
        assert_eq!(records(&run["final_state"])[0]["balance"], 103, "{engine}");
        let events = events(&run);
        assert_eq!(events[..7], head, "{engine}");
        let tail: Vec<&str> = events[7..].iter().map(String::as_str).collect();
        let allowed: &[&[&str]] = if engine == "postgres" {
            &[&bob_first, &carol_first]
        } else {
            // SQLite's busy handlers retry in session order, so Bob takes the free lock first.
            &[&bob_first]
        };
        assert!(allowed.contains(&tail.as_slice()), "{engine}: {events:?}");
        let timeline = run["timeline"].as_array().unwrap();
        assert_eq!(
            timeline[4]["blocked_by"],
            serde_json::json!(["alice"]),
            "{engine}"
        );
        assert_eq!(timeline[7]["released_by_position"], 7, "{engine}");
        assert_eq!(timeline[9]["released_by_position"], 9, "{engine}");
    }
}
