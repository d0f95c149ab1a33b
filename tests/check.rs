//! `anomalies check` and `anomalies matrix`: expectations as a CI gate, and the grid.

use std::path::{Path, PathBuf};

use anomalies::scenario::{EngineKind, Scenario};

use crate::support::{anomalies, builtin_variants, json_runs, runs_on, stderr, stdout};

/// A copy of the built-in scenario files in a temporary directory.
fn copy_builtins() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    for entry in std::fs::read_dir("scenarios").unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, scenarios.join(path.file_name().unwrap())).unwrap();
    }
    (dir, scenarios)
}

/// Replaces the first `from` in a file.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap()
}

#[test]
fn check_passes_on_every_builtin_on_every_engine() {
    let output = anomalies()
        .args(["check", "--engine", "all"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let runs = 4 * EngineKind::ALL.map(builtin_variants).iter().sum::<usize>();
    let text = stdout(&output);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!("{runs} runs: {runs} as expected, 0 mismatches, 0 without an expectation")
                .as_str()
        )
    );
    // What an engine can't run (a fix SQLite lacks, a scenario that needs a standby) is named,
    // engine by engine, not run and not counted.
    let mut unavailable: Vec<String> = Vec::new();
    for engine in EngineKind::ALL {
        for scenario in Scenario::builtins() {
            let variants =
                std::iter::once(&scenario).chain(scenario.fixes.iter().map(|f| &*f.variant));
            for variant in variants {
                let lacks = !runs_on(&scenario, engine)
                    || variant
                        .applied
                        .as_ref()
                        .is_some_and(|fix| fix.unavailable_on(engine).is_some());
                if lacks {
                    unavailable.push(format!("{} on {engine}", variant.label()));
                }
            }
        }
    }
    assert!(!unavailable.is_empty());
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "not run, the engine lacks what it needs: {}",
                unavailable.join(", ")
            )
            .as_str()
        )
    );
    assert_eq!(lines.next(), None);
}

