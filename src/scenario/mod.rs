//! Scenario files: TOML text in, a validated [`Scenario`] out. No I/O but reading a file.

mod engine_kind;
pub mod expected;
pub mod expr;
mod load;
mod per_engine;
#[cfg(test)]
mod prose;
mod raw;
mod shares;
pub mod template;
pub mod topology;
pub mod version;

pub use engine_kind::EngineKind;
pub use load::BUILTIN;
pub use topology::{Node, ReplicaAction, Topology, PRIMARY};

use std::fmt;
use std::path::Path;

use crate::level::Level;
use expected::Expected;
use expr::Expr;
use template::{SqlTemplate, Template};
use version::VersionReq;

/// A validated scenario: every name resolves, every interleaving keeps each session's order.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub anomaly: String,
    pub code: String,
    /// The anomaly in plain words, for `explain`.
    pub plain: String,
    /// Its formal names, with where they come from: `P4 (Berenson et al. 1995)`.
    pub formal: Vec<String>,
    pub story: String,
    pub setup: String,
    /// Where the setup SQL is written, for an error the database finds in it.
    pub setup_at: Place,
    /// The setup on one engine, instead of `setup` (until [`Scenario::for_engine`] resolves it).
    pub setup_on: Vec<(EngineKind, String)>,
    /// The nodes the run needs: one server, or a primary and a standby.
    pub topology: Topology,
    /// For a scenario of several nodes: what the same story does on one server (`explain`).
    pub one_server: String,
    pub sessions: Vec<Session>,
    pub interleavings: Vec<Interleaving>,
    pub decision: Decision,
    pub expectations: Vec<Expectation>,
    /// The fixes the file offers, each with the scenario as it runs with the fix in place.
    pub fixes: Vec<Fix>,
    /// Set on a fix's variant: the fix in place.
    pub applied: Option<FixInfo>,
    /// Where it came from: `builtin:write-skew` or a path.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub name: String,
    /// The node its steps go to unless a step names another.
    pub node: Node,
    pub steps: Vec<Step>,
    pub retry: Retry,
    /// What the session pins of its transactions; the rest follows the run.
    pub pinned: Pinned,
}

/// A session's own transaction characteristics: an isolation level instead of the run's, and
/// read-only or deferrable transactions. Set for the connection before the first step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pinned {
    /// The level the session runs at whatever the run's level (`--level`, the matrix).
    pub level: Option<Level>,
    pub read_only: bool,
    /// PostgreSQL: a serializable read-only transaction waits at its first snapshot until no
    /// serializable writer can make it unsafe.
    pub deferrable: bool,
}

impl Pinned {
    /// Whether the session pins anything.
    pub fn any(&self) -> bool {
        *self != Pinned::default()
    }
}

/// What the session's application does when a step fails: the errors it retries on, and where
/// its transaction starts again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Retry {
    /// Failures that make the session roll back and run again from `from`.
    pub on: Vec<RetryOn>,
    /// The step an attempt starts from (the session's first when unset).
    pub from: usize,
    /// Attempts in all, the first included.
    pub attempts: u32,
}

/// A failure a session can retry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    SerializationFailure,
    Deadlock,
    Busy,
    Locked,
}

impl RetryOn {
    pub const ALL: [RetryOn; 4] = [
        RetryOn::SerializationFailure,
        RetryOn::Deadlock,
        RetryOn::Busy,
        RetryOn::Locked,
    ];

    pub fn id(self) -> &'static str {
        match self {
            RetryOn::SerializationFailure => "serialization-failure",
            RetryOn::Deadlock => "deadlock",
            RetryOn::Busy => "busy",
            RetryOn::Locked => "locked",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// Where the step goes: the session's database connection, or its Redis connection.
    pub kind: StepKind,
    /// What it sends: SQL, a Redis command, or for `until`, `KEY expired`.
    pub sql: SqlTemplate,
    /// The step's SQL on one engine, instead of `sql` (until [`Scenario::for_engine`]
    /// resolves it).
    pub sql_on: Vec<(EngineKind, SqlTemplate)>,
    pub say: String,
    /// The node it goes to: its session's, unless it names another.
    pub node: Node,
    /// What the application does when this step changes or returns no row.
    pub no_rows: Option<NoRows>,
}

/// Where a step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// SQL, on the session's database connection.
    Sql,
    /// A Redis command (`redis = "SET lock alice NX PX 50"`), on the session's Redis
    /// connection: no part of the session's database transaction.
    Redis,
    /// `until = "lock expired"`: the session waits, asking Redis, until it has no such key
    /// (the lease ran out, or its holder deleted it).
    Until,
    /// `replica = "pause"`, `"resume"` or `"wait LSN"`: an action on the step's standby
    /// ([`ReplicaAction`]), no part of any transaction.
    Replica,
}

