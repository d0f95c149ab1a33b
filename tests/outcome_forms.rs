//! The outcome language end to end, on real PostgreSQL and SQLite: whole results, rows,
//! counts, affected rows, how steps ended, null, named final queries, committed() across
//! transactions and retries, and references a run cannot fill.

use anomalies::level::Level;
use serde_json::Value;

use crate::support::{anomalies, json_runs, records, stderr, stdout};

const ENGINES: [&str; 2] = ["postgres", "sqlite"];

/// `anomalies run FILE --level all --format json` on `engine`, and any extra arguments.
fn runs(path: &str, engine: &str, extra: &[&str]) -> Vec<Value> {
    let output = anomalies()
        .args(["run", path, "--level", "all", "--format", "json"])
        .args(["--engine", engine])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{engine}: {}", stderr(&output));
    json_runs(&stdout(&output))
}

/// A copy of `source` with each `(from, to)` replaced once, in a temporary directory.
fn edited(source: &str, edits: &[(&str, &str)]) -> (tempfile::TempDir, String) {
    let mut text = std::fs::read_to_string(source).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{source} has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    let dir = crate::support::open_tempdir();
    let path = dir.path().join("edited.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn every_form_holds_on_both_engines_at_every_level() {
    // The condition is a conjunction of every form: it holds only if each of them does.
    let witness = "read (1, 100), (2, 200); 0 overdrawn; owner NULL; changed 2; john \
                   constraint; skipped (not read), (not read), (not read); end (1, 90), \
                   (2, 190), sum 280";
    for engine in ENGINES {
        let runs = runs("tests/fixtures/outcome-forms.toml", engine, &[]);
        assert_eq!(runs.len(), Level::ALL.len());
        for run in runs {
            let level = &run["level"]["requested"];
            assert_eq!(run["verdict"], "anomaly", "{engine} {level}: {run:#}");
            assert_eq!(run["witness"], witness, "{engine} {level}");
            assert_eq!(records(&run["final_state"]["balances"])[1]["balance"], 190);
            assert_eq!(records(&run["final_state"]["total"])[0]["sum"], 280);
        }
    }
}

#[test]
fn a_false_form_makes_no_anomaly_and_an_unread_one_is_unknown() {
    let cases = [
        (
            "alice.read = rows((2, 200), (1, 100))",
            "alice.read = rows((2, 200))",
        ),
        (
            "alice.read = rows((2, 200), (1, 100))",
            "alice.read = rows((2, 200), (1, 100), (1, 100))",
        ),
        ("count(alice.empty) = 0", "count(alice.empty) = 1"),
        ("affected(alice.write) = 2", "affected(alice.write) = 1"),
        (
            "error(john.open) = 'constraint'",
            "error(john.open) = 'deadlock'",
        ),
        ("alice.owner.owner is null", "alice.owner.owner is not null"),
        ("final.total.sum = 280", "final.total.sum = 290"),
        ("final.total.rich = true", "final.total.rich = false"),
        ("not committed(john)", "committed(john)"),
        // Unknown: John's skipped step read nothing, so neither this nor its negation holds.
        ("skipped(john.look)", "john.look.one is null"),
        ("not succeeded(john.look)", "not (john.look.one is null)"),
        ("count(alice.empty) = 0", "count(john.look) >= 0"),
    ];
    for (from, to) in cases {
        let (_dir, path) = edited("tests/fixtures/outcome-forms.toml", &[(from, to)]);
        for engine in ENGINES {
            let output = anomalies()
                .args(["run", &path, "--engine", engine, "--format", "json"])
                .output()
                .unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
            assert_eq!(run["verdict"], "prevented", "{engine}: `{to}`: {run:#}");
        }
    }
}

#[test]
fn whole_results_tell_the_levels_apart_as_hermitage_does() {
    // Hermitage's PMP: PostgreSQL shows it at read committed, not at repeatable read; SQLite
    // (WAL) only when read uncommitted shares the writer's cache.
    for engine in ENGINES {
        for run in runs("tests/fixtures/outcome-pmp.toml", engine, &[]) {
            let level = run["level"]["requested"].as_str().unwrap().to_string();
            assert_eq!(
                run["matches_expectation"], true,
                "{engine} {level}: {run:#}"
            );
            let witness = run["witness"].as_str().unwrap();
            if run["verdict"] == "anomaly" {
                assert!(
                    witness.contains("found no rows, her second (3, 30)"),
                    "{witness}"
                );
            } else {
                assert_eq!(run["prevented_by"], "consistent-read", "{engine} {level}");
                assert!(witness.contains("no rows, then no rows; John inserted 1 row"));
            }
        }
    }
    let verdicts = |engine| -> Vec<String> {
        runs("tests/fixtures/outcome-pmp.toml", engine, &[])
            .iter()
            .map(|run| run["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        verdicts("postgres"),
        ["anomaly", "anomaly", "prevented", "prevented"]
    );
}

#[test]
fn a_retried_transaction_that_commits_counts_as_committed() {
    // The witness shows committed(john), error(john.write) and affected(john.write).
    let serializable = |engine: &str, fix: &[&str]| -> String {
        let output = anomalies()
            .args([
                "run",
                "tests/fixtures/outcome-retry.toml",
                "--format",
                "json",
            ])
            .args(["--engine", engine, "--level", "serializable"])
            .args(fix)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
        run["witness"].as_str().unwrap().to_string()
    };
    // Without retries John's write fails and his failure stands.
    assert_eq!(
        serializable("postgres", &[]),
        "john committed: false; write error: serialization-failure; write changed: (not read)"
    );
    assert_eq!(
        serializable("sqlite", &[]),
        "john committed: false; write error: busy; write changed: (not read)"
    );
    // With them, his latest attempt's write succeeded and his transaction committed.
    for engine in ENGINES {
        assert_eq!(
            serializable(engine, &["--fix", "serializable-retry"]),
            "john committed: true; write error: NULL; write changed: 1",
            "{engine}"
        );
    }
}

#[test]
fn a_form_the_run_cannot_fill_is_an_error_naming_where() {
    let cases = [
        (
            "count(alice.read) = 2",
            "count(alice.write) = 2",
            "alice.write",
            "`alice.write`: alice.write returned no rows (it is a command; it changed 2 row(s)); \
             affected(alice.write) counts the rows it changed",
        ),
        (
            "affected(alice.write) = 2",
            "affected(alice.read) = 2",
            "alice.read",
            "affected(alice.read): alice.read is a query (it returned 2 row(s)); \
             count(alice.read) counts them",
        ),
        (
            "alice.read = rows((2, 200), (1, 100))",
            "alice.read = rows(2, 1)",
            "alice.read = rows(2, 1)",
            "alice.read has 2 column(s) (id, balance) but rows((2), (1)) has 1 value(s) a row: \
             rows compare only with rows of as many values",
        ),
        (
            "final.total.n = 2",
            "final.total.m = 2",
            "final.total.m",
            "`final.total.m`: no column m in final.total (columns: sum, n, rich)",
        ),
    ];
    for (from, to, part, message) in cases {
        let (_dir, path) = edited("tests/fixtures/outcome-forms.toml", &[(from, to)]);
        // The judge names where the part that cannot be right is written.
        let text = std::fs::read_to_string(&path).unwrap();
        let (line, column) = text
            .lines()
            .enumerate()
            .find_map(|(n, l)| l.find(to).map(|c| (n + 1, c + to.find(part).unwrap() + 1)))
            .unwrap();
        for engine in ENGINES {
            let output = anomalies()
                .args(["run", &path, "--engine", engine, "--format", "json"])
                .output()
                .unwrap();
            let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
            assert_eq!(run["verdict"], "error", "{engine}: `{to}`: {run:#}");
            assert_eq!(
                run["cause"]["message"],
                format!("{path}:{line}:{column}: {message}"),
                "{engine}"
            );
        }
    }
}
