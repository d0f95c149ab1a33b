//! An event in words, with the tone each line should be shown in: the one description of an
//! event that the table, Markdown, Mermaid and SVG renderers all draw.

use crate::outcome::{session_list, step_phrase};
use crate::report::Report;
use crate::scenario::template::Part;
use crate::scenario::{
    display_name, until_key, ReplicaAction, Scenario, StepId, StepKind, Topology,
};
use crate::timeline::{
    last_verb, verb, DbError, EventKind, Reply, ResultSet, RetryReason, StepResult, Timeline,
};

/// How a line should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// The SQL.
    Plain,
    /// The narration.
    Narration,
    /// What a finished step returned.
    Result,
    /// A wait; renderers that can show it add an hourglass.
    Waiting,
    /// Sent late, behind an earlier wait of its session.
    Deferred,
    Resumed,
    Failed,
    Skipped,
    /// The session's application decided: to roll back and retry, or to give up.
    Decision,
}

/// Event `index` of a report: its session, and its lines with their tones.
#[derive(Debug, Clone)]
pub struct Described {
    pub session: usize,
    pub lines: Vec<(Tone, String)>,
}

impl Described {
    /// The first line in `tone`, if any.
    pub fn line(&self, tone: Tone) -> Option<&str> {
        self.lines
            .iter()
            .find(|(t, _)| *t == tone)
            .map(|(_, text)| text.as_str())
    }
}

pub fn describe(report: &Report, index: usize) -> Described {
    describe_in(&report.scenario, &report.timeline, index)
}

/// Event `index` of a timeline that may still be growing (step mode).
pub fn describe_in(scenario: &Scenario, timeline: &Timeline, index: usize) -> Described {
    let event = &timeline.events[index];
    let mut lines = Vec::new();
    let decided = matches!(event.kind, EventKind::Retried { .. } | EventKind::GaveUp);
    if decided {
        lines.push((Tone::Plain, event.sql.clone()));
    } else if !matches!(event.kind, EventKind::Resumed { .. }) {
        lines.push((Tone::Plain, flat(&sent(scenario, event.step, &event.sql))));
        let mut say = scenario.step(event.step).say.clone();
        if event.attempt > 1 {
            say.push_str(&format!(" (attempt {})", event.attempt));
        }
        lines.push((Tone::Narration, say));
    }
    if event.deferred {
        lines.push((
            Tone::Deferred,
            "↪ deferred: sent once its earlier wait ended".to_string(),
        ));
    }
    let until = scenario.step(event.step).kind == StepKind::Until;
    match &event.kind {
        EventKind::Done { result } => lines.push(result_line(scenario, &event.sql, result)),
        EventKind::Waiting { blocked_by } if until => lines.push((
            Tone::Waiting,
            format!(
                "waits for {} lease on {} to expire",
                owner(scenario, blocked_by),
                event.sql
            ),
        )),
        EventKind::Waiting { blocked_by } if pauses_replay(scenario, blocked_by) => {
            let what = match scenario.step(event.step).kind {
                StepKind::Replica => "the standby to replay that far".to_string(),
                _ => "the standby to apply the commit".to_string(),
            };
            lines.push((
                Tone::Waiting,
                format!(
                    "waits for {what} ({} paused its replay)",
                    session_list(scenario, blocked_by)
                ),
            ))
        }
        EventKind::Waiting { blocked_by } => lines.push((
            Tone::Waiting,
            format!("waits for {}", session_list(scenario, blocked_by)),
        )),
        EventKind::Resumed { result, .. } if until => {
            let waited = match result {
                StepResult::Reply(Reply {
                    waited_ms: Some(ms),
                    ..
                }) => format!(" after {ms} ms"),
                _ => String::new(),
            };
            lines.push((
                Tone::Resumed,
                format!("▶ {} is gone{waited}: the wait ends", event.sql),
            ));
            lines.push(result_line(scenario, &event.sql, result));
        }
        EventKind::Resumed { result, after } => {
            let what = match scenario.step(event.step).kind {
                StepKind::Replica => "the wait ends".to_string(),
                _ => format!("{} resumes", verb(&event.sql)),
            };
            let resumed = match after {
                Some(after) => format!(
                    "▶ {what} after #{} ({})",
                    after + 1,
                    step_phrase(scenario, timeline.events[*after].step)
                ),
                None => format!("▶ {} ends on its own (deadlock broken)", verb(&event.sql)),
            };
            lines.push((Tone::Resumed, resumed));
            lines.push(result_line(scenario, &event.sql, result));
        }
        EventKind::Skipped => {
            let gave_up = timeline.events[..index]
                .iter()
                .any(|e| e.step.session == event.step.session && e.kind == EventKind::GaveUp);
            let why = if gave_up {
                "– not sent: the session gave up"
            } else {
                "– skipped: the transaction was rolled back"
            };
            lines.push((Tone::Skipped, why.to_string()));
        }
        EventKind::TimedOut { after_ms } => lines.push((
            Tone::Failed,
            format!("✗ no answer and no lock wait after {after_ms} ms: cancelled, rolled back"),
        )),
        EventKind::Retried {
            attempt,
            from,
            reason,
        } => {
            let who = display_name(&scenario.sessions[event.step.session].name);
            let why = match reason {
                RetryReason::Failed => format!("An error to retry on: {who} rolls back"),
                RetryReason::NoRows => {
                    format!("No row matched, what it read had changed: {who} rolls back")
                }
            };
            let step = StepId {
                session: event.step.session,
                step: *from,
            };
            lines.push((Tone::Narration, why));
            lines.push((
                Tone::Decision,
                format!("↻ attempt {attempt} from {}", step_phrase(scenario, step)),
            ));
        }
        EventKind::GaveUp => {
            let who = display_name(&scenario.sessions[event.step.session].name);
            lines.push((
                Tone::Narration,
                format!("No row matched: {who} rolls back and stops"),
            ));
            lines.push((Tone::Decision, "✋ gives up".to_string()));
        }
        EventKind::NotSent { problem } => lines.push((
            Tone::Failed,
            format!("✗ not sent: {problem}; the scenario is broken"),
        )),
        EventKind::Stuck { blocked_by } => lines.push((
            Tone::Failed,
            format!(
                "✗ still waiting for {}, which has nothing left to run: cancelled, rolled back",
                session_list(scenario, blocked_by)
            ),
        )),
    }
    Described {
        session: event.step.session,
        lines,
    }
}

