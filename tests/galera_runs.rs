//! Scenarios across the nodes of a throwaway MariaDB Galera cluster (`topology =
//! "multi-master"`, `--engine galera`): every variant at every level against its expectations,
//! verdicts that do not depend on timing, and the engines that refuse them.

use anomalies::scenario::EngineKind;
use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

#[test]
fn cross_node_lost_update_on_a_galera_cluster() {
    crate::e2e::check_all_levels_on("cross-node-lost-update", EngineKind::Mariadb, "galera");
}

#[test]
fn cross_node_write_skew_on_a_galera_cluster() {
    crate::e2e::check_all_levels_on("cross-node-write-skew", EngineKind::Mariadb, "galera");
}

#[test]
fn cross_node_for_update_on_a_galera_cluster() {
    crate::e2e::check_all_levels_on("cross-node-for-update", EngineKind::Mariadb, "galera");
}

/// Verdicts of one order at one level, `runs` times over.
fn verdicts(args: &[&str], runs: usize) -> Vec<(Value, Value)> {
    (0..runs)
        .map(|_| {
            let output = anomalies()
                .args(["run", "cross-node-lost-update", "--engine", "galera"])
                .args(["--level", "read-committed", "--format", "json"])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
            (run["verdict"].clone(), run["prevented_by"].clone())
        })
        .collect()
}

/// Node 2 applies Alice's commit as a step of the scenario (`replica = "resume"`), so John's
/// write always meets it; two overlapping writes always meet the other node's certification.
#[test]
fn the_two_orders_end_the_same_way_every_time() {
    let lost = verdicts(&[], 5);
    assert!(
        lost.iter()
            .all(|v| v == &(Value::from("anomaly"), Value::Null)),
        "{lost:?}"
    );
    let certified = verdicts(&["--interleaving", "both-read-first"], 5);
    let abort = (Value::from("prevented"), Value::from("abort"));
    assert!(certified.iter().all(|v| v == &abort), "{certified:?}");
}

#[test]
fn a_refused_commit_says_another_node_wrote_first() {
    let output = anomalies()
        .args([
            "run",
            "cross-node-for-update",
            "--engine",
            "galera",
            "--level",
            "read-committed",
        ])
        .args(["--width", "200"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("✗ 1213 another node committed a conflicting write first"),
        "{text}"
    );
    assert!(
        text.contains("Alice (node 1)") && text.contains("John (node 2)"),
        "{text}"
    );
}

#[test]
fn one_server_and_the_cluster_each_refuse_what_is_not_theirs() {
    let on_one = anomalies()
        .args(["run", "cross-node-lost-update", "--engine", "mariadb"])
        .output()
        .unwrap();
    assert_eq!(on_one.status.code(), Some(2));
    assert_eq!(
        stderr(&on_one),
        "error: cross-node-lost-update is not available on mariadb: it needs a multi-master \
         cluster (MariaDB Galera): run it with --engine galera\n"
    );
    let on_cluster = anomalies()
        .args(["run", "lost-update", "--engine", "galera"])
        .output()
        .unwrap();
    assert_eq!(on_cluster.status.code(), Some(2));
    assert_eq!(
        stderr(&on_cluster),
        "error: lost-update is not available on mariadb: it runs on one server: run it with \
         --engine mariadb\n"
    );
}
