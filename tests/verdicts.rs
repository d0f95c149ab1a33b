//! A verdict is earned: a broken scenario is an *error* (exit 2, no verdict), never
//! "prevented"; a constraint is a mechanism of its own; `check` never passes or records a broken
//! run. Each broken scenario is `tests/fixtures/booking.toml` broken one way, on both engines.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{anomalies, stderr, stdout};

const ENGINES: [&str; 2] = ["postgres", "sqlite"];

/// `booking.toml` with `from` replaced by `to` in John's session (or anywhere, for `[outcome]`),
/// written into `dir`.
fn broken(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string("tests/fixtures/booking.toml").unwrap();
    let john = text.find("name = \"john\"").unwrap();
    let (before, after) = if from.starts_with("anomaly_if") {
        text.split_at(0)
    } else {
        text.split_at(john)
    };
    assert!(after.contains(from), "booking.toml has no `{from}`");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{before}{}", after.replacen(from, to, 1))).unwrap();
    path
}

fn run_json(file: &Path, engine: &str, level: &str) -> (i32, Value) {
    let output = anomalies()
        .arg("run")
        .arg(file)
        .args(["--engine", engine, "--level", level, "--format", "json"])
        .output()
        .unwrap();
    let code = output.status.code().unwrap();
    let json = serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    (code, json)
}

#[test]
fn a_typo_in_a_hole_is_an_error_naming_the_column_it_meant() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(dir.path(), "hole", "${look.free}", "${look.fre}");
    for engine in ENGINES {
        let (code, run) = run_json(&file, engine, "read-committed");
        assert_eq!(code, 2, "{engine}: {run}");
        assert_eq!(run["verdict"], "error", "{engine}");
        assert_eq!(run["prevented_by"], Value::Null);
        assert_eq!(run["cause"]["kind"], "reference");
        // Line 49 is John's UPDATE; column 32 is its `${`.
        let message = format!(
            "{}:49:32: no column fre in john.look (columns: id, free); did you mean free?",
            file.display()
        );
        assert_eq!(run["cause"]["message"], message.as_str(), "{engine}");
        // The step was never sent, and the timeline says why.
        let not_sent: Vec<&Value> = run["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "not-sent")
            .collect();
        assert_eq!(not_sent.len(), 1, "{engine}: {run}");
        assert_eq!(not_sent[0]["step"], "book");
    }
    // The table prints the timeline, then the error, and exits 2.
    let output = anomalies()
        .arg("run")
        .arg(&file)
        .args(["--engine", "sqlite"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(text.contains("✗ not sent"), "{text}");
    assert!(
        text.contains("verdict   error — ") && text.contains("the scenario is broken"),
        "{text}"
    );
    let verdict = text.lines().find(|l| l.starts_with("verdict")).unwrap();
    assert!(!verdict.contains("prevented"), "{text}");
}

#[test]
fn a_typo_in_the_condition_is_an_error_not_an_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(
        dir.path(),
        "final",
        "anomaly_if = \"final.n > 1\"",
        "anomaly_if = \"final.nn > 1\"",
    );
    for engine in ENGINES {
        let (code, run) = run_json(&file, engine, "read-committed");
        assert_eq!(code, 2, "{engine}: {run}");
        assert_eq!(run["verdict"], "error");
        let message = run["cause"]["message"].as_str().unwrap();
        assert!(
            message.ends_with("no column nn in the final query (columns: n); did you mean n?"),
            "{engine}: {message}"
        );
        assert!(
            message.starts_with(&format!("{}:", file.display())),
            "{message}"
        );
    }
}

#[test]
fn an_unknown_column_in_a_step_is_an_error_with_the_databases_words() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(
        dir.path(),
        "column",
        "SELECT id, free FROM",
        "SELECT id, totl FROM",
    );
    for (engine, code, words) in [
        ("postgres", "42703", "column \"totl\" does not exist"),
        ("sqlite", "SQLITE_ERROR", "no such column: totl"),
    ] {
        let (exit, run) = run_json(&file, engine, "serializable");
        assert_eq!(exit, 2, "{engine}: {run}");
        assert_eq!(run["verdict"], "error");
        assert_eq!(run["cause"]["kind"], "failed");
        assert_eq!(run["cause"]["step"], "john.look");
        assert_eq!(run["cause"]["code"], code, "{engine}");
        assert_eq!(run["cause"]["error_kind"], "undefined-object");
        assert!(
            run["cause"]["message"].as_str().unwrap().contains(words),
            "{engine}: {run}"
        );
        assert_eq!(
            run["summary"].as_str().unwrap(),
            format!(
                "error — john.look failed with {code} ({}): the scenario is broken, so there is \
                 no verdict",
                run["cause"]["message"].as_str().unwrap()
            )
        );
    }
}

