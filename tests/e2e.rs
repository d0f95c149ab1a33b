//! Every built-in scenario, and each of its fixes, at every level on real PostgreSQL (the
//! throwaway cluster the tool starts) and on embedded SQLite; verdict and mechanism must match
//! the expectations. Nothing here skips: without PostgreSQL server binaries the PostgreSQL
//! tests fail and say why.

use anomalies::level::Level;
use anomalies::scenario::{EngineKind, Scenario};
use serde_json::Value;

use crate::support::{anomalies, json_runs, stderr, stdout};

/// The scenario at every level, then each of its fixes: every run must show what its
/// expectations say; a fix the engine can't run must say so and exit 2.
pub(crate) fn check_all_levels(id: &str, engine: EngineKind) {
    check_all_levels_on(id, engine, engine.name());
}

/// [`check_all_levels`], the engine chosen with `--engine ARG` (`galera` is MariaDB's).
pub(crate) fn check_all_levels_on(id: &str, engine: EngineKind, arg: &str) {
    let scenario = Scenario::load(id).expect("built-in scenario");
    let mut mismatches = Vec::new();
    check_variant(&scenario, None, engine, arg, &mut mismatches);
    for fix in &scenario.fixes {
        check_variant(
            &fix.variant,
            Some(&fix.info.id),
            engine,
            arg,
            &mut mismatches,
        );
    }
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

fn check_variant(
    variant: &Scenario,
    fix: Option<&str>,
    engine: EngineKind,
    arg: &str,
    mismatches: &mut Vec<String>,
) {
    let label = variant.label();
    let target = variant
        .file()
        .map_or(variant.id.clone(), |path| path.display().to_string());
    let mut command = anomalies();
    command
        .args(["run", &target, "--level", "all", "--format", "json"])
        .args(["--engine", arg]);
    if let Some(fix) = fix {
        command.args(["--fix", fix]);
    }
    let output = command.output().expect("the binary runs");
    let unavailable = variant
        .applied
        .as_ref()
        .and_then(|info| info.unavailable_on(engine));
    if let Some(why) = unavailable {
        assert_eq!(output.status.code(), Some(2), "{label} ran on {engine}");
        assert_eq!(
            stderr(&output),
            format!("error: {label} is not available on {engine}: {why}\n")
        );
        return;
    }
    assert!(
        output.status.success(),
        "anomalies run {label} on {engine} failed: {}",
        stderr(&output)
    );
    let runs = json_runs(&stdout(&output));
    assert_eq!(runs.len(), 4);
    for (run, level) in runs.iter().zip(Level::ALL) {
        assert_eq!(run["level"]["requested"], level.id());
        assert_eq!(run["engine"]["name"], engine.to_string());
        assert_eq!(run["fix"], fix.map_or(Value::Null, Value::from));
        let expected = variant
            .expected(engine, level)
            .unwrap_or_else(|| panic!("{label} expects nothing for {engine} {level}"))
            .to_string();
        let observed = match (run["verdict"].as_str(), run["prevented_by"].as_str()) {
            (Some("anomaly"), None) => "anomaly".to_string(),
            (Some("prevented"), Some(by)) => format!("prevented by {by}"),
            other => panic!("{label} {level}: malformed verdict {other:?}"),
        };
        if observed != expected {
            mismatches.push(format!(
                "{engine} {label} {level}: expected {expected}, got {observed} — {}",
                run["summary"]
            ));
        }
        assert_eq!(
            run["matches_expectation"],
            Value::Bool(observed == expected)
        );
    }
}

macro_rules! engine_tests {
    ($($name:ident: $id:literal,)*) => {
        mod postgres {
            $(#[test] fn $name() { super::check_all_levels($id, super::EngineKind::Postgres); })*
        }
        mod mariadb {
            $(#[test] fn $name() { super::check_all_levels($id, super::EngineKind::Mariadb); })*
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
    observed_transaction_vanishes: "observed-transaction-vanishes",
    phantom_write: "phantom-write",
    read_skew_predicate: "read-skew-predicate",
    read_skew_write: "read-skew-write",
    rc_update_recheck: "rc-update-recheck",
    job_queue: "job-queue",
    distributed_lock: "distributed-lock",
    per_engine_sql: "tests/fixtures/per-engine.toml",
    read_only_deferrable: "tests/fixtures/read-only-deferrable.toml",
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
        "observed-transaction-vanishes",
        "phantom-write",
        "read-skew-predicate",
        "read-skew-write",
        "rc-update-recheck",
        "job-queue",
        "distributed-lock",
        // On a primary and a standby, in replica.rs.
        "stale-replica-read",
        // On a Galera cluster, in galera_runs.rs.
        "cross-node-lost-update",
        "cross-node-write-skew",
        "cross-node-for-update",
    ];
    for scenario in Scenario::builtins() {
        assert!(
            tested.contains(&scenario.id.as_str()),
            "{} is not tested",
            scenario.id
        );
    }
}
