//! The command-line contract: exit codes, error messages, formats, and nothing left behind.

use std::time::{Duration, Instant};

use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr, stdout};

#[test]
fn list_names_every_builtin() {
    let output = anomalies().arg("list").output().unwrap();
    assert!(output.status.success());
    let text = stdout(&output);
    for id in [
        "dirty-read",
        "non-repeatable-read",
        "read-skew",
        "lost-update",
        "write-skew",
    ] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(text.contains("G2-item"), "{text}");
    // Each scenario's fixes are named under it.
    for scenario in anomalies::scenario::Scenario::builtins() {
        assert!(text.contains(&scenario.id), "{} missing", scenario.id);
        if !scenario.fixes.is_empty() {
            let ids: Vec<&str> = scenario.fixes.iter().map(|f| f.info.id.as_str()).collect();
            assert!(
                text.contains(&format!("fixes: {}", ids.join(", "))),
                "{} fixes missing from:\n{text}",
                scenario.id
            );
        }
    }
}

#[test]
fn explain_write_skew() {
    let output = anomalies()
        .args(["explain", "write-skew"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output));
}

/// Each fix's behaviour level by level, said from its expectations, above its free text.
#[test]
fn explain_lost_update_says_each_fix_level_by_level() {
    let output = anomalies()
        .args(["explain", "lost-update"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains(
        "    postgres: at read uncommitted and read committed: prevented by blocking; at repeatable read and\n    serializable: prevented by abort.\n"
    ));
    insta::assert_snapshot!(text);
}

#[test]
fn explain_works_for_every_builtin_and_agrees_with_the_expectations() {
    use anomalies::level::Level;
    use anomalies::scenario::EngineKind;
    for scenario in anomalies::scenario::Scenario::builtins() {
        let text = anomalies()
            .args(["explain", &scenario.id])
            .output()
            .unwrap();
        assert!(text.status.success(), "{}", stderr(&text));
        // Wrapped for the terminal: compare with the white space collapsed.
        let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = flat(&stdout(&text));
        assert!(
            text.contains(&flat(&scenario.plain)),
            "{}: no plain words",
            scenario.id
        );
        for name in &scenario.formal {
            assert!(text.contains(&flat(name)), "{}: no {name}", scenario.id);
        }
        for fix in &scenario.fixes {
            let info = &fix.info;
            assert!(
                text.contains(&flat(&info.title)),
                "{} {}",
                scenario.id,
                info.id
            );
            assert!(
                text.contains(&flat(&info.prefer)),
                "{} {}",
                scenario.id,
                info.id
            );
        }
        let output = anomalies()
            .args(["explain", &scenario.id, "--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        for engine in [EngineKind::Postgres, EngineKind::Sqlite] {
            if !crate::support::runs_on(&scenario, engine) {
                continue;
            }
            for level in Level::ALL {
                let expected = scenario.expected(engine, level).unwrap().to_string();
                assert_eq!(
                    json["expected"][engine.to_string()][level.id()],
                    expected.as_str()
                );
            }
        }
        assert_eq!(
            json["fixes"].as_array().unwrap().len(),
            scenario.fixes.len()
        );
    }
}

#[test]
fn unknown_fix_suggests_the_closest_and_lists_them() {
    let output = anomalies()
        .args([
            "run",
            "lost-update",
            "--fix",
            "for-updat",
            "--engine",
            "sqlite",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: scenario lost-update has no fix `for-updat` (did you mean `for-update`?); it \
         offers: atomic-update, check-constraint, for-update, optimistic, compare-and-swap, \
         serializable-retry, procedure\n"
    );
    let output = anomalies()
        .args(["run", "phantom", "--fix", "for-update"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stderr(&output), "error: scenario phantom offers no fixes\n");
}

#[test]
fn a_fix_runs_at_its_own_level_unless_told_otherwise() {
    let level = |extra: &[&str]| {
        let output = anomalies()
            .args(["run", "write-skew", "--fix", "serializable-retry"])
            .args(["--engine", "sqlite", "--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let run: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
        run["level"]["requested"].as_str().unwrap().to_string()
    };
    assert_eq!(level(&[]), "serializable");
    assert_eq!(level(&["--level", "read-committed"]), "read-committed");
}

#[test]
fn unknown_scenario_suggests_the_closest_id() {
    let output = anomalies().args(["run", "writeskew"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: no scenario named `writeskew`; did you mean `write-skew`?; `anomalies list` shows them all\n"
    );
}

#[test]
fn malformed_file_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    let text = std::fs::read_to_string("scenarios/write-skew.toml")
        .unwrap()
        .replacen(
            "\"alice.check\", \"john.check\"",
            "\"alice.check\", \"jon.check\"",
            1,
        );
    std::fs::write(&path, text).unwrap();
    let output = anomalies()
        .args(["run", path.to_str().unwrap(), "--engine", "sqlite"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    let expected = format!(
        "error: {}:72:18: no session `jon`; did you mean `john`?\n",
        path.display()
    );
    assert_eq!(message, expected);
}

#[test]
fn a_condition_nested_too_deep_is_one_error_line_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.toml");
    let deep = format!(
        "{}final.balance != 30{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let text = std::fs::read_to_string("scenarios/lost-update.toml")
        .unwrap()
        .replacen(
            "anomaly_if = \"committed(alice) and committed(john) and final.balance != 30\"",
            &format!("anomaly_if = \"{deep}\""),
            1,
        );
    assert!(text.contains(&deep));
    std::fs::write(&path, text).unwrap();
    let output = anomalies()
        .args(["run", path.to_str().unwrap(), "--engine", "sqlite"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // The 65th parenthesis is too deep: column 14 (the quote) + 1 + 64.
    let expected = format!(
        "error: {}:78:79: the condition nests deeper than 64 levels (parentheses, calls, `not`, \
         `-` and chained operators each count)\n",
        path.display()
    );
    assert_eq!(stderr(&output), expected);
    assert!(stdout(&output).is_empty());
}

#[test]
fn unreachable_server_fails_fast_without_printing_the_password() {
    let started = Instant::now();
    let output = anomalies()
        .args(["run", "write-skew", "--url"])
        .arg("postgresql://alice:s3cret-pw@127.0.0.1:1/bank")
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        message.starts_with("error: cannot connect to PostgreSQL at 127.0.0.1:1/bank: "),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn bad_level_is_a_usage_error() {
    let output = anomalies()
        .args(["run", "write-skew", "--level", "snapshot"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("invalid value 'snapshot'"));
}

#[test]
fn sqlite_write_skew_table() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let version = rusqlite_version(&text);
    insta::assert_snapshot!(text.replace(&version, "<version>"));
}

/// The SQLite version in the header, so snapshots survive an upgrade.
fn rusqlite_version(text: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix("engine    sqlite "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("no version")
        .to_string()
}

#[test]
fn postgres_write_skew_at_serializable_names_the_abort() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--engine",
            "postgres",
            "--level",
            "serializable",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("verdict prevented — John's COMMIT failed with 40001 (could not serialize access due to read/write dependencies among transactions)"),
        "{text}"
    );
    assert!(text.contains("level     serializable\n"), "{text}");
}

#[test]
fn postgres_read_uncommitted_shows_the_mapping() {
    let output = anomalies()
        .args([
            "run",
            "dirty-read",
            "--engine",
            "postgres",
            "--level",
            "read-uncommitted",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("level     read uncommitted → read committed\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_throwaway_run_leaves_no_server_and_no_temporary_files() {
    let cache = open_tempdir();
    let tmp = open_tempdir();
    for engine in ["postgres", "sqlite"] {
        let output = anomalies()
            .args(["run", "lost-update", "--level", "all", "--engine", engine])
            .env("ANOMALIES_CACHE_DIR", cache.path())
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{engine}: {}", stderr(&output));
    }
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A directory named with `--pg-bindir` is what the user meant to run on: without a server in
/// it, `auto` does not fall back to SQLite (only a search that found nothing does, which
/// `only_a_search_that_found_nothing_falls_back_to_sqlite` checks, since this machine has a
/// server to find).
#[test]
fn an_explicit_pg_bindir_without_a_server_is_an_error_not_a_fallback() {
    let output = anomalies()
        .args(["run", "write-skew", "--level", "serializable"])
        .args(["--pg-bindir", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    assert_eq!(
        stderr(&output),
        "error: no PostgreSQL server binaries in /nonexistent: install the PostgreSQL server \
         (apt-get install postgresql), point --pg-bindir at its binaries, or pass --url\n"
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn postgres_asked_for_without_server_binaries_is_an_error() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--engine",
            "postgres",
            "--pg-bindir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: no PostgreSQL server binaries in /nonexistent: install the PostgreSQL server \
         (apt-get install postgresql), point --pg-bindir at its binaries, or pass --url\n"
    );
}

#[test]
fn color_only_when_asked_or_on_a_terminal() {
    let run = |color: &str, no_color: bool| {
        let mut command = anomalies();
        if !no_color {
            command.env_remove("NO_COLOR");
        }
        let output = command
            .args(["run", "lost-update", "--engine", "sqlite", "--color", color])
            .output()
            .unwrap();
        assert!(output.status.success());
        stdout(&output).contains('\u{1b}')
    };
    assert!(run("always", true), "--color always wins over NO_COLOR");
    assert!(!run("never", false));
    assert!(!run("auto", false), "stdout is a pipe here, not a terminal");
}

#[test]
fn unknown_interleaving_lists_the_ones_there_are() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--engine",
            "sqlite",
            "--interleaving",
            "both-check",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: scenario write-skew has no interleaving `both-check` (did you mean \
         `both-check-first`?); it has: both-check-first\n"
    );
}

#[test]
fn missing_file_is_a_plain_error() {
    let output = anomalies()
        .args(["run", "nowhere/mine.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: cannot read nowhere/mine.toml: No such file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn sqlite_lost_update_json() {
    let output = anomalies()
        .args([
            "run",
            "lost-update",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    json["engine"]["version"] = "<version>".into();
    insta::assert_json_snapshot!(json);
}

#[test]
fn step_mode_without_a_terminal_says_so_instead_of_hanging() {
    let output = anomalies()
        .args(["run", "write-skew", "--engine", "sqlite", "--step"])
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: --step waits for Enter, but standard input is not a terminal; pass --pace 800ms \
         to advance by itself\n"
    );
}

/// `rc-statement-restart` was renamed `rc-update-recheck` (PostgreSQL re-checks the locked row;
/// it does not restart the statement). Users' CI files name the old id, so it still works
/// everywhere a built-in is named, while `list` shows only the new one.
#[test]
fn the_old_id_rc_statement_restart_still_works() {
    let list = stdout(&anomalies().arg("list").output().unwrap());
    assert!(list.contains("rc-update-recheck"), "{list}");
    assert!(!list.contains("rc-statement-restart"), "{list}");
    let commands: [&[&str]; 3] = [
        &["explain", "rc-statement-restart"],
        &[
            "run",
            "rc-statement-restart",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ],
        &[
            "check",
            "rc-statement-restart",
            "--engine",
            "sqlite",
            "--format",
            "json",
        ],
    ];
    for args in commands {
        let output = anomalies().args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).contains("rc-update-recheck"), "{args:?}");
    }
}