#[test]
fn check_fails_on_a_broken_run_and_update_never_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(dir.path(), "hole", "${look.free}", "${look.fre}");
    let before = std::fs::read_to_string(&file).unwrap();
    let output = anomalies()
        .arg("check")
        .arg(&file)
        .args(["--engine", "sqlite", "--level", "read-committed"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("expected prevented by abort, got error — "),
        "{text}"
    );
    assert!(
        text.contains("1 runs: 0 as expected, 0 mismatches, 0 without an expectation, 1 error"),
        "{text}"
    );

    let output = anomalies()
        .arg("check")
        .arg(&file)
        .args(["--engine", "sqlite", "--update"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("not written: "),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // JUnit names it an error, apart from failures.
    let output = anomalies()
        .arg("check")
        .arg(&file)
        .args(["--engine", "sqlite", "--level", "read-committed"])
        .args(["--format", "junit"])
        .output()
        .unwrap();
    let xml = stdout(&output);
    assert!(xml.contains("failures=\"0\" errors=\"1\""), "{xml}");
    assert!(
        xml.contains("<error message=\"the scenario is broken\">"),
        "{xml}"
    );
}

#[test]
fn strict_check_fails_a_run_without_an_expectation() {
    let file = "tests/fixtures/booking.toml";
    let check = |level: &str, strict: bool| {
        let mut command = anomalies();
        command
            .args(["check", file, "--engine", "sqlite", "--level", level])
            .args(strict.then_some("--strict"));
        command.output().unwrap()
    };
    // booking.toml expects nothing of SQLite at serializable.
    assert_eq!(check("serializable", false).status.code(), Some(0));
    let output = check("serializable", true);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("no expectation in the file"),
        "{}",
        stdout(&output)
    );
    assert_eq!(check("read-committed", true).status.code(), Some(0));
}

#[test]
fn a_check_constraint_prevents_by_constraint_on_both_engines() {
    for engine in ENGINES {
        let output = anomalies()
            .args(["run", "lost-update", "--fix", "check-constraint"])
            .args(["--engine", engine, "--level", "read-committed"])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(run["verdict"], "prevented", "{engine}");
        assert_eq!(run["prevented_by"], "constraint", "{engine}");
        let summary = run["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(
                "prevented — John's UPDATE broke the constraint balance_floor and was refused"
            ),
            "{engine}: {summary}"
        );
        assert!(summary.ends_with("the balance is 100: every committed debit is in it"));
    }
}

