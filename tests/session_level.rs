//! A session that pins its own level, read-only or deferrable, beside sessions at the run's
//! level: what each database really does, and how the header and JSON show it.

use serde_json::{json, Value};

use crate::support::{anomalies, open_tempdir, stderr, stdout};

const DEFERRABLE: &str = "tests/fixtures/read-only-deferrable.toml";

/// `anomalies run TARGET --engine ENGINE --level LEVEL --format FORMAT`'s output.
fn run(target: &str, engine: &str, level: &str, format: &str) -> String {
    let output = anomalies()
        .args(["run", target, "--engine", engine, "--level", level])
        .args(["--format", format])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

fn run_json(target: &str, engine: &str, level: &str) -> Value {
    serde_json::from_str(&run(target, engine, level, "json")).expect("JSON")
}

/// The timeline's events of `step` (`alice.read`) as `event` words.
fn events_of(run: &Value, session: &str, step: &str) -> Vec<Value> {
    run["timeline"]
        .as_array()
        .expect("a timeline")
        .iter()
        .filter(|e| e["session"] == session && e["step"] == step)
        .cloned()
        .collect()
}

fn verdict(run: &Value) -> String {
    match run["prevented_by"].as_str() {
        Some(by) => format!("prevented by {by}"),
        None => run["verdict"].as_str().unwrap_or_default().to_string(),
    }
}

#[test]
fn a_deferrable_report_waits_for_the_serializable_batch_on_postgres() {
    let run = run_json(DEFERRABLE, "postgres", "serializable");
    let read = events_of(&run, "alice", "read");
    assert_eq!(read[0]["event"], "waiting", "{read:?}");
    assert_eq!(read[0]["blocked_by"], json!(["bank"]));
    assert_eq!(read[1]["event"], "resumed");
    assert_eq!(
        (&read[1]["result"]["columns"], &read[1]["result"]["rows"]),
        (&json!(["checking", "savings"]), &json!([[-11, 20]]))
    );
    assert_eq!(verdict(&run), "prevented by blocking");
}

#[test]
fn a_serializable_report_beside_read_committed_writers_sees_the_anomaly() {
    let run = run_json(DEFERRABLE, "postgres", "read-committed");
    assert_eq!(verdict(&run), "anomaly");
    let session = |name: &str, level: &str, pinned: bool, read_only: bool| {
        json!({
            "name": name,
            "level": {"requested": level, "effective": level},
            "pinned": pinned,
            "read_only": read_only,
            "deferrable": read_only,
        })
    };
    assert_eq!(
        run["sessions"],
        json!([
            session("bank", "read-committed", false, false),
            session("john", "read-committed", false, false),
            session("alice", "serializable", true, true),
        ])
    );
    assert!(events_of(&run, "alice", "read")
        .iter()
        .all(|e| e["event"] == "done"));
}

#[test]
fn headers_show_each_pinned_session() {
    let table = run(DEFERRABLE, "sqlite", "read-committed", "table");
    assert!(
        table.contains("\nlevel     read committed → serializable; Alice serializable, read only, deferrable\n"),
        "{table}"
    );
    assert!(
        table.contains(", PRAGMA query_only = 1 for Alice)"),
        "{table}"
    );
    let markdown = run(DEFERRABLE, "sqlite", "read-committed", "markdown");
    assert!(
        markdown.contains(
            "**level** read committed → serializable; Alice serializable, read only, deferrable ·"
        ),
        "{markdown}"
    );
    let svg = run(DEFERRABLE, "sqlite", "read-committed", "svg");
    // The SVG wraps the line: its text elements read in order.
    let words: Vec<&str> = svg
        .lines()
        .filter_map(|l| {
            l.strip_prefix("<text ")?
                .split_once('>')?
                .1
                .strip_suffix("</text>")
        })
        .collect();
    assert!(
        words.join(" ").contains(
            " · read committed → serializable; Alice serializable, read only, deferrable"
        ),
        "{svg}"
    );
    let mermaid = run(DEFERRABLE, "sqlite", "read-committed", "mermaid");
    assert!(
        mermaid.contains(
            "at read committed → serializable#59; Alice serializable, read only, deferrable ("
        ),
        "{mermaid}"
    );
}

#[test]
fn a_run_where_nobody_pins_has_no_sessions_in_its_json() {
    let run = run_json("tests/fixtures/per-engine.toml", "sqlite", "serializable");
    assert_eq!(run.get("sessions"), None);
}

#[test]
fn a_read_only_session_cannot_write_on_either_engine() {
    let target = "tests/fixtures/read-only-write.toml";
    for (engine, code, message) in [
        (
            "postgres",
            "25006",
            "cannot execute UPDATE in a read-only transaction",
        ),
        (
            "sqlite",
            "SQLITE_READONLY",
            "attempt to write a readonly database",
        ),
    ] {
        // Not the database protecting isolation: the scenario told a read-only session to
        // write, so the run is an error (exit 2), not "prevented".
        let output = anomalies()
            .args([
                "run",
                target,
                "--engine",
                engine,
                "--level",
                "read-committed",
            ])
            .args(["--format", "json"])
            .output()
            .expect("the binary runs");
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let run: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
        assert_eq!(run["verdict"], "error", "{engine}");
        assert_eq!(run["cause"]["error_kind"], "read-only", "{engine}");
        let write = &events_of(&run, "alice", "write")[0]["result"];
        assert_eq!(write["code"], code, "{engine}: {write}");
        assert_eq!(write["message"], message, "{engine}");
        assert_eq!(
            run["final_state"],
            json!({"columns": ["balance"], "rows": [[100]]}),
            "{engine}"
        );
    }
}

/// The built-in dirty read with John's check pinned to read uncommitted, run at serializable.
fn dirty_reader(engine: &str) -> Value {
    let dir = open_tempdir();
    let path = dir.path().join("dirty-reader.toml");
    let text = include_str!("../scenarios/dirty-read.toml").replacen(
        "name = \"john\"\n",
        "name = \"john\"\nlevel = \"read-uncommitted\"\n",
        1,
    );
    std::fs::write(&path, text).expect("write the scenario");
    run_json(&path.to_string_lossy(), engine, "serializable")
}

#[test]
fn a_reader_pinned_to_read_uncommitted_reads_dirty_on_sqlite_only() {
    let sqlite = dirty_reader("sqlite");
    assert_eq!(verdict(&sqlite), "anomaly", "{}", sqlite["summary"]);
    assert_eq!(
        sqlite["sessions"][1]["level"],
        json!({"requested": "read-uncommitted", "effective": "read-uncommitted"})
    );
    assert_eq!(
        sqlite["engine"]["detail"],
        "journal wal, shared cache, PRAGMA read_uncommitted = 1 for John"
    );
    // PostgreSQL has no dirty reads: the pinned level runs as read committed.
    let postgres = dirty_reader("postgres");
    assert_eq!(verdict(&postgres), "prevented by consistent-read");
    assert_eq!(
        postgres["sessions"][1]["level"],
        json!({"requested": "read-uncommitted", "effective": "read-committed"})
    );
}
