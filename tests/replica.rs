//! Scenarios on a primary and a hot standby that the tool starts (`topology =
//! "primary-standby"`): every variant at every level against its expectations, a lag that is a
//! step and never luck, one-server engines refusing with the reason, and the pair's clean-up
//! and healing.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use anomalies::scenario::EngineKind;
use serde_json::Value;

use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr, stdout};

#[test]
fn every_variant_matches_its_expectations_on_a_primary_and_standby() {
    crate::e2e::check_all_levels("stale-replica-read", EngineKind::Postgres);
}

#[test]
fn one_server_engines_refuse_a_scenario_that_needs_a_standby() {
    for (engine, label) in [("sqlite", "SQLite"), ("mariadb", "MariaDB")] {
        for command in ["run", "explore"] {
            let output = anomalies()
                .args([command, "stale-replica-read", "--engine", engine])
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
            assert_eq!(
                stderr(&output),
                format!(
                    "error: stale-replica-read is not available on {engine}: it needs a primary \
                     and a streaming hot standby, which {label} does not have here\n"
                ),
                "{command}"
            );
        }
    }
    // As a fix the engine lacks is, by explore too.
    let output = anomalies()
        .args([
            "explore",
            "lost-update",
            "--fix",
            "for-update",
            "--engine",
            "sqlite",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .starts_with("error: lost-update --fix for-update is not available on sqlite: "),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
}

/// Each order of `args`'s explore, `--repeat`ed: (order, outcome).
fn explored(args: &[&str], repeat: &str) -> Vec<(String, String)> {
    let output = anomalies()
        .args(["explore", "stale-replica-read", "--level", "read-committed"])
        .args(args)
        .args(["--repeat", repeat, "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let document: Value = serde_json::from_str(&stdout(&output)).unwrap();
    document["levels"][0]["orders"]
        .as_array()
        .expect("the orders")
        .iter()
        .map(|order| {
            let steps: Vec<&str> = order["order"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            (
                steps.join(" "),
                order["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The paused replay makes the lag a step: the scenario's own order is an anomaly every time,
/// and with a fix in place no order is ever an anomaly. Orders in which John reads while the
/// replay runs are racy, as asynchronous replication is: explore says so.
#[test]
fn the_lag_is_a_step_and_not_luck() {
    let orders = explored(&[], "10");
    let own = "replica.fall-behind john.begin john.pay john.commit john.check replica.catch-up";
    let outcome = orders
        .iter()
        .find(|(order, _)| order == own)
        .map(|(_, outcome)| outcome.as_str());
    assert_eq!(outcome, Some("anomaly"), "{orders:#?}");
    for (order, outcome) in &orders {
        let paused_before_commit_until_read = {
            let at = |step: &str| order.split(' ').position(|s| s == step).unwrap();
            at("replica.fall-behind") < at("john.commit")
                && at("john.check") < at("replica.catch-up")
        };
        if paused_before_commit_until_read {
            assert_eq!(outcome, "anomaly", "{order}");
        }
    }
    // With a fix, no run of any order is an anomaly. An order that pauses the replay before
    // John's commit ends the same way every time; one that pauses it after may find his
    // commit replayed already or not (the replay runs until the pause), so its mechanism may
    // differ from run to run: seen once in a full suite, `read-your-writes` with `john.lsn
    // replica.fall-behind john.wait` waited in 4 runs of 5 and read at once in 1.
    for fix in ["remote-apply", "read-your-writes", "primary-read"] {
        for (order, outcome) in explored(&["--fix", fix], "5") {
            assert!(!outcome.contains("anomaly"), "{fix}: {order}: {outcome}");
            let at = |step: &str| order.split(' ').position(|s| s == step).unwrap();
            if at("replica.fall-behind") < at("john.commit") {
                assert!(!outcome.starts_with("racy"), "{fix}: {order}: {outcome}");
            }
        }
    }
}

#[test]
fn the_header_says_how_the_standby_runs_serializable() {
    let output = anomalies()
        .args([
            "run",
            "stale-replica-read",
            "--level",
            "serializable",
            "--width",
            "200",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("(throwaway primary and hot standby; the standby runs serializable as repeatable read (a hot standby has no serializable transactions))"),
        "{text}"
    );
    assert!(
        text.contains("John (primary)") && text.contains("Replica (standby)"),
        "{text}"
    );
    assert!(text.contains("standby> SELECT balance"), "{text}");
}

/// The pair's slot directory under a test's own cache.
fn pair_slot(cache: &Path) -> std::path::PathBuf {
    let family = fs::read_dir(cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().ends_with("-pair"))
        .expect("a pg-<major>-pair directory");
    family.join("slot-0")
}

fn run_in(cache: &Path) -> std::process::Output {
    anomalies()
        .args(["run", "stale-replica-read", "--level", "read-committed"])
        .env("ANOMALIES_CACHE_DIR", cache)
        .output()
        .unwrap()
}

#[test]
fn a_killed_run_leaves_neither_server_of_the_pair() {
    let cache = open_tempdir();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
        .args(["run", "stale-replica-read", "--pace", "60s"])
        .env("ANOMALIES_CACHE_DIR", cache.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Paced, the run waits before its first step once both servers run and its sessions
    // have connected to the standby.
    while !processes_mentioning(cache.path())
        .iter()
        .any(|p| p.contains("sock-standby") || p.contains("standby"))
    {
        assert!(Instant::now() < deadline, "the standby never started");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_mentioning(cache.path()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left: {:?}",
            processes_mentioning(cache.path())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next run takes the slot, stops nothing and starts both again.
    let next = run_in(cache.path());
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn a_damaged_standby_is_copied_from_its_primary_again_with_one_notice() {
    let cache = open_tempdir();
    let first = run_in(cache.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let control = pair_slot(cache.path()).join("standby/global/pg_control");
    fs::write(&control, b"not a control file").unwrap();
    let healing = run_in(cache.path());
    let err = stderr(&healing);
    assert!(healing.status.success(), "{err}");
    let notices: Vec<&str> = err.lines().filter(|l| l.starts_with("notice:")).collect();
    assert_eq!(notices.len(), 1, "{err}");
    assert!(
        notices[0].contains("standby") && notices[0].contains("copied from its primary again"),
        "{err}"
    );
    let clean = run_in(cache.path());
    assert!(
        clean.status.success() && !stderr(&clean).contains("notice"),
        "{}",
        stderr(&clean)
    );
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

/// The compaction of the primary's catalogs (`VACUUM FULL` in single-user mode, before the
/// primary starts) gives the pair a fresh standby, copied from the compacted primary: the run
/// goes on without a notice, and the marker the test leaves in the old standby's directory is
/// gone. (Kept, that standby would first replay the rewritten catalogs, holding their locks,
/// and a login there once waited past its 5 s in CI.)
#[test]
fn a_compacted_primary_gets_a_fresh_standby() {
    let cache = open_tempdir();
    let first = run_in(cache.path());
    assert!(first.status.success(), "{}", stderr(&first));
    let slot = pair_slot(cache.path());
    let marker = slot.join("standby/anomalies-test-marker");
    fs::write(&marker, b"the old standby").unwrap();
    // No record of the last compaction: the next start compacts.
    fs::remove_file(slot.join("compacted")).unwrap();
    let compacting = run_in(cache.path());
    assert!(compacting.status.success(), "{}", stderr(&compacting));
    assert!(
        !stderr(&compacting).contains("notice"),
        "{}",
        stderr(&compacting)
    );
    assert!(slot.join("compacted").exists(), "the start compacted");
    assert!(!marker.exists(), "the standby is a fresh copy");
    assert!(slot.join("standby/standby.signal").exists());
    let again = run_in(cache.path());
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn a_users_primary_and_standby_are_reached_through_a_url_each() {
    let pair = crate::user_server::UserServer::start_pair();
    let standby = pair.standby_url.clone().expect("a standby");
    let run = |extra: &[&str]| {
        let output = anomalies()
            .args(["run", "stale-replica-read", "--level", "read-committed"])
            .args(["--format", "json", "--url", &pair.url, "--url", &standby])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
        (run["verdict"].clone(), run["prevented_by"].clone())
    };
    assert_eq!(run(&[]), (Value::from("anomaly"), Value::Null));
    assert_eq!(
        run(&["--fix", "remote-apply"]),
        (Value::from("prevented"), Value::from("blocking"))
    );
    // A standby left paused (a run killed while it held the pause) is named in the error.
    pair.on_standby("SELECT pg_wal_replay_pause()::text");
    let output = anomalies()
        .args([
            "run",
            "stale-replica-read",
            "--url",
            &pair.url,
            "--url",
            &standby,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: PostgreSQL: the standby did not replay the primary's WAL within 10s: its replay is paused") ||
        err.starts_with("error: PostgreSQL: the standby did not replay the primary's WAL within 10s: its replay is pause requested"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    pair.on_standby("SELECT pg_wal_replay_resume()::text");
    assert_eq!(run(&[]), (Value::from("anomaly"), Value::Null));
    // Nothing of the runs is left on the user's primary, nor, replayed, on the standby.
    let left = pair.until_empty(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%' \
         UNION ALL SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'anomalies_%'",
    );
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn a_standby_url_must_name_a_standby_and_come_with_the_primary() {
    let server = crate::user_server::UserServer::start();
    let output = anomalies()
        .args(["run", "stale-replica-read", "--url", &server.url])
        .arg("--url")
        .arg(format!("standby={}", server.url))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: the server at --url standby={}/postgres is not a hot standby \
             (pg_is_in_recovery() is false)\n",
            server.at
        )
    );
    let alone = anomalies()
        .args(["run", "stale-replica-read", "--url"])
        .arg(format!("standby={}", server.url))
        .output()
        .unwrap();
    assert_eq!(alone.status.code(), Some(2));
    assert_eq!(
        stderr(&alone),
        "error: --url standby=URL needs the primary's URL too: --url URL or --url primary=URL\n"
    );
    let one = anomalies()
        .args(["run", "stale-replica-read", "--url", &server.url])
        .output()
        .unwrap();
    assert_eq!(one.status.code(), Some(2));
    assert_eq!(
        stderr(&one),
        "error: stale-replica-read is not available on postgres: it needs a primary with a hot \
         standby: without --url the tool starts both; with --url, name the standby too (--url \
         standby=URL)\n"
    );
}
