//! A step's SQL and the setup with a variant for one engine: each engine runs its own, and the
//! timeline shows what was sent.

use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

/// The SQL of the first `count` events of a run of the per-engine fixture on `engine`.
fn sent(engine: &str, count: usize) -> Vec<String> {
    let output = anomalies()
        .args(["run", "tests/fixtures/per-engine.toml", "--format", "json"])
        .args(["--engine", engine, "--level", "read-committed"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    run["timeline"].as_array().expect("a timeline")[..count]
        .iter()
        .map(|event| event["sql"].as_str().expect("sql").to_string())
        .collect()
}

#[test]
fn postgres_runs_the_default_sql() {
    assert_eq!(
        sent("postgres", 2),
        [
            "BEGIN",
            "SELECT balance FROM accounts WHERE id = 1 FOR UPDATE"
        ]
    );
}

#[test]
fn sqlite_runs_its_variants() {
    assert_eq!(
        sent("sqlite", 2),
        [
            "BEGIN IMMEDIATE",
            "SELECT balance FROM accounts WHERE id = 1"
        ]
    );
}
