//! The file as serde sees it, and its validation into a [`Scenario`]. This file holds the
//! file's structure, where an error is in the text, and the order of validation; sessions and
//! interleavings are checked in `sessions.rs`, the outcome and expectations in `outcome.rs`,
//! and fixes are applied in `fix.rs`.

mod fix;
mod outcome;
mod sessions;
mod steps;

use std::ops::Range;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::{did_you_mean, EngineKind, Place, Scenario, ScenarioError, Topology};
use crate::level::Level;

/// A node as a file names it: `node = "standby"`, or `node = 2` on a multi-master cluster.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum RawNode {
    Name(String),
    Number(i64),
}

impl RawNode {
    pub(super) fn text(&self) -> String {
        match self {
            RawNode::Name(name) => name.clone(),
            RawNode::Number(number) => number.to_string(),
        }
    }
}

/// `<key>_on.<engine> = ...`: a value for one engine, keyed by the engine's name as written.
pub(super) type RawOn<T> = IndexMap<Spanned<String>, T>;

pub(super) type RawExpect = IndexMap<Spanned<String>, IndexMap<Spanned<String>, Spanned<String>>>;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    id: Spanned<String>,
    title: String,
    anomaly: String,
    code: String,
    #[serde(default)]
    plain: String,
    #[serde(default)]
    formal: Vec<String>,
    story: String,
    setup: Spanned<String>,
    /// `setup_on.sqlite = "..."`: the setup on that engine, instead of `setup`.
    #[serde(default)]
    setup_on: RawOn<String>,
    /// `topology = "primary-standby"`: the nodes the run needs; one server when absent.
    topology: Option<Spanned<String>>,
    #[serde(default)]
    one_server: String,
    session: Vec<RawSession>,
    interleaving: Vec<RawInterleaving>,
    outcome: RawOutcome,
    #[serde(default)]
    expect: RawExpect,
    #[serde(default)]
    fix: Vec<RawFix>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    name: Spanned<String>,
    node: Option<Spanned<RawNode>>,
    step: Vec<RawStep>,
    retry_on: Option<Vec<Spanned<String>>>,
    retry_from: Option<Spanned<String>>,
    attempts: Option<Spanned<u32>>,
    level: Option<Spanned<String>>,
    read_only: Option<bool>,
    deferrable: Option<Spanned<bool>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    name: Spanned<String>,
    /// What the step sends: SQL, a Redis command, or `until = "KEY expired"` (one of them).
    sql: Option<Spanned<String>>,
    redis: Option<Spanned<String>>,
    until: Option<Spanned<String>>,
    /// `replica = "pause"`, `"resume"` or `"wait LSN"`, on a standby.
    replica: Option<Spanned<String>>,
    /// The node the step goes to, instead of its session's.
    node: Option<Spanned<RawNode>>,
    /// `sql_on.sqlite = "..."`: the step's SQL on that engine, instead of `sql`.
    #[serde(default)]
    sql_on: RawOn<Spanned<String>>,
    say: String,
    no_rows: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFix {
    id: Spanned<String>,
    title: String,
    /// The run's own title with the fix in place, instead of the scenario's (whose title may
    /// name the anomaly the fix prevents).
    story_title: Option<String>,
    /// The run's own story with the fix in place, instead of the scenario's.
    story: Option<String>,
    how: String,
    prefer: String,
    level: Option<Spanned<String>>,
    /// SQL run after the scenario's setup.
    setup: Option<String>,
    /// The fix's setup on one engine, instead of `setup`.
    #[serde(default)]
    setup_on: RawOn<String>,
    #[serde(default)]
    unavailable: IndexMap<Spanned<String>, String>,
    #[serde(default)]
    step: Vec<RawFixStep>,
    #[serde(default)]
    session: Vec<RawFixSession>,
    /// New witnesses for the fix's runs: what its anomaly, or its prevention, looks like.
    outcome: Option<RawFixOutcome>,
    /// The fix's own interleavings, instead of the scenario's: for a fix whose steps come in
    /// another order.
    #[serde(default)]
    interleaving: Vec<RawInterleaving>,
    #[serde(default)]
    expect: RawExpect,
}

