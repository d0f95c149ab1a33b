//! Every command that prints JSON prints what `docs/json-schema/` says: real output, from real
//! runs on SQLite, validated against the schema of its command.

use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!(
        "{}/docs/json-schema/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The command's JSON, checked against `name`'s schema; returned for more checks.
fn valid(name: &str, args: &[&str]) -> Value {
    let output = anomalies().args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    let document: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let errors: Vec<String> = schema(name)
        .iter_errors(&document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{args:?}:\n{}", errors.join("\n"));
    assert_eq!(
        document["schema_version"],
        anomalies::render::SCHEMA_VERSION
    );
    document
}

#[test]
fn run_json_matches_its_schema() {
    let run = valid(
        "run",
        &[
            "run",
            "lost-update",
            "--engine",
            "sqlite",
            "--format",
            "json",
        ],
    );
    assert!(run["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    valid(
        "run",
        &[
            "run",
            "write-skew",
            "--engine",
            "sqlite",
            "--level",
            "all",
            "--format",
            "json",
        ],
    );
    valid(
        "run",
        &[
            "run",
            "distributed-lock",
            "--engine",
            "sqlite",
            "--format",
            "json",
        ],
    );
    // On a primary and a standby: a replica step, each event's node, the run's topology.
    let replica = valid(
        "run",
        &[
            "run",
            "stale-replica-read",
            "--fix",
            "read-your-writes",
            "--format",
            "json",
        ],
    );
    assert_eq!(replica["topology"], "primary-standby");
    let timeline = replica["timeline"].as_array().unwrap();
    assert_eq!(timeline[0]["replica"], "pause");
    assert_eq!(timeline[0]["node"], "standby");
    assert!(timeline.iter().any(|e| e["node"] == "primary"));
}

#[test]
fn check_matrix_explore_explain_list_and_bench_json_match_their_schemas() {
    let check = valid(
        "check",
        &[
            "check",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
            "--format",
            "json",
        ],
    );
    // lost-update --fix for-update does not run on SQLite: named, not left out.
    assert!(
        check["not_run"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["run"] == "lost-update --fix for-update"
                && n["why"].as_str().unwrap().contains("FOR UPDATE")),
        "{check}"
    );
    valid(
        "matrix",
        &["matrix", "--engine", "sqlite", "--format", "json"],
    );
    valid(
        "explore",
        &[
            "explore",
            "write-skew",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
            "--format",
            "json",
        ],
    );
    valid("explain", &["explain", "lost-update", "--format", "json"]);
    let explained = valid(
        "explain",
        &["explain", "stale-replica-read", "--format", "json"],
    );
    assert_eq!(explained["topology"], "primary-standby");
    assert_eq!(explained["expected"]["sqlite"]["available"], false);
    valid("list", &["list", "--format", "json"]);
    valid(
        "bench",
        &[
            "bench",
            "--engine",
            "sqlite",
            "--format",
            "json",
            "--workers",
            "1",
            "--hot",
            "5",
            "--duration",
            "50ms",
            "--warmup",
            "10ms",
        ],
    );
}

/// A step of several statements shows every set of rows it returned, in order, on every
/// engine; the last one is the step's own `columns` and `rows`.
#[test]
fn a_multi_statement_step_shows_every_result_set() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/multi-statement.toml"
    );
    for engine in ["sqlite", "postgres", "mariadb"] {
        let run = valid(
            "run",
            &["run", file, "--engine", engine, "--format", "json"],
        );
        let result = &run["timeline"][0]["result"];
        assert_eq!(
            result["result_sets"],
            serde_json::json!([
                { "columns": ["one", "one"], "rows": [[1, 2]] },
                { "columns": ["id", "v"], "rows": [[1, 11], [2, 20]] },
            ]),
            "{engine}: {result}"
        );
        assert_eq!(
            result["columns"],
            serde_json::json!(["id", "v"]),
            "{engine}"
        );
    }
}

/// The schema rejects what version 1 printed: rows as objects keyed by column.
#[test]
fn the_run_schema_rejects_rows_keyed_by_column() {
    let output = anomalies()
        .args([
            "run",
            "lost-update",
            "--engine",
            "sqlite",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let mut run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(schema("run").is_valid(&run));
    run["final_state"] = serde_json::json!([{ "balance": 80 }]);
    assert!(!schema("run").is_valid(&run));
}

/// A result set keeps its columns in order, duplicates too, and every row.
#[test]
fn rows_keep_column_order_and_duplicate_names() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/duplicate-columns.toml"
    );
    let run = valid(
        "run",
        &["run", file, "--engine", "sqlite", "--format", "json"],
    );
    let read = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"] == "read")
        .expect("the read step")
        .clone();
    assert_eq!(
        read["result"]["columns"],
        serde_json::json!(["one", "one", "b"])
    );
    assert_eq!(
        read["result"]["rows"],
        serde_json::json!([[1, 2, "x"], [1, 2, "y"]])
    );
}
