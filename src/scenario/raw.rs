//! The file as serde sees it, and its validation into a [`Scenario`].

use std::collections::HashSet;
use std::ops::Range;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use super::expr::{self, Ref};
use super::template::{SqlTemplate, Template};
use super::version::VersionReq;
use super::{
    did_you_mean, Decision, EngineKind, Expectation, Fix, FixInfo, Interleaving, NoRows, Retry,
    RetryOn, Scenario, ScenarioError, Session, Step, StepId,
};
use crate::level::Level;
use crate::outcome::Expected;

type RawExpect = IndexMap<Spanned<String>, IndexMap<Spanned<String>, Spanned<String>>>;

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct File {
    id: Spanned<String>,
    title: String,
    anomaly: String,
    code: String,
    #[serde(default)]
    plain: String,
    #[serde(default)]
    formal: Vec<String>,
    story: String,
    setup: String,
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
struct RawSession {
    name: Spanned<String>,
    step: Vec<RawStep>,
    retry_on: Option<Vec<Spanned<String>>>,
    retry_from: Option<Spanned<String>>,
    attempts: Option<Spanned<u32>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    sql: Spanned<String>,
    say: String,
    no_rows: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawFix {
    id: Spanned<String>,
    title: String,
    how: String,
    prefer: String,
    level: Option<Spanned<String>>,
    /// SQL run after the scenario's setup.
    setup: Option<String>,
    #[serde(default)]
    unavailable: IndexMap<Spanned<String>, String>,
    #[serde(default)]
    step: Vec<RawFixStep>,
    #[serde(default)]
    session: Vec<RawFixSession>,
    #[serde(default)]
    expect: RawExpect,
}

/// A step the fix changes: new SQL, narration or no-row answer, or gone.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawFixStep {
    step: Spanned<String>,
    sql: Option<Spanned<String>>,
    say: Option<String>,
    no_rows: Option<Spanned<String>>,
    #[serde(default)]
    remove: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawFixSession {
    name: Spanned<String>,
    retry_on: Option<Vec<Spanned<String>>>,
    retry_from: Option<Spanned<String>>,
    attempts: Option<Spanned<u32>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawInterleaving {
    name: Spanned<String>,
    steps: Vec<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    #[serde(rename = "final")]
    final_query: Option<String>,
    anomaly_if: Spanned<String>,
    anomaly: Spanned<String>,
    prevented: Spanned<String>,
}

pub(super) fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let at = Locator { text, file };
    let raw: File = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at.error(span, e.message().trim_end())
    })?;
    validate(raw, &at)
}

struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ScenarioError {
        self.error_at(span.start, message)
    }

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
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

fn suggestion(name: &str, candidates: &[&str]) -> String {
    match did_you_mean(name, candidates) {
        Some(closest) => format!("; did you mean `{closest}`?"),
        None => format!("; known: {}", candidates.join(", ")),
    }
}

