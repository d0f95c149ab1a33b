//! Every built-in scenario at every level on real PostgreSQL (the throwaway cluster the tool
//! starts) and on embedded SQLite; verdict and mechanism must match the scenario's expectations.
//! Nothing here skips: without PostgreSQL server binaries the PostgreSQL tests fail and say why.

use anomalies::level::Level;
use anomalies::scenario::{EngineKind, Scenario};
use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

fn check_all_levels(id: &str, engine: EngineKind) {
    let scenario = Scenario::load(id).expect("built-in scenario");
    let output = anomalies()
        .args(["run", id, "--level", "all", "--format", "json"])
        .args(["--engine", &engine.to_string()])
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "anomalies run {id} on {engine} failed: {}",
        stderr(&output)
    );
    let runs: Vec<Value> = serde_json::from_str(&stdout(&output)).expect("JSON array");
    assert_eq!(runs.len(), 4);
    let mut mismatches = Vec::new();
    for (run, level) in runs.iter().zip(Level::ALL) {
        assert_eq!(run["level"]["requested"], level.id());
        assert_eq!(run["engine"]["name"], engine.to_string());
        let expected = scenario
            .expected(engine, level)
            .unwrap_or_else(|| panic!("{id} expects nothing for {engine} {level}"))
            .to_string();
        let observed = match (run["verdict"].as_str(), run["prevented_by"].as_str()) {
            (Some("anomaly"), None) => "anomaly".to_string(),
            (Some("prevented"), Some(by)) => format!("prevented by {by}"),
            other => panic!("{id} {level}: malformed verdict {other:?}"),
        };
        if observed != expected {
            mismatches.push(format!(
                "{engine} {id} {level}: expected {expected}, got {observed} — {}",
                run["summary"]
            ));
        }
        assert_eq!(
            run["matches_expectation"],
            Value::Bool(observed == expected)
        );
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

macro_rules! engine_tests {
    ($($name:ident: $id:literal,)*) => {
        mod postgres {
            $(#[test] fn $name() { super::check_all_levels($id, super::EngineKind::Postgres); })*
        }
        mod sqlite {
            $(#[test] fn $name() { super::check_all_levels($id, super::EngineKind::Sqlite); })*
        }
    };
}

engine_tests! {
    dirty_read: "dirty-read",
    non_repeatable_read: "non-repeatable-read",
    read_skew: "read-skew",
    lost_update: "lost-update",
    write_skew: "write-skew",
    dirty_write: "dirty-write",
    phantom: "phantom",
    predicate_write_skew: "predicate-write-skew",
    read_only_anomaly: "read-only-anomaly",
    intermediate_read: "intermediate-read",
    circular_information_flow: "circular-information-flow",
}

#[test]
fn every_builtin_has_an_end_to_end_test() {
    let tested = [
        "dirty-read",
        "non-repeatable-read",
        "read-skew",
        "lost-update",
        "write-skew",
        "dirty-write",
        "intermediate-read",
        "circular-information-flow",
        "phantom",
        "predicate-write-skew",
        "read-only-anomaly",
    ];
    for scenario in Scenario::builtins() {
        assert!(
            tested.contains(&scenario.id.as_str()),
            "{} is not tested",
            scenario.id
        );
    }
}