/// A step the fix changes (new SQL or Redis command, narration or no-row answer), removes, or
/// adds (`after = "john.try"`: a new step, placed after that one in its session and in every
/// interleaving).
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFixStep {
    step: Spanned<String>,
    after: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
    redis: Option<Spanned<String>>,
    until: Option<Spanned<String>>,
    replica: Option<Spanned<String>>,
    node: Option<Spanned<RawNode>>,
    #[serde(default)]
    sql_on: RawOn<Spanned<String>>,
    say: Option<String>,
    no_rows: Option<Spanned<String>>,
    #[serde(default)]
    remove: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFixSession {
    name: Spanned<String>,
    /// The node the session connects to instead (a fix that routes it elsewhere).
    node: Option<Spanned<RawNode>>,
    retry_on: Option<Vec<Spanned<String>>>,
    retry_from: Option<Spanned<String>>,
    attempts: Option<Spanned<u32>>,
    level: Option<Spanned<String>>,
    read_only: Option<bool>,
    deferrable: Option<Spanned<bool>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFixOutcome {
    anomaly: Option<Spanned<String>>,
    prevented: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterleaving {
    name: Spanned<String>,
    steps: Vec<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutcome {
    #[serde(rename = "final")]
    final_query: Option<Spanned<RawFinal>>,
    anomaly_if: Spanned<String>,
    anomaly: Spanned<String>,
    prevented: Spanned<String>,
}

/// `final = "SELECT ..."`, or `[outcome.final]` with queries by name.
#[derive(Deserialize, Clone)]
#[serde(
    untagged,
    expecting = "`final` is a query (final = \"SELECT ...\") or a table of queries by name ([outcome.final])"
)]
pub(super) enum RawFinal {
    One(String),
    Named(IndexMap<String, String>),
}

pub(super) fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let at = Locator { text, file };
    let raw: File = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at.error(span, e.message().trim_end())
    })?;
    fix::validate(raw, &at)
}

pub(super) struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        self.error_at(span.start, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let place = self.place_at(offset);
        ScenarioError {
            file: place.file,
            line: place.line,
            column: place.column,
            message: message.into(),
        }
    }

    /// The place of the first character of the string value whose literal spans `span`.
    pub(super) fn place(&self, span: Range<usize>) -> Place {
        self.place_in_string(span, 0)
    }

    /// The place `offset` bytes into the string value whose literal spans `span`.
    pub(super) fn place_in_string(&self, span: Range<usize>, offset: usize) -> Place {
        let error = self.error_in_string(span, offset, "");
        Place {
            file: error.file,
            line: error.line,
            column: error.column,
        }
    }

    fn place_at(&self, offset: usize) -> Place {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        Place {
            file: self.file.to_string(),
            line,
            column,
        }
    }

    /// An error at `offset` bytes into the string value whose literal spans `span`.
    fn error_in_string(
        &self,
        span: Range<usize>,
        offset: usize,
        message: impl Into<String>,
    ) -> ScenarioError {
        let literal = &self.text[span.clone()];
        let mut start = span.start;
        if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
            start += 3;
            if self.text[start..].starts_with('\n') {
                start += 1;
            } else if self.text[start..].starts_with("\r\n") {
                start += 2;
            }
        } else {
            start += 1;
        }
        self.error_at(start + offset, message)
    }
}

pub(super) fn suggestion(name: &str, candidates: &[&str]) -> String {
    match did_you_mean(name, candidates) {
        Some(closest) => format!("; did you mean `{closest}`?"),
        None => format!("; known: {}", candidates.join(", ")),
    }
}

pub(super) fn check_name(
    name: &Spanned<String>,
    what: &str,
    at: &Locator,
) -> Result<(), ScenarioError> {
    let ok = !name.get_ref().is_empty()
        && name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(at.error(
            name.span(),
            format!(
                "{what} name `{}` must be letters, digits, `-` or `_`",
                name.get_ref()
            ),
        ))
    }
}

