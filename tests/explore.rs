//! `anomalies explore`: every order, checked against outcomes derived by hand for small cases.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

fn explore(target: &str, engine: &str, extra: &[&str]) -> Value {
    let output = anomalies()
        .args(["explore", target, "--engine", engine, "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

/// Per level, each order's outcome in enumeration order, shortened to a letter:
/// a = anomaly, b = blocking, x = abort, c = consistent read, i = impossible.
fn letters(result: &Value) -> Vec<(String, String)> {
    result["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|level| {
            let outcomes: String = level["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| match o["outcome"].as_str().unwrap() {
                    "anomaly" => 'a',
                    "prevented by blocking" => 'b',
                    "prevented by abort" => 'x',
                    "prevented by consistent-read" => 'c',
                    other if other.starts_with("impossible") => 'i',
                    other => panic!("unknown outcome {other}"),
                })
                .collect();
            (
                level["level"]["requested"].as_str().unwrap().to_string(),
                outcomes,
            )
        })
        .collect()
}

fn expect(result: &Value, expected: [(&str, &str); 4]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(l, o)| (l.to_string(), o.to_string()))
        .collect();
    assert_eq!(letters(result), expected);
}

// The six orders of two sessions with two steps each, in enumeration order:
//   1 a1 a2 j1 j2   2 a1 j1 a2 j2   3 a1 j1 j2 a2   4 j1 a1 a2 j2   5 j1 a1 j2 a2   6 j1 j2 a1 a2
//
// explore-lost-update: step 1 = BEGIN; read the balance (200); step 2 = write back what was read
// minus 50 (Alice) or 120 (John), and COMMIT. No lock outlives a step, so nothing ever waits.
// Orders 1 and 6 are serial: the second reader sees the first's commit (balance 30).
// In orders 2-5 both read 200 before either writes:
// - read committed: the second write overwrites the first: anomaly;
// - repeatable read and serializable (PostgreSQL): the second writer's row changed after its
//   snapshot: 40001, abort;
// - SQLite serializable (WAL): the second writer's read snapshot is stale: SQLITE_BUSY, abort;
// - SQLite read uncommitted (one shared cache, no snapshots): the second write overwrites: anomaly.
#[test]
fn lost_update_in_two_steps_matches_the_hand_count() {
    let target = "tests/fixtures/explore-lost-update.toml";
    expect(
        &explore(target, "postgres", &[]),
        [
            ("read-uncommitted", "caaaac"),
            ("read-committed", "caaaac"),
            ("repeatable-read", "cxxxxc"),
            ("serializable", "cxxxxc"),
        ],
    );
    expect(
        &explore(target, "sqlite", &[]),
        [
            ("read-uncommitted", "caaaac"),
            ("read-committed", "cxxxxc"),
            ("repeatable-read", "cxxxxc"),
            ("serializable", "cxxxxc"),
        ],
    );
}

// explore-write-skew: step 1 = BEGIN; read the total of both accounts (300); step 2 = pay 100
// from one's own account if the total read minus 100 stays at 200 or more, and COMMIT.
// Orders 1 and 6 are serial: the second reads 200 and does not pay (total 200).
// In orders 2-5 both read 300 and both pay, from different rows, so nothing waits:
// - read committed and repeatable read (snapshot isolation): both commit, total 100: anomaly;
// - serializable (PostgreSQL SSI): the second payment fails with 40001: abort;
// - SQLite serializable (WAL): the second writer's read snapshot is stale: SQLITE_BUSY, abort;
// - SQLite read uncommitted (shared cache): both pay: anomaly.
#[test]
fn write_skew_in_two_steps_matches_the_hand_count() {
    let target = "tests/fixtures/explore-write-skew.toml";
    expect(
        &explore(target, "postgres", &[]),
        [
            ("read-uncommitted", "caaaac"),
            ("read-committed", "caaaac"),
            ("repeatable-read", "caaaac"),
            ("serializable", "cxxxxc"),
        ],
    );
    expect(
        &explore(target, "sqlite", &[]),
        [
            ("read-uncommitted", "caaaac"),
            ("read-committed", "cxxxxc"),
            ("repeatable-read", "cxxxxc"),
            ("serializable", "cxxxxc"),
        ],
    );
}