impl Step {
    /// Whether the step talks to Redis.
    pub fn is_redis(&self) -> bool {
        matches!(self.kind, StepKind::Redis | StepKind::Until)
    }
}

/// The key of an `until` step's text, `lock` for `lock expired`.
pub fn until_key(text: &str) -> Option<&str> {
    let key = text.trim().strip_suffix("expired")?.trim_end();
    (!key.is_empty() && !key.contains(char::is_whitespace)).then_some(key)
}

/// The application's answer to a step that changed or returned no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRows {
    /// Roll back and run the transaction again from the session's retry step.
    Retry,
    /// Roll back and stop: the session's later steps are not sent.
    GiveUp,
}

/// A fix the scenario offers: what it is, when to prefer it, and the scenario with it in place.
#[derive(Debug, Clone)]
pub struct Fix {
    pub info: FixInfo,
    /// The scenario with the fix's steps, setup, retries and expectations in place.
    pub variant: Box<Scenario>,
}

/// A fix described for people.
#[derive(Debug, Clone, PartialEq)]
pub struct FixInfo {
    pub id: String,
    pub title: String,
    /// What changes, in a sentence or two.
    pub how: String,
    /// When to prefer it, and what it costs.
    pub prefer: String,
    /// The level it is meant to run at, used when no `--level` is given.
    pub level: Option<Level>,
    /// Engines that lack what the fix needs, with why.
    pub unavailable: Vec<(EngineKind, String)>,
}

impl FixInfo {
    /// Why the fix can't run on `engine`, if it can't.
    pub fn unavailable_on(&self, engine: EngineKind) -> Option<&str> {
        self.unavailable
            .iter()
            .find(|(e, _)| *e == engine)
            .map(|(_, why)| why.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Interleaving {
    pub name: String,
    pub steps: Vec<StepId>,
}

/// A step by position: `sessions[session].steps[step]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId {
    pub session: usize,
    pub step: usize,
}

/// How a run is judged.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `final = "..."`: run on the end state after every session has finished; its first row
    /// is `final.<column>`, its whole result `final`.
    pub final_query: Option<String>,
    /// `[outcome.final]`: queries by name, run like `final_query`, in the file's order; query
    /// NAME's whole result is `final.NAME`, its first row `final.NAME.<column>`.
    pub named_finals: Vec<(String, String)>,
    pub anomaly_if: Expr,
    pub anomaly_witness: Template,
    pub prevented_witness: Template,
    /// Where `anomaly_if`, `anomaly` and `prevented` are written, in that order.
    pub at: [Places; 3],
    /// Where the final query (or `[outcome.final]`) is written, for an error it runs into.
    pub final_at: Place,
}

/// Where a string value is written, and each part of the expressions in it, by byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Places {
    pub start: Place,
    pub parts: Vec<(usize, Place)>,
}

impl Places {
    /// The place of the part at `offset`, or of the string when no part starts there.
    pub fn at(&self, offset: usize) -> &Place {
        self.parts
            .iter()
            .find(|(at, _)| *at == offset)
            .map_or(&self.start, |(_, place)| place)
    }
}

/// A place in a scenario file: `lost-update.toml:62:14`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Place {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// What a scenario file says a run on an engine at a level must show.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub engine: EngineKind,
    /// Set for a table like `[expect."postgres >= 16"]`: only these versions.
    pub versions: Option<VersionReq>,
    pub level: Level,
    pub expected: Expected,
    /// The table it stands in, as written: `postgres`, `postgres >= 16`.
    pub table: String,
}

/// A scenario that can't be used, with the place in the file that says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Any failure to find or read a scenario.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Invalid(#[from] ScenarioError),
    /// The reason is in the message, not the error's source, so that a chain printed whole
    /// (`{:#}`) says it once.
    #[error("cannot read {path}: {reason}")]
    Io {
        path: String,
        reason: std::io::Error,
    },
    #[error("no scenario named `{name}`{hint}; `anomalies list` shows them all")]
    Unknown { name: String, hint: String },
}