fn check_name(name: &Spanned<String>, what: &str, at: &Locator) -> Result<(), ScenarioError> {
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

fn validate(raw: File, at: &Locator) -> Result<Scenario, ScenarioError> {
    let mut scenario = validate_base(&raw, at)?;
    let mut ids: Vec<&str> = Vec::new();
    for fix in &raw.fix {
        check_name(&fix.id, "fix", at)?;
        if ids.contains(&fix.id.get_ref().as_str()) {
            return Err(at.error(
                fix.id.span(),
                format!("fix `{}` is defined twice", fix.id.get_ref()),
            ));
        }
        ids.push(fix.id.get_ref());
        let info = fix_info(fix, at)?;
        let mut variant = validate_base(&apply_fix(&raw, fix, at)?, at)?;
        for expectation in &variant.expectations {
            if info.unavailable_on(expectation.engine).is_some() {
                return Err(at.error(
                    fix.id.span(),
                    format!(
                        "fix `{}` is unavailable on {} yet expects an outcome there",
                        info.id, expectation.engine
                    ),
                ));
            }
        }
        variant.applied = Some(info.clone());
        scenario.fixes.push(Fix {
            info,
            variant: Box::new(variant),
        });
    }
    Ok(scenario)
}

fn fix_info(fix: &RawFix, at: &Locator) -> Result<FixInfo, ScenarioError> {
    let level = match &fix.level {
        None => None,
        Some(name) => Some(level_named(name, at)?),
    };
    let mut unavailable = Vec::new();
    for (engine, why) in &fix.unavailable {
        unavailable.push((
            engine_named(engine.get_ref(), engine.span(), at)?,
            why.trim().to_string(),
        ));
    }
    Ok(FixInfo {
        id: fix.id.get_ref().clone(),
        title: fix.title.clone(),
        how: fix.how.trim().to_string(),
        prefer: fix.prefer.trim().to_string(),
        level,
        unavailable,
    })
}

fn level_named(name: &Spanned<String>, at: &Locator) -> Result<Level, ScenarioError> {
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

fn engine_named(name: &str, span: Range<usize>, at: &Locator) -> Result<EngineKind, ScenarioError> {
    match name {
        "postgres" => Ok(EngineKind::Postgres),
        "sqlite" => Ok(EngineKind::Sqlite),
        other => Err(at.error(
            span,
            format!(
                "unknown engine `{other}`{}",
                suggestion(other, &["postgres", "sqlite"])
            ),
        )),
    }
}

/// The file as it reads with `fix` in place: its steps changed or removed (and removed from
/// every interleaving), its setup appended, its sessions' retries set, its expectations.
fn apply_fix(base: &File, fix: &RawFix, at: &Locator) -> Result<File, ScenarioError> {
    let mut file = base.clone();
    file.fix.clear();
    if let Some(setup) = &fix.setup {
        file.setup = format!("{}\n{}", file.setup.trim_end(), setup);
    }
    for change in &fix.step {
        let reference = change.step.get_ref();
        let (session, step) = raw_step_position(&file.session, &change.step, at)?;
        if change.remove {
            if change.sql.is_some() || change.say.is_some() || change.no_rows.is_some() {
                return Err(at.error(
                    change.step.span(),
                    format!("`{reference}` is removed; it can't also be changed"),
                ));
            }
            file.session[session].step.remove(step);
            for interleaving in &mut file.interleaving {
                interleaving
                    .steps
                    .retain(|s| s.get_ref().trim() != reference.trim());
            }
            continue;
        }
        let target = &mut file.session[session].step[step];
        if let Some(sql) = &change.sql {
            target.sql = sql.clone();
        }
        if let Some(say) = &change.say {
            target.say = say.clone();
        }
        if let Some(no_rows) = &change.no_rows {
            target.no_rows = Some(no_rows.clone());
        }
    }
    for change in &fix.session {
        let names: Vec<&str> = file
            .session
            .iter()
            .map(|s| s.name.get_ref().as_str())
            .collect();
        let Some(index) = names.iter().position(|n| n == change.name.get_ref()) else {
            return Err(at.error(
                change.name.span(),
                format!(
                    "no session `{}`{}",
                    change.name.get_ref(),
                    suggestion(change.name.get_ref(), &names)
                ),
            ));
        };
        let target = &mut file.session[index];
        if change.retry_on.is_some() {
            target.retry_on = change.retry_on.clone();
        }
        if change.retry_from.is_some() {
            target.retry_from = change.retry_from.clone();
        }
        if change.attempts.is_some() {
            target.attempts = change.attempts.clone();
        }
    }
    file.expect = fix.expect.clone();
    Ok(file)
}

/// Where `alice.read` is among raw sessions.
fn raw_step_position(
    sessions: &[RawSession],
    reference: &Spanned<String>,
    at: &Locator,
) -> Result<(usize, usize), ScenarioError> {
    let names: Vec<Vec<&str>> = sessions
        .iter()
        .map(|s| {
            std::iter::once(s.name.get_ref().as_str())
                .chain(s.step.iter().map(|step| step.name.get_ref().as_str()))
                .collect()
        })
        .collect();
    locate_step(reference, &names, at)
}

/// Finds `session.step` among sessions given as `[session name, step names...]`, with the
/// closest name suggested when one is unknown.
fn locate_step(
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

fn validate_base(raw: &File, at: &Locator) -> Result<Scenario, ScenarioError> {
    check_name(&raw.id, "scenario", at)?;
    if raw.session.is_empty() {
        return Err(at.error_at(0, "a scenario needs at least one [[session]]"));
    }

    let mut sessions = Vec::new();
    for raw_session in &raw.session {
        let name = raw_session.name.get_ref();
        check_name(&raw_session.name, "session", at)?;
        if name == "final" {
            return Err(at.error(
                raw_session.name.span(),
                "`final` names the final check query; choose another session name",
            ));
        }
        if sessions.iter().any(|s: &Session| &s.name == name) {
            return Err(at.error(
                raw_session.name.span(),
                format!("session `{name}` is defined twice"),
            ));
        }
        if raw_session.step.is_empty() {
            return Err(at.error(
                raw_session.name.span(),
                format!("session `{name}` has no steps"),
            ));
        }
        let mut steps: Vec<Step> = Vec::new();
        for raw_step in &raw_session.step {
            let step_name = raw_step.name.get_ref();
            check_name(&raw_step.name, "step", at)?;
            if steps.iter().any(|s| &s.name == step_name) {
                return Err(at.error(
                    raw_step.name.span(),
                    format!("session `{name}` has two steps named `{step_name}`"),
                ));
            }
            let earlier: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            let later: Vec<&str> = raw_session
                .step
                .iter()
                .map(|s| s.name.get_ref().as_str())
                .collect();
            let sql = SqlTemplate::parse(raw_step.sql.get_ref(), |hole| {
                if let Some(index) = earlier.iter().position(|s| *s == hole) {
                    Ok(index)
                } else if later.contains(&hole) {
                    Err(format!(
                        "`{hole}` comes later in session `{name}`; a step can use only values read before it"
                    ))
                } else {
                    Err(format!(
                        "session `{name}` has no step `{hole}`{}",
                        suggestion(hole, &earlier)
                    ))
                }
            })
            .map_err(|e| at.error_in_string(raw_step.sql.span(), e.offset, e.message))?;
            let no_rows = match &raw_step.no_rows {
                None => None,
                Some(answer) => Some(match answer.get_ref().as_str() {
                    "retry" => NoRows::Retry,
                    "give-up" => NoRows::GiveUp,
                    other => {
                        return Err(at.error(
                            answer.span(),
                            format!(
                                "no_rows must be `retry` or `give-up`, found `{other}`{}",
                                suggestion(other, &["retry", "give-up"])
                            ),
                        ))
                    }
                }),
            };
            steps.push(Step {
                name: step_name.clone(),
                sql,
                say: raw_step.say.clone(),
                no_rows,
            });
        }
        let retry = validate_retry(raw_session, &steps, at)?;
        sessions.push(Session {
            name: name.clone(),
            steps,
            retry,
        });
    }

    let mut interleavings: Vec<Interleaving> = Vec::new();
    if raw.interleaving.is_empty() {
        return Err(at.error_at(0, "a scenario needs at least one [[interleaving]]"));
    }
    for raw_interleaving in &raw.interleaving {
        check_name(&raw_interleaving.name, "interleaving", at)?;
        if interleavings
            .iter()
            .any(|i| &i.name == raw_interleaving.name.get_ref())
        {
            return Err(at.error(
                raw_interleaving.name.span(),
                format!(
                    "interleaving `{}` is defined twice",
                    raw_interleaving.name.get_ref()
                ),
            ));
        }
        let steps = validate_interleaving(raw_interleaving, &sessions, at)?;
        interleavings.push(Interleaving {
            name: raw_interleaving.name.get_ref().clone(),
            steps,
        });
    }

    let decision = validate_outcome(&raw.outcome, &sessions, at)?;
    let expectations = validate_expectations(&raw.expect, at)?;

    Ok(Scenario {
        id: raw.id.get_ref().clone(),
        title: raw.title.clone(),
        anomaly: raw.anomaly.clone(),
        code: raw.code.clone(),
        plain: raw.plain.trim().to_string(),
        formal: raw.formal.clone(),
        story: raw.story.trim().to_string(),
        setup: raw.setup.clone(),
        sessions,
        interleavings,
        decision,
        expectations,
        fixes: Vec::new(),
        applied: None,
        origin: at.file.to_string(),
    })
}

fn validate_retry(raw: &RawSession, steps: &[Step], at: &Locator) -> Result<Retry, ScenarioError> {
    let mut on = Vec::new();
    for kind in raw.retry_on.iter().flatten() {
        let ids: Vec<&str> = RetryOn::ALL.iter().map(|k| k.id()).collect();
        let Some(found) = RetryOn::ALL.into_iter().find(|k| k.id() == kind.get_ref()) else {
            return Err(at.error(
                kind.span(),
                format!(
                    "cannot retry on `{}`{}",
                    kind.get_ref(),
                    suggestion(kind.get_ref(), &ids)
                ),
            ));
        };
        on.push(found);
    }
    let from = match &raw.retry_from {
        None => 0,
        Some(name) => {
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            names
                .iter()
                .position(|n| n == name.get_ref())
                .ok_or_else(|| {
                    at.error(
                        name.span(),
                        format!(
                            "session `{}` has no step `{}`{}",
                            raw.name.get_ref(),
                            name.get_ref(),
                            suggestion(name.get_ref(), &names)
                        ),
                    )
                })?
        }
    };
    let attempts = match &raw.attempts {
        None => 3,
        Some(n) if *n.get_ref() == 0 => {
            return Err(at.error(n.span(), "attempts must be at least 1"));
        }
        Some(n) => *n.get_ref(),
    };
    Ok(Retry { on, from, attempts })
}

fn resolve_step(
    reference: &Spanned<String>,
    sessions: &[Session],
    at: &Locator,
) -> Result<StepId, ScenarioError> {
    let names: Vec<Vec<&str>> = sessions
        .iter()
        .map(|s| {
            std::iter::once(s.name.as_str())
                .chain(s.steps.iter().map(|step| step.name.as_str()))
                .collect()
        })
        .collect();
    let (session, step) = locate_step(reference, &names, at)?;
    Ok(StepId { session, step })
}

fn validate_interleaving(
    raw: &RawInterleaving,
    sessions: &[Session],
    at: &Locator,
) -> Result<Vec<StepId>, ScenarioError> {
    let mut next_step = vec![0; sessions.len()];
    let mut steps = Vec::new();
    for reference in &raw.steps {
        let id = resolve_step(reference, sessions, at)?;
        let session = &sessions[id.session];
        let expected = next_step[id.session];
        if id.step != expected {
            let message = if id.step < expected {
                format!(
                    "`{}` appears twice in this interleaving",
                    reference.get_ref()
                )
            } else {
                format!(
                    "`{}` comes before `{}.{}`: steps must keep their session's order",
                    reference.get_ref(),
                    session.name,
                    session.steps[expected].name
                )
            };
            return Err(at.error(reference.span(), message));
        }
        next_step[id.session] += 1;
        steps.push(id);
    }
    for (index, session) in sessions.iter().enumerate() {
        if let Some(missing) = session.steps.get(next_step[index]) {
            return Err(at.error(
                raw.name.span(),
                format!(
                    "interleaving `{}` leaves out `{}.{}`: it must run every step once",
                    raw.name.get_ref(),
                    session.name,
                    missing.name
                ),
            ));
        }
    }
    Ok(steps)
}

fn validate_outcome(
    raw: &RawOutcome,
    sessions: &[Session],
    at: &Locator,
) -> Result<Decision, ScenarioError> {
    let anomaly_if = expr::parse(raw.anomaly_if.get_ref())
        .map_err(|e| at.error_in_string(raw.anomaly_if.span(), e.offset, e.message))?;
    let anomaly_witness = Template::parse(raw.anomaly.get_ref())
        .map_err(|e| at.error_in_string(raw.anomaly.span(), e.offset, e.message))?;
    let prevented_witness = Template::parse(raw.prevented.get_ref())
        .map_err(|e| at.error_in_string(raw.prevented.span(), e.offset, e.message))?;

    let check_refs = |field: &Spanned<String>, refs: Vec<&Ref>| -> Result<(), ScenarioError> {
        for reference in refs {
            check_ref(reference, raw.final_query.is_some(), sessions)
                .map_err(|message| at.error(field.span(), message))?;
        }
        Ok(())
    };
    check_refs(&raw.anomaly_if, anomaly_if.refs())?;
    check_refs(&raw.anomaly, anomaly_witness.refs().collect())?;
    check_refs(&raw.prevented, prevented_witness.refs().collect())?;
    let session_names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    for name in anomaly_if.committed_sessions() {
        if !session_names.contains(&name) {
            return Err(at.error(
                raw.anomaly_if.span(),
                format!(
                    "committed({name}): no session `{name}`{}",
                    suggestion(name, &session_names)
                ),
            ));
        }
    }
    Ok(Decision {
        final_query: raw.final_query.clone(),
        anomaly_if,
        anomaly_witness,
        prevented_witness,
    })
}

fn check_ref(reference: &Ref, has_final: bool, sessions: &[Session]) -> Result<(), String> {
    match reference {
        Ref::Final { .. } if has_final => Ok(()),
        Ref::Final { .. } => Err(format!(
            "`{reference}` needs a final check query: add `final = \"SELECT ...\"` to [outcome]"
        )),
        Ref::Read { session, step, .. } => {
            let names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
            let Some(found) = sessions.iter().find(|s| &s.name == session) else {
                return Err(format!(
                    "`{reference}`: no session `{session}`{}",
                    suggestion(session, &names)
                ));
            };
            let steps: Vec<&str> = found.steps.iter().map(|s| s.name.as_str()).collect();
            if steps.contains(&step.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "`{reference}`: session `{session}` has no step `{step}`{}",
                    suggestion(step, &steps)
                ))
            }
        }
    }
}

fn validate_expectations(raw: &RawExpect, at: &Locator) -> Result<Vec<Expectation>, ScenarioError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (engine_name, levels) in raw {
        let table = engine_name.get_ref().trim();
        // `postgres`, or `postgres >= 16`: the engine, then an optional version constraint.
        let split = table
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(table.len());
        let (name, constraint) = table.split_at(split);
        let versions = match constraint.trim() {
            "" => None,
            constraint => Some(
                VersionReq::parse(constraint)
                    .map_err(|message| at.error(engine_name.span(), message))?,
            ),
        };
        let engine = engine_named(name, engine_name.span(), at)?;
        for (level_name, value) in levels {
            let level = level_named(level_name, at)?;
            if !seen.insert((engine, versions.clone(), level)) {
                return Err(at.error(
                    level_name.span(),
                    format!("[expect.\"{table}\"] {level} is expected twice"),
                ));
            }
            let expected = Expected::parse(value.get_ref())
                .map_err(|message| at.error(value.span(), message))?;
            out.push(Expectation {
                engine,
                versions: versions.clone(),
                level,
                expected,
                table: table.to_string(),
            });
        }
    }
    Ok(out)
}
