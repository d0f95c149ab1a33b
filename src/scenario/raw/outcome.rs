//! The outcome: the condition, the witnesses and what they refer to; the expectations.

use std::collections::HashSet;

use toml::Spanned;

use super::{engine_named, level_named, suggestion, Locator, RawExpect, RawOutcome};
use crate::scenario::expected::Expected;
use crate::scenario::expr::{self, Ref};
use crate::scenario::template::Template;
use crate::scenario::version::VersionReq;
use crate::scenario::{Decision, Expectation, ScenarioError, Session};

pub(super) fn validate_outcome(
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
        at: [
            at.place(raw.anomaly_if.span()),
            at.place(raw.anomaly.span()),
            at.place(raw.prevented.span()),
        ],
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

pub(super) fn validate_expectations(
    raw: &RawExpect,
    at: &Locator,
) -> Result<Vec<Expectation>, ScenarioError> {
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
