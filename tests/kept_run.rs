//! One run kept across a scenario's levels (`run --level all`, `matrix`, `check`) is as good as
//! a fresh one at each level: the same connections, each at the new level, with nothing a
//! session left on it at the level before (a setting or user variable, a temporary table) and
//! the data as the setup made it. Where the engine cannot promise that (a PostgreSQL custom
//! setting, which no reset undefines), each level gets a fresh run. Every order explore runs
//! on one run starts as new too.

use serde_json::Value;

use crate::support::{anomalies, json_runs, records, stderr, stdout};

/// The first row of a step's result in a run's timeline, keyed by column.
fn row(run: &Value, session: &str, step: &str) -> Value {
    let event = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["session"] == session && e["step"] == step)
        .unwrap_or_else(|| panic!("no {session}.{step} in {run}"));
    assert_eq!(event["event"], "done", "{event}");
    records(&event["result"]).remove(0)
}

/// The runs of the fixture at every level on `engine`, with `fix` in place if given.
fn runs(engine: &str, fix: Option<&str>) -> Vec<Value> {
    let output = anomalies()
        .args(["run", "tests/fixtures/kept-run.toml", "--format", "json"])
        .args(["--engine", engine, "--level", "all"])
        .args(fix.map(|fix| ["--fix", fix]).iter().flatten())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = json_runs(&stdout(&output));
    assert_eq!(runs.len(), 4);
    runs
}

/// Every level's run starts as the first level's, which is a fresh one, at its own level; and
/// whether all four ran on the first level's connection (`kept`).
fn as_new(engine: &str, runs: &[Value], kept: bool) {
    let levels = [
        "READ-UNCOMMITTED",
        "READ-COMMITTED",
        "REPEATABLE-READ",
        "SERIALIZABLE",
    ];
    let first = row(&runs[0], "alice", "who");
    for (i, (run, level)) in runs.iter().zip(levels).enumerate() {
        let alice = row(run, "alice", "who");
        assert_eq!(
            alice["conn"] == first["conn"],
            kept || i == 0,
            "{engine}: {run}"
        );
        assert_eq!(
            alice["mark"], first["mark"],
            "{engine}: a mark left over: {run}"
        );
        let got = alice["level"]
            .as_str()
            .unwrap()
            .to_uppercase()
            .replace(' ', "-");
        // PostgreSQL runs read uncommitted as read committed, and says so.
        let want = match (engine, level) {
            ("postgres", "READ-UNCOMMITTED") => "READ-COMMITTED",
            _ => level,
        };
        assert_eq!(got, want, "{engine}");
        // The row Alice wrote at the level before is gone, and her temporary table too.
        assert_eq!(
            row(run, "john", "count")["n"].to_string(),
            "2",
            "{engine}: {run}"
        );
        let verdict = run["verdict"].as_str().unwrap_or_default();
        assert!(verdict.starts_with("prevented"), "{engine}: {run}");
    }
}

#[test]
fn a_postgres_run_kept_across_levels_is_as_new() {
    as_new("postgres", &runs("postgres", None), true);
}

#[test]
fn a_mariadb_run_kept_across_levels_is_as_new() {
    let runs = runs("mariadb", None);
    assert_eq!(row(&runs[0], "alice", "who")["mark"], Value::Null);
    as_new("mariadb", &runs, true);
}

#[test]
fn a_postgres_custom_setting_gets_a_fresh_run_per_level() {
    let runs = runs("postgres", Some("custom-setting"));
    assert_eq!(row(&runs[0], "alice", "who")["mark"], Value::Null);
    as_new("postgres", &runs, false);
}