// explore-row-lock: step 1 = BEGIN; UPDATE the row (balance + 1), holding its lock; step 2 =
// COMMIT. Orders 1 and 6 are serial. In orders 2 and 5 the second UPDATE waits for the first
// session, whose COMMIT comes next and releases it:
// - read committed: it re-reads the committed row and goes on: blocking;
// - repeatable read and serializable (PostgreSQL): the row changed after its snapshot: abort;
// - SQLite serializable: it waits in the busy handler before its transaction has read, then
//   starts on the committed state: blocking.
// In orders 3 and 4 the waiting session's COMMIT is due while it still waits: impossible.
// SQLite read uncommitted (shared cache): the second UPDATE fails at once with
// SQLITE_LOCKED_SHAREDCACHE instead of waiting: abort in orders 2-5.
#[test]
fn a_row_lock_queue_matches_the_hand_count_and_never_waits_out_a_timeout() {
    let target = "tests/fixtures/explore-row-lock.toml";
    let started = Instant::now();
    let postgres = explore(target, "postgres", &["--step-timeout", "60s"]);
    let sqlite = explore(target, "sqlite", &["--step-timeout", "60s"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an impossible order was waited out"
    );
    expect(
        &postgres,
        [
            ("read-uncommitted", "cbiibc"),
            ("read-committed", "cbiibc"),
            ("repeatable-read", "cxiixc"),
            ("serializable", "cxiixc"),
        ],
    );
    expect(
        &sqlite,
        [
            ("read-uncommitted", "cxxxxc"),
            ("read-committed", "cbiibc"),
            ("repeatable-read", "cbiibc"),
            ("serializable", "cbiibc"),
        ],
    );
    let order_3 = &postgres["levels"][1]["orders"][2];
    assert_eq!(
        order_3["order"],
        serde_json::json!([
            "alice.deposit",
            "john.deposit",
            "john.commit",
            "alice.commit"
        ])
    );
    assert_eq!(order_3["outcome"], "impossible (John is waiting for Alice)");
}

#[test]
fn every_builtin_explores_on_both_engines() {
    for engine in ["postgres", "sqlite"] {
        for id in [
            "dirty-read",
            "non-repeatable-read",
            "read-skew",
            "lost-update",
            "write-skew",
        ] {
            let result = explore(id, engine, &[]);
            let total: usize = result["orders"]["run"].as_u64().unwrap() as usize;
            assert_eq!(result["orders"]["sampled"], false);
            for level in result["levels"].as_array().unwrap() {
                let counts = &level["counts"];
                let sum: u64 = [
                    "anomaly",
                    "blocking",
                    "abort",
                    "consistent_read",
                    "impossible",
                ]
                .iter()
                .map(|k| counts[k].as_u64().unwrap())
                .sum();
                assert_eq!(sum as usize, total, "{engine} {id}");
                assert_eq!(level["orders"].as_array().unwrap().len(), total);
            }
        }
    }
}

#[test]
fn a_limit_samples_and_says_so() {
    let result = explore(
        "lost-update",
        "sqlite",
        &["--limit", "7", "--level", "serializable"],
    );
    assert_eq!(
        result["orders"],
        serde_json::json!({"total": "70", "run": 7, "sampled": true})
    );
    let output = anomalies()
        .args([
            "explore",
            "lost-update",
            "--engine",
            "sqlite",
            "--limit",
            "7",
        ])
        .args(["--level", "serializable"])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("orders    7 of 70 (a sample: pass a larger --limit to run more)"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn the_table_shows_counts_and_the_shortest_anomalous_order() {
    let output = anomalies()
        .args(["explore", "write-skew", "--engine", "postgres"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("orders    70 (every order that keeps each session's steps in order)"),
        "{text}"
    );
    assert!(
        text.contains("shortest anomalous order at repeatable read:"),
        "{text}"
    );
    assert!(
        !text.contains("shortest anomalous order at serializable"),
        "{text}"
    );
}

/// Orders shared among runs give what one run gives, order by order: the counts, each order's
/// outcome and summary in enumeration order, and the same shortest anomalous order. (Not on a
/// racy scenario, where two sessions wait for one row.)
#[test]
fn runs_sharing_the_orders_give_what_one_run_gives() {
    let cases = [
        ("lost-update", "postgres"),
        ("read-only-anomaly", "postgres"),
        ("tests/fixtures/explore-lost-update.toml", "sqlite"),
        ("tests/fixtures/explore-lost-update.toml", "mariadb"),
    ];
    for (target, engine) in cases {
        let serial = explore(target, engine, &["--jobs", "1", "--limit", "40"]);
        let shared = explore(target, engine, &["--jobs", "3", "--limit", "40"]);
        assert_eq!(serial["levels"], shared["levels"], "{target} on {engine}");
        let table = |jobs: &str| {
            let output = anomalies()
                .args(["explore", target, "--engine", engine, "--jobs", jobs])
                .args(["--limit", "40"])
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            stdout(&output)
        };
        assert_eq!(table("1"), table("3"), "{target} on {engine}");
    }
}

/// Each order run three times: where every run ends the same way, nothing is racy and the
/// counts are one run's. (Which orders of a scenario are racy is the server's choice, so no
/// test can demand one; `Outcome::of_runs` is tested on plain values.)
#[test]
fn repeated_runs_of_orders_that_end_one_way_are_not_racy() {
    let once = explore("lost-update", "postgres", &["--limit", "30"]);
    let thrice = explore(
        "lost-update",
        "postgres",
        &["--limit", "30", "--repeat", "3"],
    );
    assert_eq!(once["levels"], thrice["levels"]);
    for level in thrice["levels"].as_array().unwrap() {
        assert_eq!(level["counts"]["racy"], 0, "{level}");
    }
}

// read-only-first: Alice, pinned read-only and first, reads; John sets the balance in one
// statement. In enumeration order: John last: consistent read. John between Alice's read and
// her commit: PostgreSQL and SQLite let him write beside her snapshot (consistent read);
// MariaDB's serializable read holds a shared lock, so he waits for her commit (blocking). John
// first: Alice reads his 50 (anomaly). The data is put back between orders by the tool's own connection, never a
// session's, which here may not write.
#[test]
fn a_read_only_first_session_does_not_stop_the_data_being_put_back() {
    for (engine, middle) in [("postgres", "c"), ("mariadb", "b"), ("sqlite", "c")] {
        let result = explore(
            "tests/fixtures/read-only-first.toml",
            engine,
            &["--level", "serializable"],
        );
        let letters: Vec<String> = letters(&result).into_iter().map(|(_, l)| l).collect();
        assert_eq!(letters, [format!("c{middle}a")], "{engine}: {result}");
    }
}

// explore-refused: explore-lost-update with John's write naming a column that is not there. On
// PostgreSQL a query sent once goes as a prepared statement from the next order on; one the
// server refuses cannot be prepared and goes as text again, so every order fails the same way,
// with the server's own word (42703), never with a statement the tool prepared.
#[test]
fn a_step_the_server_refuses_fails_alike_in_every_order() {
    let output = anomalies()
        .args([
            "explore",
            "tests/fixtures/explore-refused.toml",
            "--engine",
            "postgres",
        ])
        .args(["--level", "read-committed", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "a broken run: {}",
        stderr(&output)
    );
    let result: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let level = &result["levels"][0];
    assert_eq!(level["counts"]["error"], 6, "{level}");
    for order in level["orders"].as_array().unwrap() {
        let summary = order["summary"].as_str().unwrap();
        assert!(
            summary.contains("john.write failed with 42703"),
            "{summary}"
        );
    }
}
