//! `--format json`: one object per run, or an array of them for `--level all`.

use serde_json::{json as value, Value};

use crate::outcome::{Cause, Verdict};
use crate::report::Report;
use crate::scenario::{Scenario, StepId, StepKind, Topology};
use crate::timeline::{EventKind, ResultSet, StepResult, Timeline};

/// The version of every JSON document the tool prints (`docs/json-schema/`): 2 since result
/// sets are `columns` and `rows` arrays and every document is an object.
pub const SCHEMA_VERSION: u32 = 2;

/// `fields` after a `schema_version`, as the object every JSON document is.
pub(super) fn versioned(fields: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("schema_version".into(), SCHEMA_VERSION.into());
    if let Value::Object(fields) = fields {
        out.extend(fields);
    }
    Value::Object(out)
}

/// One run as a pretty-printed JSON object.
pub fn json(report: &Report) -> String {
    pretty(&versioned(object(report)))
}

/// Several runs (`--level all`) under `runs`.
pub fn json_all(reports: &[Report]) -> String {
    pretty(&versioned(value!({
        "runs": reports.iter().map(object).collect::<Vec<_>>(),
    })))
}

pub(super) fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn object(report: &Report) -> Value {
    let mut out = run_object(report);
    if let (Value::Object(out), topology) = (&mut out, report.scenario.topology) {
        if topology != Topology::Single {
            out.insert("topology".into(), value!(topology));
        }
    }
    if let (Value::Object(out), true) = (&mut out, report.any_pinned()) {
        out.insert("sessions".into(), sessions(report));
    }
    out
}

/// Each session's level, when one pins its own: `{"name": "alice", "level": {"requested":
/// ..., "effective": ...}, "pinned": true, "read_only": true, "deferrable": true}`.
fn sessions(report: &Report) -> Value {
    let names = report.scenario.sessions.iter().map(|s| &s.name);
    Value::Array(
        names
            .zip(&report.sessions)
            .map(|(name, level)| {
                value!({
                    "name": name,
                    "level": { "requested": level.requested, "effective": level.effective },
                    "pinned": level.pinned,
                    "read_only": level.read_only,
                    "deferrable": level.deferrable,
                })
            })
            .collect(),
    )
}

fn run_object(report: &Report) -> Value {
    let scenario = &report.scenario;
    let verdict = &report.verdict;
    value!({
        "scenario": scenario.id,
        "fix": scenario.fix_id(),
        "title": scenario.title,
        "anomaly": { "name": scenario.anomaly, "code": scenario.code },
        "engine": report.engine,
        "level": { "requested": report.requested, "effective": report.effective },
        "interleaving": report.interleaving,
        "verdict": verdict.word(),
        "prevented_by": verdict.finding.mechanism(),
        "cause": cause(scenario, verdict),
        "summary": verdict.summary(scenario),
        "witness": verdict.witness,
        "expected": report.expected.map(|e| e.to_string()),
        "matches_expectation": report.matches_expectation(),
        "timeline": report.timeline.events.iter().enumerate().map(|(index, event)| {
            let step = scenario.step(event.step);
            // A Redis step's text is no SQL: it goes under its own name.
            let sent = match step.kind {
                StepKind::Sql => "sql",
                StepKind::Redis => "redis",
                StepKind::Until => "until",
                StepKind::Replica => "replica",
            };
            let mut out = value!({
                "position": index + 1,
                "session": scenario.sessions[event.step.session].name,
                "step": step.name,
            });
            out[sent] = value!(event.sql);
            if scenario.topology != Topology::Single {
                out["node"] = value!(scenario.topology.nodes()[step.node]);
            }
            out["attempt"] = value!(event.attempt);
            let fields = event_fields(scenario, event.step.session, &event.kind);
            if let (Value::Object(out), Value::Object(fields)) = (&mut out, fields) {
                out.extend(fields);
                if event.deferred {
                    out.insert("deferred".into(), Value::Bool(true));
                }
            }
            out
        }).collect::<Vec<_>>(),
        "final_state": final_state(&report.timeline),
    })
}

/// The final query's rows; with `[outcome.final]`, each query's rows by name.
fn final_state(timeline: &Timeline) -> Value {
    if timeline.named_finals.is_empty() {
        return timeline.final_state.as_ref().map_or(Value::Null, rows);
    }
    Value::Object(
        timeline
            .named_finals
            .iter()
            .map(|(name, set)| (name.clone(), rows(set)))
            .collect(),
    )
}