pub(super) fn level_named(name: &Spanned<String>, at: &Locator) -> Result<Level, ScenarioError> {
    Level::from_id(name.get_ref()).ok_or_else(|| {
        let level_ids: Vec<&str> = Level::ALL.iter().map(|l| l.id()).collect();
        at.error(
            name.span(),
            format!(
                "unknown level `{}`{}",
                name.get_ref(),
                suggestion(name.get_ref(), &level_ids)
            ),
        )
    })
}

pub(super) fn engine_named(
    name: &str,
    span: Range<usize>,
    at: &Locator,
) -> Result<EngineKind, ScenarioError> {
    EngineKind::named(name).ok_or_else(|| {
        let names = EngineKind::ALL.map(EngineKind::name);
        let hint = if name.eq_ignore_ascii_case("mysql") {
            "; did you mean `mariadb`? (it covers MySQL too)".to_string()
        } else {
            suggestion(name, &names)
        };
        at.error(span, format!("unknown engine `{name}`{hint}"))
    })
}

/// The values of a `<key>_on` table by engine, each engine name checked.
pub(super) fn per_engine<'a, T>(
    raw: &'a RawOn<T>,
    at: &Locator,
) -> Result<Vec<(EngineKind, &'a T)>, ScenarioError> {
    raw.iter()
        .map(|(engine, value)| Ok((engine_named(engine.get_ref(), engine.span(), at)?, value)))
        .collect()
}

/// Finds `session.step` among sessions given as `[session name, step names...]`, with the
/// closest name suggested when one is unknown.
pub(super) fn locate_step(
    reference: &Spanned<String>,
    sessions: &[Vec<&str>],
    at: &Locator,
) -> Result<(usize, usize), ScenarioError> {
    let text = reference.get_ref().trim();
    let Some((session_name, step_name)) = text.split_once('.') else {
        return Err(at.error(
            reference.span(),
            format!("`{text}` must name a session and a step, like alice.read"),
        ));
    };
    let session_names: Vec<&str> = sessions.iter().map(|s| s[0]).collect();
    let Some(session) = session_names.iter().position(|n| *n == session_name) else {
        return Err(at.error(
            reference.span(),
            format!(
                "no session `{session_name}`{}",
                suggestion(session_name, &session_names)
            ),
        ));
    };
    let step_names = &sessions[session][1..];
    let Some(step) = step_names.iter().position(|n| *n == step_name) else {
        return Err(at.error(
            reference.span(),
            format!(
                "session `{session_name}` has no step `{step_name}`{}",
                suggestion(step_name, step_names)
            ),
        ));
    };
    Ok((session, step))
}

pub(super) fn validate_base(raw: &File, at: &Locator) -> Result<Scenario, ScenarioError> {
    check_name(&raw.id, "scenario", at)?;
    let topology = match &raw.topology {
        None => Topology::Single,
        Some(name) => Topology::named(name.get_ref()).ok_or_else(|| {
            at.error(
                name.span(),
                format!(
                    "unknown topology `{}`{}",
                    name.get_ref(),
                    suggestion(name.get_ref(), &Topology::NAMES)
                ),
            )
        })?,
    };
    let sessions = sessions::validate_sessions(raw, topology, at)?;
    let topology = topology.sized(sessions.iter().map(|s| s.node));
    let interleavings = sessions::validate_interleavings(raw, &sessions, at)?;
    let decision = outcome::validate_outcome(&raw.outcome, &sessions, at)?;
    let expectations = outcome::validate_expectations(&raw.expect, at)?;
    let setup_on = per_engine(&raw.setup_on, at)?
        .into_iter()
        .map(|(engine, setup)| (engine, setup.clone()))
        .collect();
    Ok(Scenario {
        id: raw.id.get_ref().clone(),
        title: raw.title.clone(),
        anomaly: raw.anomaly.clone(),
        code: raw.code.clone(),
        plain: raw.plain.trim().to_string(),
        formal: raw.formal.clone(),
        story: raw.story.trim().to_string(),
        setup: raw.setup.get_ref().clone(),
        setup_at: at.place(raw.setup.span()),
        setup_on,
        topology,
        one_server: raw.one_server.trim().to_string(),
        sessions,
        interleavings,
        decision,
        expectations,
        fixes: Vec::new(),
        applied: None,
        origin: at.file.to_string(),
    })
}
