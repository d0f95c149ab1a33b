//! Fixes: each `[[fix]]` applied to the raw file, and the result validated as a variant.

use toml::Spanned;

use super::{
    check_name, engine_named, level_named, locate_step, suggestion, validate_base, File, Locator,
    RawFix, RawFixStep, RawSession, RawStep,
};
use crate::scenario::{Fix, FixInfo, Scenario, ScenarioError};

pub(super) fn validate(raw: File, at: &Locator) -> Result<Scenario, ScenarioError> {
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

/// The file as it reads with `fix` in place: its steps changed or removed (and removed from
/// every interleaving), its setup appended, its sessions' retries set, its expectations.
fn apply_fix(base: &File, fix: &RawFix, at: &Locator) -> Result<File, ScenarioError> {
    let mut file = base.clone();
    file.fix.clear();
    if let Some(title) = &fix.story_title {
        file.title = title.clone();
    }
    if let Some(story) = &fix.story {
        file.story = story.clone();
    }
    append_setup(&mut file, fix);
    for change in &fix.step {
        let reference = change.step.get_ref();
        if let Some(after) = &change.after {
            add_step(&mut file, change, after, at)?;
            continue;
        }
        let (session, step) = raw_step_position(&file.session, &change.step, at)?;
        if change.remove {
            let changed = change.sql.is_some()
                || change.redis.is_some()
                || change.until.is_some()
                || change.replica.is_some()
                || change.node.is_some()
                || !change.sql_on.is_empty()
                || change.say.is_some()
                || change.no_rows.is_some();
            if changed {
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
        if change.sql.is_some()
            || change.redis.is_some()
            || change.until.is_some()
            || change.replica.is_some()
        {
            // What the step sends is replaced on every engine: the old variants were of the
            // old SQL. A step that now goes to Redis sends no SQL.
            target.sql = change.sql.clone();
            target.redis = change.redis.clone();
            target.until = change.until.clone();
            target.replica = change.replica.clone();
            target.sql_on.clear();
        }
        if change.node.is_some() {
            target.node = change.node.clone();
        }
        for (engine, sql) in &change.sql_on {
            target.sql_on.insert(engine.clone(), sql.clone());
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
        if change.node.is_some() {
            target.node = change.node.clone();
        }
        if change.retry_on.is_some() {
            target.retry_on = change.retry_on.clone();
        }
        if change.retry_from.is_some() {
            target.retry_from = change.retry_from.clone();
        }
        if change.attempts.is_some() {
            target.attempts = change.attempts.clone();
        }
        if change.level.is_some() {
            target.level = change.level.clone();
        }
        if change.read_only.is_some() {
            target.read_only = change.read_only;
        }
        if change.deferrable.is_some() {
            target.deferrable = change.deferrable.clone();
        }
    }
    if let Some(outcome) = &fix.outcome {
        if let Some(anomaly) = &outcome.anomaly {
            file.outcome.anomaly = anomaly.clone();
        }
        if let Some(prevented) = &outcome.prevented {
            file.outcome.prevented = prevented.clone();
        }
    }
    if !fix.interleaving.is_empty() {
        file.interleaving = fix.interleaving.clone();
    }
    file.expect = fix.expect.clone();
    Ok(file)
}

/// A step the fix adds (`step = "john.wait"`, `after = "john.try"`): placed after `after` in
/// its session, and right after it in every interleaving that has it.
fn add_step(
    file: &mut File,
    change: &RawFixStep,
    after: &Spanned<String>,
    at: &Locator,
) -> Result<(), ScenarioError> {
    let (session, step) = raw_step_position(&file.session, after, at)?;
    let reference = change.step.get_ref().trim();
    let Some((session_name, step_name)) = reference.split_once('.') else {
        return Err(at.error(
            change.step.span(),
            format!("`{reference}` must name a session and a step, like john.wait"),
        ));
    };
    let after_session = file.session[session].name.get_ref().clone();
    if session_name != after_session {
        return Err(at.error(
            change.step.span(),
            format!("`{reference}` is added after `{}`, a step of session `{after_session}`: a new step joins the session it follows", after.get_ref().trim()),
        ));
    }
    if file.session[session]
        .step
        .iter()
        .any(|s| s.name.get_ref() == step_name)
    {
        return Err(at.error(
            change.step.span(),
            format!("`{reference}` already exists; without `after` the fix changes it"),
        ));
    }
    let Some(say) = &change.say else {
        return Err(at.error(
            change.step.span(),
            format!("the new step `{reference}` needs its narration, `say`"),
        ));
    };
    if change.remove {
        return Err(at.error(
            change.step.span(),
            format!("`{reference}` is added; it can't also be removed"),
        ));
    }
    let name = Spanned::new(
        change.step.span().start..change.step.span().end,
        step_name.to_string(),
    );
    let new = RawStep {
        name,
        sql: change.sql.clone(),
        redis: change.redis.clone(),
        until: change.until.clone(),
        replica: change.replica.clone(),
        node: change.node.clone(),
        sql_on: change.sql_on.clone(),
        say: say.clone(),
        no_rows: change.no_rows.clone(),
    };
    file.session[session].step.insert(step + 1, new);
    let after_name = after.get_ref().trim();
    for interleaving in &mut file.interleaving {
        if let Some(position) = interleaving
            .steps
            .iter()
            .position(|s| s.get_ref().trim() == after_name)
        {
            interleaving.steps.insert(
                position + 1,
                Spanned::new(change.step.span(), reference.to_string()),
            );
        }
    }
    Ok(())
}

/// The fix's setup after the scenario's, on every engine: an engine with a variant of either
/// gets the scenario's setup for it (or the plain one) followed by the fix's (or the plain one).
fn append_setup(file: &mut File, fix: &RawFix) {
    if fix.setup.is_none() && fix.setup_on.is_empty() {
        return;
    }
    let base = file.setup.get_ref().clone();
    let base_on = std::mem::take(&mut file.setup_on);
    *file.setup.get_mut() = appended(&base, fix.setup.as_deref());
    let engines = base_on.keys().chain(
        fix.setup_on
            .keys()
            .filter(|engine| !base_on.contains_key(engine.get_ref().as_str())),
    );
    file.setup_on = engines
        .map(|engine| {
            let name = engine.get_ref().as_str();
            let scenario_setup = base_on.get(name).unwrap_or(&base);
            let fix_setup = fix.setup_on.get(name).or(fix.setup.as_ref());
            (
                engine.clone(),
                appended(scenario_setup, fix_setup.map(String::as_str)),
            )
        })
        .collect();
}

/// `setup`, then `more` on a line of its own.
fn appended(setup: &str, more: Option<&str>) -> String {
    match more {
        Some(more) => format!("{}\n{}", setup.trim_end(), more),
        None => setup.to_string(),
    }
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
