//! `anomalies bench` on every engine, on real databases: a tiny grid (2 workers, 1 hot account,
//! a fraction of a second) keeps the invariants it should and has the JSON fields; under the
//! hidden rendezvous (every worker reads before any writes) `naive` certainly loses money and a
//! naive queue certainly does a job twice, while the safe strategies hold. Timings are never
//! asserted.

use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

const FIELDS: [&str; 12] = [
    "strategy",
    "workers",
    "hot",
    "engine",
    "committed",
    "tps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "attempts_per_commit",
    "aborts",
    "safe",
];

/// A 150 ms grid with `warmup`, on 2 workers and 1 hot account.
fn bench(engine: &str, warmup: &str, args: &[&str]) -> Vec<Value> {
    let output = anomalies()
        .args(["bench", "--engine", engine, "--format", "json"])
        .args([
            "--workers",
            "2",
            "--hot",
            "1",
            "--warmup",
            warmup,
            "--duration",
            "150ms",
        ])
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "bench on {engine} failed: {}",
        stderr(&output)
    );
    let document: Value = serde_json::from_str(&stdout(&output)).expect("a JSON document");
    document["cells"].as_array().expect("its cells").clone()
}

fn cell<'a>(cells: &'a [Value], strategy: &str) -> &'a Value {
    cells
        .iter()
        .find(|c| c["strategy"] == strategy && c.get("not_run").is_none())
        .unwrap_or_else(|| panic!("no cell for {strategy}: {cells:?}"))
}

/// The whole payment grid: every cell has the fields, and every strategy but `naive` (and,
/// where the engine lets the lost update through, `also_unsafe`) keeps the invariants.
fn tiny_grid(engine: &str, also_unsafe: &[&str], not_run: &[&str]) {
    let cells = bench(engine, "20ms", &[]);
    let mut skipped = Vec::new();
    for c in &cells {
        let strategy = c["strategy"].as_str().expect("a strategy");
        if let Some(reason) = c.get("not_run") {
            assert!(reason.as_str().is_some_and(|r| !r.is_empty()), "{c}");
            skipped.push(strategy);
            continue;
        }
        for field in FIELDS {
            assert!(c.get(field).is_some(), "{strategy} has no {field}: {c}");
        }
        assert_eq!(c["engine"], engine);
        assert_eq!(
            (c["workers"].as_u64(), c["hot"].as_u64()),
            (Some(2), Some(1))
        );
        assert!(c["committed"].as_u64() > Some(0), "{c}");
        // Sampled where the engine can tell; SQLite's waits are inside its busy handler.
        let share = c["lock_wait_share"].as_f64();
        match engine {
            "sqlite" => assert!(c["lock_wait_share"].is_null(), "{c}"),
            _ => assert!(share.is_some_and(|s| (0.0..=1.0).contains(&s)), "{c}"),
        }
        if strategy != "naive" && !also_unsafe.contains(&strategy) {
            assert_eq!(
                c["safe"], true,
                "{strategy} broke an invariant on {engine}: {c}"
            );
            assert!(c.get("lost").is_none(), "{c}");
        }
        if c["safe"] == false {
            assert!(
                c.get("lost").is_some() || c["below_limit"].as_u64() > Some(0),
                "{c}"
            );
        }
    }
    assert_eq!(skipped, not_run, "strategies not run on {engine}");
    assert_eq!(cells.len(), 12, "{cells:?}");
}

/// Every worker reads before any writes: the naive write-back loses one of the two payments
/// (never zero: an amount is never zero), and the optimistic one retries instead.
fn certain_damage(engine: &str, queue_safe: &[&str]) {
    let cells = bench(
        engine,
        "0s",
        &["--rendezvous", "--strategies", "naive,optimistic"],
    );
    let naive = cell(&cells, "naive");
    assert_eq!(naive["safe"], false, "{naive}");
    assert_ne!(naive["lost"].as_i64().unwrap_or(0), 0, "{naive}");
    let optimistic = cell(&cells, "optimistic");
    assert_eq!(optimistic["safe"], true, "{optimistic}");
    assert_eq!(optimistic["aborts"]["stale-write"], 1, "{optimistic}");
    assert_eq!(optimistic["ledger"], 2, "{optimistic}");

    let jobs = bench(engine, "0s", &["--workload", "queue", "--rendezvous"]);
    let naive = cell(&jobs, "naive");
    assert_eq!(naive["safe"], false, "{naive}");
    assert_eq!(naive["done_twice"], 1, "{naive}");
    for strategy in queue_safe {
        let c = cell(&jobs, strategy);
        assert_eq!(
            (&c["safe"], &c["done_twice"]),
            (&Value::Bool(true), &Value::from(0))
        );
    }
}

#[test]
fn postgres_tiny_grid_keeps_its_invariants() {
    tiny_grid("postgres", &[], &[]);
}

#[test]
fn postgres_naive_certainly_loses_money() {
    certain_damage("postgres", &["for-update", "skip-locked"]);
}

/// MariaDB 10.11's REPEATABLE READ lets the lost update through (innodb_snapshot_isolation is
/// off): that strategy may be unsafe there.
#[test]
fn mariadb_tiny_grid_keeps_its_invariants() {
    tiny_grid("mariadb", &["repeatable-read-retry"], &[]);
}

#[test]
fn mariadb_naive_certainly_loses_money() {
    certain_damage("mariadb", &["for-update", "skip-locked"]);
}

#[test]
fn sqlite_tiny_grid_keeps_its_invariants() {
    tiny_grid(
        "sqlite",
        &[],
        &["repeatable-read-retry", "procedure", "advisory"],
    );
}

#[test]
fn sqlite_naive_certainly_loses_money() {
    certain_damage("sqlite", &["for-update"]);
}

#[test]
fn a_misspelt_strategy_is_one_line_with_the_closest_name() {
    let output = anomalies()
        .args([
            "bench",
            "--engine",
            "sqlite",
            "--strategies",
            "atomic,optimstic",
        ])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: unknown strategy `optimstic`; did you mean `optimistic`?\n"
    );
}

#[test]
fn a_bad_workers_list_is_one_line() {
    for list in ["1,x", "0", "1,,4"] {
        let output = anomalies()
            .args(["bench", "--engine", "sqlite", "--workers", list])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(2), "{list}");
        let text = stderr(&output);
        assert!(text.starts_with("error: --workers takes"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}

#[test]
fn svg_is_self_contained_with_a_panel_per_hot_set() {
    let output = anomalies()
        .args(["bench", "--engine", "sqlite", "--format", "svg"])
        .args([
            "--strategies",
            "naive,atomic",
            "--workers",
            "1,2",
            "--hot",
            "1,50",
        ])
        .args(["--warmup", "0s", "--duration", "50ms"])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let svg = stdout(&output);
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains(">1 hot account<") && svg.contains(">50 hot accounts<"));
    assert!(!svg.contains("<script") && !svg.contains("href="));
    assert_eq!(svg.matches("<polyline").count(), 4);
}
