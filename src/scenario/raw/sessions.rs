//! Sessions, their steps and retries, and the interleavings of their steps.

use toml::Spanned;

use super::steps::{node_named, step_kind};
use super::{
    check_name, level_named, locate_step, per_engine, suggestion, File, Locator, RawInterleaving,
    RawSession,
};
use crate::level::Level;
use crate::scenario::template::SqlTemplate;
use crate::scenario::{
    Interleaving, NoRows, Pinned, Retry, RetryOn, ScenarioError, Session, Step, StepId, StepKind,
    Topology, PRIMARY,
};

pub(super) fn validate_sessions(
    raw: &File,
    topology: Topology,
    at: &Locator,
) -> Result<Vec<Session>, ScenarioError> {
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
        let session_node = match &raw_session.node {
            None => PRIMARY,
            Some(node) => node_named(node, topology, at)?,
        };
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
            let (kind, text) = step_kind(raw_step, name, at)?;
            let node = match &raw_step.node {
                None => session_node,
                Some(node) => node_named(node, topology, at)?,
            };
            if let (Topology::MultiMaster(_), Some(raw_node)) = (topology, &raw_step.node) {
                if node != session_node {
                    return Err(at.error(
                        raw_node.span(),
                        format!(
                            "step `{name}.{step_name}` names another node than its session's: \
                             on a multi-master cluster each session has one connection, to its \
                             node; give the step a session of its own"
                        ),
                    ));
                }
            }
            let on_a_replica =
                topology.is_standby(node) || matches!(topology, Topology::MultiMaster(_));
            if kind == StepKind::Replica && !on_a_replica {
                return Err(at.error(
                    text.span(),
                    format!(
                        "step `{name}.{step_name}` acts on a replica, so it must go to a standby \
                         (node = \"standby\", with topology = \"primary-standby\")"
                    ),
                ));
            }
            let sql = holes.parse(text, at)?;
            let mut sql_on = Vec::new();
            for (engine, variant) in per_engine(&raw_step.sql_on, at)? {
                sql_on.push((engine, holes.parse(variant, at)?));
            }
            let no_rows = match &raw_step.no_rows {
                None => None,
                Some(answer) => match answer.get_ref().as_str() {
                    "retry" => Some(NoRows::Retry),
                    "give-up" => Some(NoRows::GiveUp),
                    // What a fix writes to undo the scenario's answer: the session goes on.
                    "go-on" => None,
                    other => {
                        let answers = ["retry", "give-up", "go-on"];
                        return Err(at.error(
                            answer.span(),
                            format!(
                                "no_rows must be `retry`, `give-up` or `go-on`, found `{other}`{}",
                                suggestion(other, &answers)
                            ),
                        ));
                    }
                },
            };
            steps.push(Step {
                name: step_name.clone(),
                kind,
                sql,
                sql_on,
                say: raw_step.say.clone(),
                node,
                no_rows,
            });
        }
        let retry = validate_retry(raw_session, &steps, at)?;
        let pinned = validate_pinned(raw_session, at)?;
        sessions.push(Session {
            name: name.clone(),
            node: session_node,
            steps,
            retry,
            pinned,
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
        .map(|mut template| {
            template.place_holes(|offset| at.place_in_string(sql.span(), offset));
            template
        })
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

/// The session's own level, read-only and deferrable. Deferrable means something only for a
/// serializable read-only transaction, so it needs `read_only` and no other pinned level.
fn validate_pinned(raw: &RawSession, at: &Locator) -> Result<Pinned, ScenarioError> {
    let level = match &raw.level {
        None => None,
        Some(name) => Some(level_named(name, at)?),
    };
    let read_only = raw.read_only.unwrap_or(false);
    let deferrable = raw.deferrable.as_ref().is_some_and(|d| *d.get_ref());
    if let Some(flag) = raw.deferrable.as_ref().filter(|_| deferrable) {
        if !read_only {
            return Err(at.error(
                flag.span(),
                "deferrable applies to a read-only transaction: add read_only = true",
            ));
        }
        if let Some(level) = level.filter(|l| *l != Level::Serializable) {
            return Err(at.error(
                flag.span(),
                format!(
                    "deferrable applies only at serializable; session `{}` pins {level}",
                    raw.name.get_ref()
                ),
            ));
        }
    }
    Ok(Pinned {
        level,
        read_only,
        deferrable,
    })
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

#[cfg(test)]
mod tests {
    use crate::level::Level;
    use crate::scenario::{Pinned, Scenario};

    const TEXT: &str = r#"id = "pins"
title = "t"
anomaly = "a"
code = "c"
story = "s"
setup = "CREATE TABLE t (v INTEGER)"

[[session]]
name = "alice"
level = "serializable"
read_only = true
deferrable = true
[[session.step]]
name = "read"
sql = "SELECT v FROM t"
say = "."

[[session]]
name = "john"
[[session.step]]
name = "write"
sql = "UPDATE t SET v = 1"
say = "."

[[interleaving]]
name = "only"
steps = ["alice.read", "john.write"]

[outcome]
anomaly_if = "alice.read.v = 1"
anomaly = "a"
prevented = "p"

[[fix]]
id = "pin-john"
title = "t"
how = "h"
prefer = "p"

[[fix.session]]
name = "john"
level = "repeatable-read"
"#;

    fn check_error(from: &str, to: &str, expected: &str) {
        assert!(TEXT.contains(from), "TEXT has no `{from}`");
        let error = Scenario::parse(&TEXT.replacen(from, to, 1), "pins.toml").unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn a_session_pins_its_level_and_a_fix_can_pin_another() {
        let scenario = Scenario::parse(TEXT, "pins.toml").unwrap();
        let pinned = Pinned {
            level: Some(Level::Serializable),
            read_only: true,
            deferrable: true,
        };
        assert_eq!(scenario.sessions[0].pinned, pinned);
        assert!(!scenario.sessions[1].pinned.any());
        let fixed = scenario.with_fix("pin-john").unwrap();
        assert_eq!(fixed.sessions[0].pinned, pinned);
        assert_eq!(fixed.sessions[1].pinned.level, Some(Level::RepeatableRead));
    }

    #[test]
    fn an_unknown_level_suggests_the_closest() {
        check_error(
            "level = \"serializable\"",
            "level = \"serialisable\"",
            "pins.toml:10:9: unknown level `serialisable`; did you mean `serializable`?",
        );
        check_error(
            "level = \"repeatable-read\"",
            "level = \"repeatable\"",
            "pins.toml:42:9: unknown level `repeatable`; did you mean `repeatable-read`?",
        );
    }

    #[test]
    fn deferrable_needs_a_serializable_read_only_transaction() {
        check_error(
            "read_only = true\n",
            "",
            "pins.toml:11:14: deferrable applies to a read-only transaction: add read_only = true",
        );
        check_error(
            "level = \"serializable\"",
            "level = \"read-committed\"",
            "pins.toml:12:14: deferrable applies only at serializable; session `alice` pins read committed",
        );
    }

    #[test]
    fn a_fix_names_a_session_that_exists() {
        check_error(
            "[[fix.session]]\nname = \"john\"",
            "[[fix.session]]\nname = \"jon\"",
            "pins.toml:41:8: no session `jon`; did you mean `john`?",
        );
    }
}