/// A scenario's fix with the same setup and sessions runs on the run the scenario left (put
/// back as new), and sees nothing of it: no row, no mark, no temporary table.
#[test]
fn a_fix_after_its_scenario_sees_nothing_it_left() {
    for engine in ["postgres", "mariadb"] {
        let output = anomalies()
            .args(["matrix", "tests/fixtures/kept-run.toml", "--fixes"])
            .args(["--engine", engine, "--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let matrix: Value = serde_json::from_str(&stdout(&output)).unwrap();
        let cells = matrix["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 8, "{engine}: {matrix}");
        for cell in cells {
            assert_eq!(cell["verdict"], "prevented", "{engine}: {cell}");
        }
    }
}

/// Explore runs every order on one run, put back between them: each order starts as a fresh
/// run would, with no mark, temporary table or row an order before left. Hand count: John
/// counts 2 accounts only where his count comes after Alice's write, which is last but one:
/// the 5 orders that end with his count (his first step in any of the 5 places before it).
/// The other 10 count 1, the fixture's anomaly. An order that saw a mark would be an anomaly
/// too, and one that met the temporary table an error.
#[test]
fn every_order_explore_runs_starts_as_new() {
    for engine in ["postgres", "mariadb", "sqlite"] {
        let output = anomalies()
            .args([
                "explore",
                "tests/fixtures/kept-run.toml",
                "--format",
                "json",
            ])
            .args(["--engine", engine, "--level", "serializable"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{engine}: {}", stderr(&output));
        let explored: Value = serde_json::from_str(&stdout(&output)).unwrap();
        let counts = &explored["levels"][0]["counts"];
        assert_eq!(counts["anomaly"], 10, "{engine}: {counts}");
        assert_eq!(counts["consistent_read"], 5, "{engine}: {counts}");
        assert_eq!(counts["error"], 0, "{engine}: {counts}");
        for order in explored["levels"][0]["orders"].as_array().unwrap() {
            let last = order["order"].as_array().unwrap().last().unwrap().clone();
            let prevented = order["outcome"] == "prevented by consistent-read";
            assert_eq!(prevented, last == "john.count", "{engine}: {order}");
            assert!(
                !order["summary"].as_str().unwrap().contains("mark is left")
                    && !order["summary"].as_str().unwrap().contains("1234"),
                "{engine}: {order}"
            );
        }
    }
}

/// A run a scenario left is rebuilt for the next scenario with as many sessions (`check` runs
/// `leaves-state` alone, then `as-new` on the run it left): the same connections, renamed for
/// the new sessions, at each level, with nothing the scenario before left: no table, setting,
/// temporary table, advisory lock or large object of its role's. A scenario of the fixture
/// that saw any of it would be an anomaly, and so would a level of `leaves-state` that saw the
/// large object the level before made.
#[test]
fn a_run_rebuilt_for_another_scenario_is_as_new() {
    let output = anomalies()
        .args(["check", "tests/fixtures/rebuilt", "--engine", "postgres"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = json_runs(&stdout(&output));
    assert_eq!(runs.len(), 8);
    let after = |run: &Value, text: &str| -> String {
        let line = run["line"].as_str().unwrap();
        let (_, rest) = line
            .split_once(text)
            .unwrap_or_else(|| panic!("no {text:?} in {line}"));
        rest.split([',', ' ']).next().unwrap().to_string()
    };
    let (first, then) = runs.split_at(4);
    let conn = after(&first[0], "Alice's connection is ");
    // Each level of the first starts as new too: no large object of the level before.
    for run in first {
        assert_eq!(run["scenario"], "leaves-state", "{run}");
        assert_eq!(run["observed"], "prevented by consistent-read", "{run}");
    }
    let levels = [
        "read committed",
        "read committed",
        "repeatable read",
        "serializable",
    ];
    for (run, level) in then.iter().zip(levels) {
        assert_eq!(run["scenario"], "as-new", "{run}");
        assert_eq!(run["observed"], "prevented by consistent-read", "{run}");
        assert_eq!(after(run, "Ana's connection is "), conn, "{run}");
        assert!(after(run, " of run ").ends_with("_leaves_state"), "{run}");
        let line = run["line"].as_str().unwrap();
        assert!(
            line.contains(&format!("called anomalies ana, at {level}, ")),
            "{run}"
        );
    }
}
