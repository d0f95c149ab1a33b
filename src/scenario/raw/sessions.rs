//! Sessions, their steps and retries, and the interleavings of their steps.

use toml::Spanned;

use super::{
    check_name, locate_step, per_engine, suggestion, File, Locator, RawInterleaving, RawSession,
};
use crate::scenario::template::SqlTemplate;
use crate::scenario::{Interleaving, NoRows, Retry, RetryOn, ScenarioError, Session, Step, StepId};

pub(super) fn validate_sessions(raw: &File, at: &Locator) -> Result<Vec<Session>, ScenarioError> {
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
            let holes = Holes {
                session: name,
                earlier: &earlier,
                later: &later,
            };
            let sql = holes.parse(&raw_step.sql, at)?;
            let mut sql_on = Vec::new();
            for (engine, variant) in per_engine(&raw_step.sql_on, at)? {
                sql_on.push((engine, holes.parse(variant, at)?));
            }
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
                sql_on,
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
    Ok(sessions)
}

/// The steps a step's SQL may take values from (those before it in its session), and those it
/// may not (the ones after).
struct Holes<'a> {
    session: &'a str,
    earlier: &'a [&'a str],
    later: &'a [&'a str],
}

impl Holes<'_> {
    /// Step SQL with its `${step.column}` holes resolved, or the place of the first bad one.
    fn parse(&self, sql: &Spanned<String>, at: &Locator) -> Result<SqlTemplate, ScenarioError> {
        let name = self.session;
        SqlTemplate::parse(sql.get_ref(), |hole| {
            if let Some(index) = self.earlier.iter().position(|s| *s == hole) {
                Ok(index)
            } else if self.later.contains(&hole) {
                Err(format!(
                    "`{hole}` comes later in session `{name}`; a step can use only values read before it"
                ))
            } else {
                Err(format!(
                    "session `{name}` has no step `{hole}`{}",
                    suggestion(hole, self.earlier)
                ))
            }
        })
        .map_err(|e| at.error_in_string(sql.span(), e.offset, e.message))
    }
}

pub(super) fn validate_interleavings(
    raw: &File,
    sessions: &[Session],
    at: &Locator,
) -> Result<Vec<Interleaving>, ScenarioError> {
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
        let steps = validate_interleaving(raw_interleaving, sessions, at)?;
        interleavings.push(Interleaving {
            name: raw_interleaving.name.get_ref().clone(),
            steps,
        });
    }
    Ok(interleavings)
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