/// `booking.toml` with `from` replaced by the bytes `to`, anywhere in the file.
fn damaged(dir: &Path, name: &str, from: &str, to: &[u8]) -> PathBuf {
    let text = std::fs::read_to_string("tests/fixtures/booking.toml").unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("booking.toml has no `{from}`"));
    let mut bytes = text.as_bytes()[..at].to_vec();
    bytes.extend_from_slice(to);
    bytes.extend_from_slice(&text.as_bytes()[at + from.len()..]);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn every_load_and_setup_error_is_one_line_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A TOML error whose parser adds an "expected …" line.
        (
            damaged(dir.path(), "header", "[[interleaving]]", b"[[interleaving]"),
            "sqlite",
            ":60:15: invalid table header; expected `.`, `]]`",
        ),
        // Invalid UTF-8, placed at its first bad byte.
        (
            damaged(dir.path(), "utf8", "Two people", b"Two \xff people"),
            "sqlite",
            ":4:14: not valid UTF-8 (byte 0xff): a scenario file is UTF-8 text",
        ),
        // The setup SQL, on each engine: placed at the setup string.
        (
            damaged(
                dir.path(),
                "setup-pg",
                "INTEGER NOT NULL);\nCREATE",
                b"INTEGER NOT NULL;\nCREATE",
            ),
            "postgres",
            ":9:1: the setup SQL failed on PostgreSQL: syntax error at or near \";\" (42601)",
        ),
        (
            damaged(
                dir.path(),
                "setup-sqlite",
                "INTEGER NOT NULL);\nCREATE",
                b"INTEGER NOT NULL;\nCREATE",
            ),
            "sqlite",
            ":9:1: the setup SQL failed on SQLite: near \";\": syntax error",
        ),
        // The final query, on each engine: placed at the query.
        (
            damaged(
                dir.path(),
                "final-pg",
                "AS n FROM bookings",
                b"AS n FROM bookingz",
            ),
            "postgres",
            ":68:10: the final check query failed: relation \"bookingz\" does not exist",
        ),
        (
            damaged(
                dir.path(),
                "final-sqlite",
                "AS n FROM bookings",
                b"AS n FROM bookingz",
            ),
            "sqlite",
            ":68:10: the final check query failed: no such table: bookingz",
        ),
    ];
    for (file, engine, expected) in cases {
        let output = anomalies()
            .arg("run")
            .arg(&file)
            .args(["--engine", engine])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert_eq!(
            stderr(&output),
            format!("error: {}{expected}\n", file.display())
        );
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn a_syntax_error_is_an_error_of_kind_syntax_on_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(
        dir.path(),
        "syntax",
        "FROM seats WHERE id = 1",
        "FORM seats WHERE id = 1",
    );
    for (engine, code) in [("postgres", "42601"), ("sqlite", "SQLITE_ERROR")] {
        let (exit, run) = run_json(&file, engine, "read-committed");
        assert_eq!(exit, 2, "{engine}: {run}");
        assert_eq!(run["verdict"], "error");
        assert_eq!(run["cause"]["step"], "john.look");
        assert_eq!(run["cause"]["code"], code, "{engine}");
        assert_eq!(run["cause"]["error_kind"], "syntax", "{engine}");
    }
}

#[test]
fn a_step_timeout_on_waiting_steps_is_an_error_not_an_abort() {
    // Alice and John wait for each other; PostgreSQL would break the cycle after its
    // deadlock_timeout (50 ms here), but the tool's 1 ms step timeout ends it first.
    let output = anomalies()
        .args([
            "run",
            "tests/fixtures/deadlock.toml",
            "--engine",
            "postgres",
        ])
        .args(["--step-timeout", "1ms", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(run["verdict"], "error", "{run}");
    assert_eq!(run["prevented_by"], Value::Null);
    assert_eq!(run["cause"]["kind"], "timed-out", "{run}");
    let events: Vec<&str> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"timed-out"), "{events:?}");
    assert!(!events.contains(&"stuck"), "{events:?}");
}

#[test]
fn explore_counts_broken_orders_as_errors_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(dir.path(), "hole", "${look.free}", "${look.fre}");
    let output = anomalies()
        .arg("explore")
        .arg(&file)
        .args([
            "--engine",
            "sqlite",
            "--level",
            "serializable",
            "--limit",
            "20",
        ])
        .args(["--color", "never"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stdout(&output);
    let header = text.lines().find(|l| l.contains("anomaly")).unwrap();
    assert!(header.contains("error"), "{text}");
}

#[test]
fn a_broken_run_as_the_table_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken(dir.path(), "hole", "${look.free}", "${look.fre}");
    assert!(file.ends_with("hole.toml"));
    // Run from the file's folder, so the places it names are the same on every machine.
    let output = anomalies()
        .current_dir(dir.path())
        .args([
            "run",
            "hole.toml",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    insta::assert_snapshot!(text.replace(rusqlite::version(), "<version>"));
}