#[test]
fn an_edited_expectation_fails_with_a_line_that_says_what_happened() {
    let (_dir, scenarios) = copy_builtins();
    let file = scenarios.join("lost-update.toml");
    edit(
        &file,
        "repeatable-read = \"prevented by abort\"",
        "repeatable-read = \"anomaly\"",
    );
    let output = anomalies()
        .args(["check", file.to_str().unwrap(), "--engine", "postgres"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("postgres 15."), "{text}");
    assert!(
        lines[0].ends_with(
            " · lost-update · repeatable read: expected anomaly, got prevented by abort — John's \
             UPDATE failed with 40001 (could not serialize access due to concurrent update); the \
             balance is 150: every committed debit is in it"
        ),
        "{text}"
    );
    let runs = 4 * (1 + Scenario::load("lost-update").unwrap().fixes.len());
    assert_eq!(
        lines[1],
        format!(
            "{runs} runs: {} as expected, 1 mismatch, 0 without an expectation",
            runs - 1
        )
    );
}

#[test]
fn junit_output_is_xml_with_one_failure() {
    use quick_xml::events::Event;
    let (_dir, scenarios) = copy_builtins();
    let file = scenarios.join("write-skew.toml");
    edit(
        &file,
        "serializable = \"prevented by abort\"",
        "serializable = \"anomaly\"",
    );
    let output = anomalies()
        .args(["check", scenarios.to_str().unwrap(), "--engine", "postgres"])
        .args(["--format", "junit"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let xml = stdout(&output);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut suites, mut cases, mut failures, mut skipped) = (0, 0, Vec::new(), 0);
    let mut root = None;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}\n{xml}"))
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                let attribute = |key: &str| {
                    e.try_get_attribute(key).unwrap().map(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .unwrap()
                            .into_owned()
                    })
                };
                match name.as_str() {
                    "testsuites" => {
                        root = Some((attribute("tests"), attribute("failures")));
                    }
                    "testsuite" => suites += 1,
                    "testcase" => cases += 1,
                    "failure" => failures.push(attribute("message").unwrap()),
                    "skipped" => skipped += 1,
                    other => panic!("unexpected element {other}"),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // The multi-master scenarios are not run on PostgreSQL: a skipped case each.
    let not_run: usize = Scenario::builtins()
        .iter()
        .filter(|s| !runs_on(s, EngineKind::Postgres))
        .map(|s| 1 + s.fixes.len())
        .sum();
    let runs = builtin_variants(EngineKind::Postgres) * 4;
    let total = runs + not_run;
    assert_eq!(root, Some((Some(total.to_string()), Some("1".into()))));
    assert_eq!((suites, cases, skipped), (1, total, not_run));
    assert_eq!(failures, ["expected anomaly, got prevented by abort"]);
}

/// A fix the engine cannot run is a skipped test case, with the reason, and counted as one.
#[test]
fn junit_lists_the_fixes_an_engine_cannot_run_as_skipped_with_the_reason() {
    use quick_xml::events::Event;
    let output = anomalies()
        .args(["check", "--engine", "sqlite", "--level", "serializable"])
        .args(["--format", "junit"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let xml = stdout(&output);
    let mut unavailable: Vec<(String, String)> = Scenario::builtins()
        .iter()
        .flat_map(|s| &s.fixes)
        .filter_map(|f| {
            let why = f.info.unavailable_on(EngineKind::Sqlite)?;
            Some((f.variant.label(), why.to_string()))
        })
        .collect();
    for scenario in Scenario::builtins() {
        if runs_on(&scenario, EngineKind::Sqlite) {
            continue;
        }
        let why = format!(
            "it needs {}, which SQLite does not have here",
            scenario.topology.describe()
        );
        let variants = std::iter::once(&scenario).chain(scenario.fixes.iter().map(|f| &*f.variant));
        unavailable.extend(variants.map(|v| (v.label(), why.clone())));
    }
    assert!(!unavailable.is_empty());
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut case, mut skipped, mut root) = (None, Vec::new(), None);
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}\n{xml}"))
        {
            Event::Start(e) | Event::Empty(e) => {
                let attribute = |key: &str| {
                    e.try_get_attribute(key).unwrap().map(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                            .unwrap()
                            .into_owned()
                    })
                };
                match e.name().as_ref() {
                    "testsuites" => root = Some((attribute("tests"), attribute("skipped"))),
                    "testcase" => case = attribute("name"),
                    "skipped" => {
                        skipped.push((case.clone().unwrap(), attribute("message").unwrap()))
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    for (label, why) in &unavailable {
        let message = format!("not available on sqlite {}: {why}", rusqlite::version());
        assert!(
            skipped.contains(&(label.clone(), message.clone())),
            "{label}: {message} not in {skipped:#?}"
        );
    }
    let runs = builtin_variants(EngineKind::Sqlite);
    let total = (runs + unavailable.len()).to_string();
    assert_eq!(root.unwrap().0, Some(total));
}

#[test]
fn update_rewrites_only_what_changed_and_round_trips() {
    let (_dir, scenarios) = copy_builtins();
    let originals: Vec<(PathBuf, String)> = std::fs::read_dir(&scenarios)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| {
            let text = read(&path);
            (path, text)
        })
        .collect();
    let update = || {
        anomalies()
            .args([
                "check",
                scenarios.to_str().unwrap(),
                "--engine",
                "all",
                "--update",
            ])
            .output()
            .unwrap()
    };
    // Correct files: nothing is written.
    let output = update();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    for (path, text) in &originals {
        assert_eq!(&read(path), text, "{} changed", path.display());
    }
    // One wrong value: only it is rewritten, and the file is as it was before the edit.
    let file = scenarios.join("read-skew.toml");
    edit(
        &file,
        "read-committed = \"anomaly\"",
        "read-committed   = \"prevented by blocking\"",
    );
    let output = update();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), format!("updated {}\n", file.display()));
    let expected = originals
        .iter()
        .find(|(p, _)| *p == file)
        .unwrap()
        .1
        .clone();
    assert_eq!(
        read(&file),
        expected.replacen(
            "read-committed = \"anomaly\"",
            "read-committed   = \"anomaly\"",
            1
        )
    );
}

#[test]
fn version_narrowed_expectations_apply_only_to_matching_versions() {
    let (_dir, scenarios) = copy_builtins();
    let file = scenarios.join("write-skew.toml");
    let narrowed = |constraint: &str| {
        let text = read(&file);
        let extra = format!("\n[expect.\"postgres {constraint}\"]\nserializable = \"anomaly\"\n");
        let copy = scenarios.join(format!("narrowed-{}.toml", constraint.len()));
        std::fs::write(&copy, format!("{text}{extra}")).unwrap();
        let output = anomalies()
            .args(["check", copy.to_str().unwrap(), "--engine", "postgres"])
            .args(["--level", "serializable"])
            .output()
            .unwrap();
        (output.status.code(), stdout(&output))
    };
    // A table for versions this server has overrides the plain one ...
    let (code, text) = narrowed(">= 10");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("expected anomaly, got prevented by abort"),
        "{text}"
    );
    // ... and one for versions it has not is ignored.
    let (code, text) = narrowed(">= 9999");
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn update_writes_into_the_narrowed_table_that_applied() {
    let (_dir, scenarios) = copy_builtins();
    let file = scenarios.join("write-skew.toml");
    let text = read(&file);
    std::fs::write(
        &file,
        format!("{text}\n[expect.\"postgres >= 10\"]\nserializable = \"anomaly\"\n"),
    )
    .unwrap();
    let output = anomalies()
        .args([
            "check",
            file.to_str().unwrap(),
            "--engine",
            "postgres",
            "--update",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        read(&file),
        format!("{text}\n[expect.\"postgres >= 10\"]\nserializable = \"prevented by abort\"\n")
    );
}

#[test]
fn matrix_marks_what_the_scenario_does_not_expect() {
    let (_dir, scenarios) = copy_builtins();
    let file = scenarios.join("lost-update.toml");
    edit(
        &file,
        "read-committed = \"anomaly\"",
        "read-committed = \"prevented by blocking\"",
    );
    let output = anomalies()
        .args([
            "matrix",
            file.to_str().unwrap(),
            "--engine",
            "postgres",
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(
            "| lost-update | P4 | **anomaly** | **anomaly** ✗ (expected prevented by blocking) | abort | abort |"
        ),
        "{}",
        stdout(&output)
    );
}

#[test]
fn matrix_on_sqlite() {
    let output = anomalies()
        .args(["matrix", "--engine", "sqlite"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let version = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    insta::assert_snapshot!(text.replace(&version, "<version>"));
}

#[test]
fn check_json_and_markdown() {
    let output = anomalies()
        .args([
            "check",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = json_runs(&stdout(&output));
    let n = builtin_variants(EngineKind::Sqlite);
    assert_eq!(runs.len(), n);
    assert!(runs.iter().all(|r| r["status"] == "as-expected"));
    assert_eq!(runs[3]["observed"], "prevented by abort");

    let output = anomalies()
        .args([
            "check",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
            "--format",
            "markdown",
        ])
        .output()
        .unwrap();
    let text = stdout(&output);
    let count = format!("**{n} runs: {n} as expected, 0 mismatches, 0 without an expectation**");
    assert!(
        text.starts_with(&format!("## anomalies check\n\n{count}\n")),
        "{text}"
    );
    assert!(text.contains("| ✅ | sqlite "), "{text}");
}