impl Scenario {
    /// Parses and validates scenario text; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        raw::parse(text, file)
    }

    /// The file a scenario came from; `None` for a built-in.
    pub fn file(&self) -> Option<&Path> {
        (!self.origin.starts_with("builtin:")).then(|| Path::new(&self.origin))
    }

    /// The scenario with fix `id` in place.
    pub fn with_fix(&self, id: &str) -> Result<Scenario, String> {
        if let Some(fix) = self.fixes.iter().find(|f| f.info.id == id) {
            return Ok((*fix.variant).clone());
        }
        let ids: Vec<&str> = self.fixes.iter().map(|f| f.info.id.as_str()).collect();
        if ids.is_empty() {
            return Err(format!("scenario {} offers no fixes", self.id));
        }
        Err(format!(
            "scenario {} has no fix `{id}`{}; it offers: {}",
            self.id,
            did_you_mean(id, &ids)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default(),
            ids.join(", ")
        ))
    }

    /// The id of the fix in place, on a fix's variant.
    pub fn fix_id(&self) -> Option<&str> {
        self.applied.as_ref().map(|fix| fix.id.as_str())
    }

    /// `lost-update`, or `lost-update --fix for-update` for a fix's variant.
    pub fn label(&self) -> String {
        match &self.applied {
            Some(fix) => format!("{} --fix {}", self.id, fix.id),
            None => self.id.clone(),
        }
    }

    /// Whether any step talks to Redis: a run needs a Redis beside the database.
    pub fn uses_redis(&self) -> bool {
        self.sessions
            .iter()
            .flat_map(|s| &s.steps)
            .any(Step::is_redis)
    }

    /// Whether any step acts on a standby's replay (`replica = …`).
    pub fn uses_replica(&self) -> bool {
        self.sessions
            .iter()
            .flat_map(|s| &s.steps)
            .any(|step| step.kind == StepKind::Replica)
    }

    pub fn step(&self, id: StepId) -> &Step {
        &self.sessions[id.session].steps[id.step]
    }

    /// `alice.read`: a step as a scenario file names it.
    pub fn step_name(&self, id: StepId) -> String {
        format!("{}.{}", self.sessions[id.session].name, self.step(id).name)
    }

    /// `alice.read` by name.
    pub fn step_id(&self, session: &str, step: &str) -> Option<StepId> {
        let session_index = self.session_index(session)?;
        let step_index = self.sessions[session_index]
            .steps
            .iter()
            .position(|s| s.name == step)?;
        Some(StepId {
            session: session_index,
            step: step_index,
        })
    }

    pub fn session_index(&self, name: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s.name == name)
    }

    pub fn interleaving(&self, name: Option<&str>) -> Result<&Interleaving, String> {
        match name {
            None => Ok(&self.interleavings[0]),
            Some(name) => self
                .interleavings
                .iter()
                .find(|i| i.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        self.interleavings.iter().map(|i| i.name.as_str()).collect();
                    format!(
                        "scenario {} has no interleaving `{name}`{}; it has: {}",
                        self.id,
                        did_you_mean(name, &names)
                            .map(|c| format!(" (did you mean `{c}`?)"))
                            .unwrap_or_default(),
                        names.join(", ")
                    )
                }),
        }
    }

    /// The expectation for a run on `engine` at `version` and `level`: the last table narrowed
    /// to versions that include `version`, else the engine's plain table.
    pub fn expectation(
        &self,
        engine: EngineKind,
        version: &str,
        level: Level,
    ) -> Option<&Expectation> {
        let candidates = self
            .expectations
            .iter()
            .filter(|e| e.engine == engine && e.level == level);
        let narrowed = candidates
            .clone()
            .rfind(|e| e.versions.as_ref().is_some_and(|v| v.matches(version)));
        narrowed.or_else(|| candidates.clone().find(|e| e.versions.is_none()))
    }

    /// The plain (not version-narrowed) expectation for `engine` at `level`.
    pub fn expected(&self, engine: EngineKind, level: Level) -> Option<&Expected> {
        self.expectations
            .iter()
            .find(|e| e.engine == engine && e.level == level && e.versions.is_none())
            .map(|e| &e.expected)
    }
}

/// A display name for a session: `alice` → `Alice`.
pub fn display_name(session: &str) -> String {
    let mut chars = session.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The candidate closest to `name`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(name, c), *c))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;