/// A step's text as the timeline shows it: SQL as sent, a Redis command after redis-cli's
/// prompt, so it is never mistaken for part of the transaction.
pub fn sent(scenario: &Scenario, step: StepId, text: &str) -> String {
    match scenario.step(step).kind {
        StepKind::Redis => format!("redis> {text}"),
        StepKind::Until => format!("redis> until {} expired", until_key(text).unwrap_or(text)),
        // A node of a multi-master cluster has appliers, not a replay (`galera/hold.rs`).
        StepKind::Replica if matches!(scenario.topology, Topology::MultiMaster(_)) => {
            let node = scenario.topology.node_name(scenario.step(step).node);
            match ReplicaAction::parse(text) {
                Some(ReplicaAction::Pause) => format!("node {node}> hold appliers"),
                Some(ReplicaAction::Resume) => format!("node {node}> release appliers"),
                _ => format!("node {node}> {text}"),
            }
        }
        StepKind::Replica => match ReplicaAction::parse(text) {
            Some(ReplicaAction::Pause) => "standby> pause replay".to_string(),
            Some(ReplicaAction::Resume) => "standby> resume replay".to_string(),
            Some(ReplicaAction::Wait(lsn)) => format!("standby> wait until replayed {lsn}"),
            None => format!("standby> {text}"),
        },
        // A statement on a standby, or on another node than its session's, says where it
        // went; on a multi-master cluster each session's lane names its node.
        StepKind::Sql => match scenario.topology.node_name(scenario.step(step).node) {
            "" | "primary" => text.to_string(),
            _ if matches!(scenario.topology, Topology::MultiMaster(_)) => text.to_string(),
            node => format!("{node}> {text}"),
        },
    }
}

/// A session's lane title: `John`, or with its node where the run has several: `John
/// (primary)`.
pub fn lane(scenario: &Scenario, session: usize) -> String {
    let name = display_name(&scenario.sessions[session].name);
    match (
        scenario.topology,
        scenario.topology.node_name(scenario.sessions[session].node),
    ) {
        (_, "") => name,
        (Topology::MultiMaster(_), node) => format!("{name} (node {node})"),
        (_, node) => format!("{name} ({node})"),
    }
}

