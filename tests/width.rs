//! Tables fit the width they are given (`--width`, else COLUMNS when piped, else 100): columns
//! shrink and wrap, nothing is cut, and three sessions at 80 columns get one event per row.

use anomalies::scenario::EngineKind;

use crate::support::{anomalies, stderr, stdout};

/// `run SCENARIO --engine sqlite` at a width, with the SQLite version taken out.
fn table(scenario: &str, width: Option<&str>, columns: Option<&str>) -> String {
    table_on("sqlite", scenario, width, columns)
}

/// `run SCENARIO --engine ENGINE` at a width, with the SQLite version taken out.
fn table_on(engine: &str, scenario: &str, width: Option<&str>, columns: Option<&str>) -> String {
    let mut command = anomalies();
    command.args([
        "run",
        scenario,
        "--engine",
        engine,
        "--level",
        "serializable",
    ]);
    if let Some(width) = width {
        command.args(["--width", width]);
    }
    match columns {
        Some(columns) => command.env("COLUMNS", columns),
        None => command.env_remove("COLUMNS"),
    };
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("engine    sqlite "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("no version")
        .to_string();
    text.replace(&version, "<version>")
}

fn widest(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

#[test]
fn write_skew_at_80_columns() {
    let text = table("write-skew", Some("80"), None);
    assert!(widest(&text) <= 80, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn write_skew_at_100_columns() {
    let text = table("write-skew", Some("100"), None);
    assert!(widest(&text) <= 100, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn write_skew_at_140_columns() {
    let text = table("write-skew", Some("140"), None);
    assert!(widest(&text) <= 140, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn three_sessions_at_80_columns_are_one_event_per_row() {
    let text = table("read-only-anomaly", Some("80"), None);
    assert!(widest(&text) <= 80, "{text}");
    assert!(text.contains("┆ session ┆ event"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn piped_output_takes_columns_then_100_and_width_overrides_both() {
    let of = |width, columns| widest(&table("lost-update", width, columns));
    let default = of(None, None);
    assert!((95..=100).contains(&default), "{default}");
    let columns = of(None, Some("130"));
    assert!((125..=130).contains(&columns), "{columns}");
    let width = of(Some("90"), Some("130"));
    assert!((85..=90).contains(&width), "{width}");
}

/// Every built-in scenario at 80 columns: no line is longer, no text is cut short, and every
/// word of every step's SQL and narration is there.
#[test]
fn every_builtin_fits_80_columns_and_keeps_every_word() {
    for scenario in anomalies::scenario::Scenario::builtins() {
        // A scenario of several nodes runs on PostgreSQL's primary and standby.
        let engine = match (
            crate::support::runs_on(&scenario, EngineKind::Sqlite),
            scenario.topology,
        ) {
            (true, _) => "sqlite",
            (false, anomalies::scenario::Topology::MultiMaster(_)) => "galera",
            (false, _) => "postgres",
        };
        let text = table_on(engine, &scenario.id, Some("80"), None);
        assert!(widest(&text) <= 80, "{}:\n{text}", scenario.id);
        assert!(!text.contains('…'), "{} cut short:\n{text}", scenario.id);
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || "│┆".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        for session in &scenario.sessions {
            for step in &session.steps {
                for word in step.say.split_whitespace() {
                    assert!(
                        words.contains(&word),
                        "{}: {word:?} of {:?} missing:\n{text}",
                        scenario.id,
                        step.say
                    );
                }
            }
        }
    }
}
