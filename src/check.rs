//! `anomalies check`: each run's outcome against its scenario's expectation, and `--update`,
//! which writes the observed outcomes back into the scenario files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::report::Report;

/// How a run compares with its expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    AsExpected,
    Mismatch,
    /// The file says nothing for this engine and level.
    NoExpectation,
    /// The run was broken (a scenario error): there is no outcome to compare.
    Error,
}

pub fn status(report: &Report) -> Status {
    if report.verdict.is_error() {
        return Status::Error;
    }
    match report.matches_expectation() {
        Some(true) => Status::AsExpected,
        Some(false) => Status::Mismatch,
        None => Status::NoExpectation,
    }
}

/// `postgres 15.20 · lost-update · repeatable read`
pub fn subject(report: &Report) -> String {
    format!(
        "{} {} · {} · {}",
        report.engine.name,
        report.engine.version,
        report.scenario.label(),
        report.requested
    )
}

/// One line a person understands at once:
/// `postgres 15.20 · lost-update · repeatable read: expected prevented by abort, got anomaly — …`
pub fn line(report: &Report) -> String {
    let summary = report.verdict.summary(&report.scenario);
    let why = summary
        .split_once(" — ")
        .map_or(summary.as_str(), |(_, why)| why);
    let got = report.outcome_text();
    match (status(report), report.expected) {
        (Status::AsExpected, _) => format!("{}: {got}, as expected", subject(report)),
        (_, Some(expected)) => {
            format!(
                "{}: expected {expected}, got {got} — {why}",
                subject(report)
            )
        }
        (_, None) => format!(
            "{}: no expectation in the file; got {got} — {why}",
            subject(report)
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("built-in scenario {0} cannot be updated: pass the scenario files to check --update")]
    Builtin(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not TOML that can be edited: {message}")]
    Edit { path: String, message: String },
}

/// Writes the observed outcome of every run that did not match (or had no expectation) into
/// its scenario file, in the `[expect.…]` table that applies, and touches nothing else. Returns
/// the files it changed; a file whose expectations all held is not written.
pub fn update(reports: &[Report]) -> Result<Vec<PathBuf>, UpdateError> {
    let mut by_file: BTreeMap<&Path, Vec<&Report>> = BTreeMap::new();
    for report in reports {
        // A broken run has no outcome to record: `--update` never writes one.
        if matches!(status(report), Status::AsExpected | Status::Error) {
            continue;
        }
        let Some(file) = report.scenario.file() else {
            return Err(UpdateError::Builtin(report.scenario.id.clone()));
        };
        by_file.entry(file).or_default().push(report);
    }
    let mut changed = Vec::new();
    for (file, reports) in by_file {
        let path = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| UpdateError::Read {
            path: path.clone(),
            source,
        })?;
        let mut document: toml_edit::DocumentMut =
            text.parse()
                .map_err(|e: toml_edit::TomlError| UpdateError::Edit {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        for report in reports {
            let table = report
                .expected_in
                .clone()
                .unwrap_or_else(|| report.engine.name.to_string());
            let observed = report.verdict.finding.to_string();
            let fix = report.scenario.applied.as_ref().map(|f| f.id.as_str());
            set_expectation(&mut document, fix, &table, report.requested.id(), &observed).map_err(
                |message| UpdateError::Edit {
                    path: path.clone(),
                    message,
                },
            )?;
        }
        let updated = document.to_string();
        if updated != text {
            std::fs::write(file, updated).map_err(|source| UpdateError::Write {
                path: path.clone(),
                source,
            })?;
            changed.push(file.to_path_buf());
        }
    }
    Ok(changed)
}

/// `[expect.<table>] <level> = "<value>"`, or `[fix.expect.<table>]` in the `[[fix]]` whose id
/// is `fix`, keeping the decoration of a value it replaces.
fn set_expectation(
    document: &mut toml_edit::DocumentMut,
    fix: Option<&str>,
    table: &str,
    level: &str,
    value: &str,
) -> Result<(), String> {
    use toml_edit::{Item, Table, Value};
    let root: &mut Table = match fix {
        None => document.as_table_mut(),
        Some(id) => document
            .get_mut("fix")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|fixes| {
                fixes
                    .iter_mut()
                    .find(|f| f.get("id").and_then(Item::as_str) == Some(id))
            })
            .ok_or_else(|| format!("no [[fix]] with id `{id}`"))?,
    };
    let expect = root.entry("expect").or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    let expect = expect
        .as_table_like_mut()
        .ok_or("`expect` is not a table")?;
    let engine = expect
        .entry(table)
        .or_insert_with(|| Item::Table(Table::new()));
    let engine = engine
        .as_table_like_mut()
        .ok_or_else(|| format!("`expect.{table}` is not a table"))?;
    let mut new = Value::from(value);
    match engine.get_mut(level) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *new.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(new);
        }
        None => {
            engine.insert(level, Item::Value(new));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineInfo;
    use crate::level::Level;
    use crate::outcome::Verdict;
    use crate::scenario::expected::{Expected, Mechanism};
    use crate::scenario::{EngineKind, Scenario};

    #[test]
    fn built_in_scenarios_are_not_rewritten() {
        let report = Report {
            scenario: Scenario::load("write-skew").unwrap(),
            engine: EngineInfo {
                name: EngineKind::Postgres,
                version: "15.20".into(),
                detail: String::new(),
                redis: None,
            },
            requested: Level::Serializable,
            effective: Level::Serializable,
            sessions: Vec::new(),
            interleaving: "both-check-first".into(),
            timeline: Default::default(),
            verdict: Verdict {
                finding: crate::outcome::Finding::Anomaly,
                cause: None,
                witness: String::new(),
            },
            expected: Some(Expected::Prevented(Mechanism::Abort)),
            expected_in: Some("postgres".into()),
        };
        assert_eq!(status(&report), Status::Mismatch);
        let error = update(&[report]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "built-in scenario write-skew cannot be updated: pass the scenario files to check --update"
        );
    }

    fn check(before: &str, table: &str, level: &str, value: &str, after: &str) {
        let mut document: toml_edit::DocumentMut = before.parse().unwrap();
        set_expectation(&mut document, None, table, level, value).unwrap();
        assert_eq!(document.to_string(), after);
    }

    #[test]
    fn writes_a_fix_s_expectations_into_its_own_table() {
        let mut document: toml_edit::DocumentMut =
            "id = \"x\"\n\n[[fix]]\nid = \"a\"\n\n[[fix]]\nid = \"b\"\n\n[fix.expect.postgres]\nserializable = \"anomaly\"\n"
                .parse()
                .unwrap();
        set_expectation(
            &mut document,
            Some("b"),
            "postgres",
            "serializable",
            "prevented by retry",
        )
        .unwrap();
        set_expectation(
            &mut document,
            Some("a"),
            "sqlite",
            "read-committed",
            "anomaly",
        )
        .unwrap();
        assert_eq!(
            document.to_string(),
            "id = \"x\"\n\n[[fix]]\nid = \"a\"\n\n[fix.expect.sqlite]\nread-committed = \"anomaly\"\n\n[[fix]]\nid = \"b\"\n\n[fix.expect.postgres]\nserializable = \"prevented by retry\"\n"
        );
        assert!(set_expectation(
            &mut document,
            Some("c"),
            "postgres",
            "serializable",
            "anomaly"
        )
        .is_err());
    }

    #[test]
    fn replaces_a_value_and_keeps_everything_else() {
        check(
            "id = \"x\" # the id\n\n[expect.postgres]\nserializable   = \"anomaly\"  # was wrong\nread-committed = \"anomaly\"\n",
            "postgres",
            "serializable",
            "prevented by abort",
            "id = \"x\" # the id\n\n[expect.postgres]\nserializable   = \"prevented by abort\"  # was wrong\nread-committed = \"anomaly\"\n",
        );
    }

    #[test]
    fn adds_a_missing_level_table_and_narrowed_table() {
        check(
            "id = \"x\"\n",
            "postgres",
            "serializable",
            "anomaly",
            "id = \"x\"\n\n[expect.postgres]\nserializable = \"anomaly\"\n",
        );
        check(
            "[expect.postgres]\nserializable = \"anomaly\"\n\n[expect.\"postgres >= 16\"]\nserializable = \"anomaly\"\n",
            "postgres >= 16",
            "serializable",
            "prevented by abort",
            "[expect.postgres]\nserializable = \"anomaly\"\n\n[expect.\"postgres >= 16\"]\nserializable = \"prevented by abort\"\n",
        );
    }
}
