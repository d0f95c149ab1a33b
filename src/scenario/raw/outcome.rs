//! The outcome: the condition, the witnesses and what they refer to; the expectations.

use std::collections::HashSet;
use std::ops::Range;

use toml::Spanned;

use super::{engine_named, level_named, suggestion, Locator, RawExpect, RawFinal, RawOutcome};
use crate::scenario::expected::Expected;
use crate::scenario::expr::{self, Expr, Mention, Ref, Source, SyntaxError};
use crate::scenario::template::Template;
use crate::scenario::version::VersionReq;
use crate::scenario::{Decision, Expectation, Places, ScenarioError, Session};

/// The final queries a scenario defines, as references to them see it.
enum Finals<'a> {
    None,
    /// `final = "..."`.
    One,
    /// `[outcome.final]`, by name.
    Named(Vec<&'a str>),
}

pub(super) fn validate_outcome(
    raw: &RawOutcome,
    sessions: &[Session],
    at: &Locator,
) -> Result<Decision, ScenarioError> {
    let (final_query, named_finals) = final_queries(raw.final_query.as_ref(), at)?;
    let finals = match (&final_query, named_finals.as_slice()) {
        (Some(_), _) => Finals::One,
        (None, []) => Finals::None,
        (None, named) => Finals::Named(named.iter().map(|(name, _)| name.as_str()).collect()),
    };
    let in_string = |field: &Spanned<String>| {
        let span = field.span();
        move |e: SyntaxError| at.error_in_string(span.clone(), e.offset, e.message)
    };
    let mut anomaly_if =
        expr::parse(raw.anomaly_if.get_ref()).map_err(in_string(&raw.anomaly_if))?;
    let mut anomaly_witness = Template::parse(raw.anomaly.get_ref())
        .map_err(|e| at.error_in_string(raw.anomaly.span(), e.offset, e.message))?;
    let mut prevented_witness = Template::parse(raw.prevented.get_ref())
        .map_err(|e| at.error_in_string(raw.prevented.span(), e.offset, e.message))?;
    if let Finals::Named(_) = finals {
        anomaly_if.name_finals();
        anomaly_witness.holes_mut().for_each(Expr::name_finals);
        prevented_witness.holes_mut().for_each(Expr::name_finals);
    }
    expr::check_condition(&anomaly_if).map_err(in_string(&raw.anomaly_if))?;
    let check_mentions = |field: &Spanned<String>, exprs: Vec<&Expr>| {
        for expr in exprs {
            for (offset, mention) in expr.mentions() {
                check_mention(mention, &finals, sessions)
                    .map_err(|message| at.error_in_string(field.span(), offset, message))?;
            }
        }
        Ok::<_, ScenarioError>(())
    };
    check_mentions(&raw.anomaly_if, vec![&anomaly_if])?;
    check_mentions(&raw.anomaly, anomaly_witness.holes().collect())?;
    check_mentions(&raw.prevented, prevented_witness.holes().collect())?;
    let places = [
        places(at, &raw.anomaly_if, anomaly_if.offsets()),
        places(at, &raw.anomaly, anomaly_witness.offsets()),
        places(at, &raw.prevented, prevented_witness.offsets()),
    ];
    Ok(Decision {
        final_query,
        named_finals,
        anomaly_if,
        anomaly_witness,
        prevented_witness,
        at: places,
        final_at: raw
            .final_query
            .as_ref()
            .map(|raw| at.place(raw.span()))
            .unwrap_or_default(),
    })
}

/// Where `field` is written, and each of its expression parts at `offsets`.
fn places(at: &Locator, field: &Spanned<String>, offsets: Vec<usize>) -> Places {
    Places {
        start: at.place(field.span()),
        parts: offsets
            .into_iter()
            .map(|offset| (offset, at.place_in_string(field.span(), offset)))
            .collect(),
    }
}

type FinalQueries = (Option<String>, Vec<(String, String)>);

/// `final = "..."` as the single query, or `[outcome.final]`'s queries by name.
fn final_queries(
    raw: Option<&Spanned<RawFinal>>,
    at: &Locator,
) -> Result<FinalQueries, ScenarioError> {
    let Some(raw) = raw else {
        return Ok((None, Vec::new()));
    };
    let named = match raw.get_ref() {
        RawFinal::One(sql) => return Ok((Some(sql.clone()), Vec::new())),
        RawFinal::Named(named) => named,
    };
    if named.is_empty() {
        return Err(at.error(
            raw.span(),
            "[outcome.final] names no query: add one, like total = \"SELECT sum(balance) AS sum FROM accounts\"",
        ));
    }
    for name in named.keys() {
        if !is_name(name) {
            return Err(final_name_error(raw.span(), name, at));
        }
    }
    Ok((
        None,
        named
            .iter()
            .map(|(name, sql)| (name.clone(), sql.clone()))
            .collect(),
    ))
}

fn final_name_error(span: Range<usize>, name: &str, at: &Locator) -> ScenarioError {
    at.error(
        span,
        format!(
            "[outcome.final] `{name}`: a query's name is letters, digits, `_` and `-`, \
             starting with a letter or `_`, as conditions write it: final.{name}"
        ),
    )
}

/// A name as the condition language reads it: `balances`, `total_2`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_mention(mention: Mention, finals: &Finals, sessions: &[Session]) -> Result<(), String> {
    let session_names: Vec<&str> = sessions.iter().map(|s| s.name.as_str()).collect();
    let no_session =
        |name: &str| format!("no session `{name}`{}", suggestion(name, &session_names));
    match mention {
        Mention::Session(name) if session_names.contains(&name) => Ok(()),
        Mention::Session(name) => Err(format!("committed({name}): {}", no_session(name))),
        Mention::Step(step) => {
            let Some(found) = sessions.iter().find(|s| s.name == step.session) else {
                return Err(format!("`{step}`: {}", no_session(&step.session)));
            };
            let steps: Vec<&str> = found.steps.iter().map(|s| s.name.as_str()).collect();
            if steps.contains(&step.step.as_str()) {
                return Ok(());
            }
            Err(format!(
                "`{step}`: session `{}` has no step `{}`{}",
                step.session,
                step.step,
                suggestion(&step.step, &steps)
            ))
        }
        Mention::Final(reference) => check_final(reference, finals),
    }
}

fn check_final(reference: &Ref, finals: &Finals) -> Result<(), String> {
    let Source::Final(name) = &reference.source else {
        return Ok(());
    };
    match (finals, name) {
        (Finals::None, _) => Err(format!(
            "`{reference}` needs a final check query: add `final = \"SELECT ...\"` to [outcome]"
        )),
        (Finals::One, None) => Ok(()),
        (Finals::One, Some(_)) => Err(format!(
            "`{reference}`: the final query is not named (final = \"...\"), so its columns are \
             final.<column>; name queries in [outcome.final] to write final.<query>.<column>"
        )),
        (Finals::Named(names), None) => Err(format!(
            "`{reference}` names no query: [outcome.final] has {}; write final.{}",
            names.join(", "),
            names[0]
        )),
        (Finals::Named(names), Some(name)) if names.contains(&name.as_str()) => Ok(()),
        (Finals::Named(names), Some(name)) => Err(format!(
            "`{reference}`: [outcome.final] has no query `{name}`{}",
            suggestion(name, names)
        )),
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
