//! `--format mermaid`: a `sequenceDiagram` with the sessions and the database as participants,
//! the statements as messages, what they returned as replies, notes for waits, and the verdict
//! as a final note.

use super::event::{describe, Tone};
use crate::report::Report;
use crate::scenario::{display_name, Topology};
use crate::timeline::EventKind;

pub fn mermaid(report: &Report) -> String {
    let scenario = &report.scenario;
    let names: Vec<String> = scenario
        .sessions
        .iter()
        .map(|s| display_name(&s.name))
        .collect();
    let database = report.engine.name.label();
    let mut out = String::from("sequenceDiagram\n");
    out.push_str(&format!(
        "    title {} at {} ({} {})\n",
        text(&scenario.label()),
        text(&report.levels_text()),
        report.engine.name,
        report.engine.version
    ));
    // The database in the middle, the sessions on either side of it.
    let half = names.len().div_ceil(2);
    let participant = |session: usize| match scenario.topology {
        Topology::Single => format!("    participant {}\n", id(&names[session])),
        _ => format!(
            "    participant {} as {}\n",
            id(&names[session]),
            text(&super::event::lane(scenario, session))
        ),
    };
    for session in 0..half {
        out.push_str(&participant(session));
    }
    out.push_str(&format!("    participant DB as {database}\n"));
    for session in half..names.len() {
        out.push_str(&participant(session));
    }
    for (index, event) in report.timeline.events.iter().enumerate() {
        let described = describe(report, index);
        let who = id(&names[described.session]);
        let sql = described.line(Tone::Plain).map(text);
        match &event.kind {
            EventKind::Done { .. } => {
                if let Some(sql) = &sql {
                    out.push_str(&format!("    {who}->>DB: {sql}\n"));
                }
                reply(&mut out, &who, &described);
            }
            EventKind::Waiting { .. } => {
                if let Some(sql) = &sql {
                    out.push_str(&format!("    {who}->>DB: {sql}\n"));
                }
                // No hourglass, as in the SVG: projectors often lack an emoji font.
                let mut waits = described.line(Tone::Waiting).map(text).unwrap_or_default();
                if event.deferred {
                    waits.push_str(" (deferred: sent once its earlier wait ended)");
                }
                out.push_str(&format!("    Note over {who},DB: {waits}\n"));
            }
            EventKind::Resumed { .. } => {
                let resumed = described.line(Tone::Resumed).map(text).unwrap_or_default();
                out.push_str(&format!("    Note over {who},DB: {resumed}\n"));
                reply(&mut out, &who, &described);
            }
            EventKind::Skipped => {
                let sql = sql.unwrap_or_default();
                out.push_str(&format!(
                    "    Note over {who}: skipped {sql} (rolled back)\n"
                ));
            }
            EventKind::Retried { .. } | EventKind::GaveUp => {
                let why = described.line(Tone::Narration).unwrap_or_default();
                let decided = described.line(Tone::Decision).unwrap_or_default();
                let decided = text(&format!("{why}. {decided}"));
                out.push_str(&format!("    {who}->>DB: ROLLBACK\n"));
                out.push_str(&format!("    Note over {who}: {decided}\n"));
            }
            EventKind::TimedOut { .. } | EventKind::Stuck { .. } | EventKind::NotSent { .. } => {
                let failed = described.line(Tone::Failed).map(text).unwrap_or_default();
                out.push_str(&format!("    DB--x{who}: {failed}\n"));
            }
        }
    }
    let span = if names.len() > 1 {
        format!("{},{}", id(&names[0]), id(&names[names.len() - 1]))
    } else {
        id(&names[0])
    };
    out.push_str(&format!(
        "    Note over {span}: {}\n",
        text(&report.verdict.summary(scenario))
    ));
    out
}

/// Several runs (`--level all`): one document holds one Mermaid diagram, so this is Markdown,
/// a heading and a fenced `mermaid` block per run, which Markdown viewers that draw Mermaid
/// (GitHub, GitLab, mdBook with its plugin) draw one by one.
pub fn mermaid_markdown(reports: &[Report]) -> String {
    reports
        .iter()
        .map(|report| {
            format!(
                "## {} at {}\n\n```mermaid\n{}```\n",
                report.scenario.label(),
                report.levels_text(),
                mermaid(report)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the database answered: a reply, or a crossed reply for a failure.
fn reply(out: &mut String, who: &str, described: &super::event::Described) {
    if let Some(result) = described.line(Tone::Result) {
        let result = result.trim_start_matches("→ ");
        out.push_str(&format!("    DB-->>{who}: {}\n", text(result)));
    } else if let Some(failed) = described.line(Tone::Failed) {
        out.push_str(&format!("    DB--x{who}: {}\n", text(failed)));
    }
}

/// A participant id: letters, digits and underscores.
fn id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

/// Message text Mermaid reads as text: `;` would end the statement and `#` starts an entity
/// code, so both are written as entity codes; line breaks become spaces.
fn text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn message_text_escapes_what_mermaid_reads_as_syntax() {
        assert_eq!(text("BEGIN; SELECT 1 # x"), "BEGIN#59; SELECT 1 #35; x");
        assert_eq!(text("a\nb"), "a b");
    }
}
