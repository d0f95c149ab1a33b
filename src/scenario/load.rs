//! Where scenarios come from: the built-ins embedded in the binary, files and folders.

use std::path::Path;

use super::{did_you_mean, LoadError, Scenario, ScenarioError};

/// The built-in scenarios, embedded in the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "dirty-read",
        include_str!("../../scenarios/dirty-read.toml"),
    ),
    (
        "non-repeatable-read",
        include_str!("../../scenarios/non-repeatable-read.toml"),
    ),
    ("read-skew", include_str!("../../scenarios/read-skew.toml")),
    (
        "lost-update",
        include_str!("../../scenarios/lost-update.toml"),
    ),
    (
        "write-skew",
        include_str!("../../scenarios/write-skew.toml"),
    ),
    (
        "dirty-write",
        include_str!("../../scenarios/dirty-write.toml"),
    ),
    (
        "intermediate-read",
        include_str!("../../scenarios/intermediate-read.toml"),
    ),
    (
        "circular-information-flow",
        include_str!("../../scenarios/circular-information-flow.toml"),
    ),
    (
        "observed-transaction-vanishes",
        include_str!("../../scenarios/observed-transaction-vanishes.toml"),
    ),
    ("phantom", include_str!("../../scenarios/phantom.toml")),
    (
        "phantom-write",
        include_str!("../../scenarios/phantom-write.toml"),
    ),
    (
        "read-skew-predicate",
        include_str!("../../scenarios/read-skew-predicate.toml"),
    ),
    (
        "read-skew-write",
        include_str!("../../scenarios/read-skew-write.toml"),
    ),
    (
        "predicate-write-skew",
        include_str!("../../scenarios/predicate-write-skew.toml"),
    ),
    (
        "read-only-anomaly",
        include_str!("../../scenarios/read-only-anomaly.toml"),
    ),
    (
        "rc-update-recheck",
        include_str!("../../scenarios/rc-update-recheck.toml"),
    ),
    ("job-queue", include_str!("../../scenarios/job-queue.toml")),
    (
        "distributed-lock",
        include_str!("../../scenarios/distributed-lock.toml"),
    ),
    (
        "stale-replica-read",
        include_str!("../../scenarios/stale-replica-read.toml"),
    ),
    (
        "cross-node-lost-update",
        include_str!("../../scenarios/cross-node-lost-update.toml"),
    ),
    (
        "cross-node-write-skew",
        include_str!("../../scenarios/cross-node-write-skew.toml"),
    ),
    (
        "cross-node-for-update",
        include_str!("../../scenarios/cross-node-for-update.toml"),
    ),
];

/// Old ids of built-ins, each with the id it now has; `load` takes either, so files and CI
/// scripts that name the old one keep working. `list` shows only the new ids.
pub const ALIASES: &[(&str, &str)] = &[
    // PostgreSQL re-checks the locked row's newest version; it does not restart the statement.
    ("rc-statement-restart", "rc-update-recheck"),
];

impl Scenario {
    /// Every built-in scenario, in catalogue order.
    pub fn builtins() -> Vec<Scenario> {
        BUILTIN
            .iter()
            .map(|(id, text)| {
                Scenario::parse(text, &format!("builtin:{id}"))
                    .unwrap_or_else(|e| panic!("built-in scenario {id} is invalid: {e}"))
            })
            .collect()
    }

    /// A built-in id, or a path to a `.toml` file.
    pub fn load(name: &str) -> Result<Scenario, LoadError> {
        let path = Path::new(name);
        if name.ends_with(".toml") || name.contains('/') || path.is_file() {
            let bytes = std::fs::read(path).map_err(|reason| LoadError::Io {
                path: name.to_string(),
                reason,
            })?;
            let text = String::from_utf8(bytes)
                .map_err(|e| not_utf8(name, e.as_bytes(), e.utf8_error()))?;
            return Ok(Scenario::parse(&text, name)?);
        }
        let name = ALIASES
            .iter()
            .find(|(old, _)| *old == name)
            .map_or(name, |(_, new)| *new);
        if let Some((id, text)) = BUILTIN.iter().find(|(id, _)| *id == name) {
            return Ok(Scenario::parse(text, &format!("builtin:{id}"))?);
        }
        let ids: Vec<&str> = BUILTIN.iter().map(|(id, _)| *id).collect();
        Err(LoadError::Unknown {
            name: name.to_string(),
            hint: did_you_mean(name, &ids)
                .map(|closest| format!("; did you mean `{closest}`?"))
                .unwrap_or_default(),
        })
    }

    /// Scenario files, and the `.toml` files in directories (sorted by name); the built-ins
    /// when `paths` is empty.
    pub fn load_paths(paths: &[String]) -> Result<Vec<Scenario>, LoadError> {
        if paths.is_empty() {
            return Ok(Scenario::builtins());
        }
        let mut scenarios = Vec::new();
        for name in paths {
            let path = Path::new(name);
            if !path.is_dir() {
                scenarios.push(Scenario::load(name)?);
                continue;
            }
            let entries = std::fs::read_dir(path).map_err(|reason| LoadError::Io {
                path: name.clone(),
                reason,
            })?;
            let mut files: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|file| file.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for file in files {
                scenarios.push(Scenario::load(&file.to_string_lossy())?);
            }
        }
        Ok(scenarios)
    }
}

/// A file that is not UTF-8, with the place of its first bad byte.
fn not_utf8(file: &str, bytes: &[u8], error: std::str::Utf8Error) -> ScenarioError {
    let good = &bytes[..error.valid_up_to()];
    let line = good.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
    ScenarioError {
        file: file.to_string(),
        line,
        column,
        message: format!(
            "not valid UTF-8 (byte 0x{:02x}): a scenario file is UTF-8 text",
            bytes[error.valid_up_to()]
        ),
    }
}