/// Whether the sessions waited for are ones that pause a standby's replay.
fn pauses_replay(scenario: &Scenario, sessions: &[usize]) -> bool {
    !sessions.is_empty()
        && sessions.iter().all(|&session| {
            scenario.sessions[session].steps.iter().any(|step| {
                step.kind == StepKind::Replica
                    && matches!(step.sql.parts.as_slice(),
                        [Part::Text(text)] if ReplicaAction::parse(text) == Some(ReplicaAction::Pause))
            })
        })
}

/// `Alice's`, or `a` when nobody known holds it.
fn owner(scenario: &Scenario, sessions: &[usize]) -> String {
    match sessions {
        [] => "a".to_string(),
        sessions => format!("{}'s", session_list(scenario, sessions)),
    }
}

/// `(nil): bill-lock is held by Alice, 48 ms of lease left`.
fn reply_text(scenario: &Scenario, reply: &Reply) -> String {
    let mut text = reply.value.display();
    if let Some(held) = reply.held.as_ref().filter(|held| held.ttl_ms == -2) {
        // Gone between the refusal and the look at who held it.
        text.push_str(&format!(": {} was held, and is gone already", held.key));
    } else if let Some(held) = &reply.held {
        let by = match (held.by, &held.value) {
            (Some(session), _) => display_name(&scenario.sessions[session].name),
            (None, Some(value)) => format!("{value:?}"),
            (None, None) => "someone".to_string(),
        };
        let left = match held.ttl_ms {
            -1 => ", with no expiry".to_string(),
            ms if ms >= 0 => format!(", {ms} ms of lease left"),
            _ => String::new(),
        };
        text.push_str(&format!(": {} is held by {by}{left}", held.key));
    }
    text
}

fn result_line(scenario: &Scenario, sql: &str, result: &StepResult) -> (Tone, String) {
    match result {
        StepResult::Reply(reply) => (Tone::Result, format!("→ {}", reply_text(scenario, reply))),
        StepResult::Rows(set) => (Tone::Result, format!("→ {}", rows_text(set))),
        StepResult::Command { rows_affected } => {
            let mut text = match verb(sql).as_str() {
                "UPDATE" => format!("→ {} updated", count(*rows_affected)),
                "INSERT" => format!("→ {} inserted", count(*rows_affected)),
                "DELETE" => format!("→ {} deleted", count(*rows_affected)),
                "COMMIT" | "END" => "→ committed".to_string(),
                "ROLLBACK" | "ABORT" => "→ rolled back".to_string(),
                _ => "→ ok".to_string(),
            };
            if verb(sql) != last_verb(sql) && matches!(last_verb(sql).as_str(), "COMMIT" | "END") {
                text.push_str(", committed");
            }
            (Tone::Result, text)
        }
        StepResult::Failed(error) => (Tone::Failed, failure_text(error)),
    }
}

fn failure_text(error: &DbError) -> String {
    format!("✗ {} {} — rolled back", error.code, error.message)
}

fn count(n: u64) -> String {
    if n == 1 {
        "1 row".to_string()
    } else {
        format!("{n} rows")
    }
}

/// `total = 300`, `no rows`, or the first rows of several.
fn rows_text(set: &ResultSet) -> String {
    let row_text = |row: &Vec<Option<String>>| -> String {
        set.columns
            .iter()
            .zip(row)
            .map(|(c, v)| match v.as_deref() {
                // An empty string, or a function returning void (pg_advisory_xact_lock).
                Some("") => format!("{c} = ''"),
                Some(v) => format!("{c} = {v}"),
                None => format!("{c} = NULL"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match set.rows.as_slice() {
        [] => "no rows".to_string(),
        [row] => row_text(row),
        rows => {
            let shown: Vec<String> = rows
                .iter()
                .take(3)
                .map(|r| format!("({})", row_text(r)))
                .collect();
            let more = if rows.len() > 3 { ", …" } else { "" };
            format!("{} rows: {}{more}", rows.len(), shown.join(", "))
        }
    }
}

/// Collapses white space and cuts long SQL with an ellipsis.
/// SQL on one line, its runs of whitespace (newlines too) as one space; every word kept.
pub fn flat(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