/// What broke a run that ended in an error: the step and its failure, or the reference.
fn cause(scenario: &Scenario, verdict: &Verdict) -> Value {
    if !verdict.is_error() {
        return Value::Null;
    }
    let step = |id: &StepId| scenario.step_name(*id);
    match &verdict.cause {
        Some(Cause::Failed { step: id, error }) => value!({
            "kind": "failed",
            "step": step(id),
            "error_kind": error.kind,
            "code": error.code,
            "message": error.message,
        }),
        Some(Cause::TimedOut { step: id, after_ms }) => value!({
            "kind": "timed-out",
            "step": step(id),
            "after_ms": after_ms,
        }),
        Some(Cause::Broken { message }) => value!({ "kind": "reference", "message": message }),
        _ => Value::Null,
    }
}

fn names(scenario: &Scenario, sessions: &[usize]) -> Vec<String> {
    sessions
        .iter()
        .map(|s| scenario.sessions[*s].name.clone())
        .collect()
}

fn event_fields(scenario: &Scenario, session: usize, kind: &EventKind) -> Value {
    match kind {
        EventKind::Done { result } => {
            value!({ "event": "done", "result": result_value(scenario, result) })
        }
        EventKind::Waiting { blocked_by } => {
            value!({ "event": "waiting", "blocked_by": names(scenario, blocked_by) })
        }
        EventKind::Resumed { result, after } => value!({
            "event": "resumed",
            "result": result_value(scenario, result),
            "released_by_position": after.map(|a| a + 1),
        }),
        EventKind::Skipped => value!({ "event": "skipped" }),
        EventKind::TimedOut { after_ms } => value!({ "event": "timed-out", "after_ms": after_ms }),
        EventKind::Stuck { blocked_by } => {
            value!({ "event": "stuck", "blocked_by": names(scenario, blocked_by) })
        }
        EventKind::Retried {
            attempt,
            from,
            reason,
        } => value!({
            "event": "retried",
            "attempt": attempt,
            "from_step": scenario.sessions[session].steps[*from].name,
            "reason": reason,
        }),
        EventKind::GaveUp => value!({ "event": "gave-up" }),
        EventKind::NotSent { problem } => value!({ "event": "not-sent", "problem": problem }),
    }
}

fn result_value(scenario: &Scenario, result: &StepResult) -> Value {
    match result {
        StepResult::Reply(reply) => {
            let mut value = value!({ "type": "reply", "value": reply.value });
            if let Some(held) = &reply.held {
                value["held"] = value!({
                    "key": held.key,
                    "by": held.by.map(|s| &scenario.sessions[s].name),
                    "value": held.value,
                    "ttl_ms": held.ttl_ms,
                });
            }
            if let Some(ms) = reply.waited_ms {
                value["waited_ms"] = value!(ms);
            }
            value
        }
        StepResult::Rows(set) => {
            let mut value = value!({
                "type": "rows",
                "columns": set.columns,
                "rows": rows(set)["rows"],
            });
            // A step of several statements: every set it returned, in order, the last too.
            if !set.earlier.is_empty() {
                let all: Vec<Value> = set.earlier.iter().chain([set]).map(rows).collect();
                value["result_sets"] = Value::Array(all);
            }
            value
        }
        StepResult::Command { rows_affected } => {
            value!({ "type": "command", "rows_affected": rows_affected })
        }
        StepResult::Failed(error) => value!({
            "type": "error",
            "kind": error.kind,
            "code": error.code,
            "message": error.message,
        }),
    }
}

/// A result set as its columns in order and its rows as arrays in the same order, so that two
/// columns of one name (`SELECT 1 AS one, 2 AS one`) both stay.
fn rows(set: &ResultSet) -> Value {
    let rows: Vec<Value> = set
        .rows
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|value| value.clone().map_or(Value::Null, json_scalar))
                    .collect(),
            )
        })
        .collect();
    value!({ "columns": set.columns, "rows": rows })
}

/// Numbers stay numbers; everything else is text.
fn json_scalar(text: String) -> Value {
    if let Ok(int) = text.parse::<i64>() {
        return Value::from(int);
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() => Value::from(float),
        _ => Value::String(text),
    }
}
