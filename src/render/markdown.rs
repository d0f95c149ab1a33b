//! `--format markdown`: the run as a Markdown table with its header and verdict, for notes and
//! docs.

use super::event::{describe, Tone};
use crate::report::Report;

pub fn markdown(report: &Report) -> String {
    let scenario = &report.scenario;
    let engine = &report.engine;
    let mut out = format!(
        "## {} — {}\n\n**anomaly** {} ({}) · **engine** {} {} ({}){} · **level** {} · **order** {}\n\n> {}\n\n",
        scenario.label(),
        scenario.title,
        scenario.anomaly,
        scenario.code,
        engine.name,
        engine.version,
        engine.detail,
        engine
            .redis
            .as_ref()
            .map(|redis| format!(" · **redis** {redis}"))
            .unwrap_or_default(),
        report.levels_text(),
        report.interleaving,
        scenario.story.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    out.push_str("| # |");
    for session in 0..scenario.sessions.len() {
        out.push_str(&format!(" {} |", super::event::lane(scenario, session)));
    }
    out.push_str("\n|---:|");
    out.push_str(&"---|".repeat(scenario.sessions.len()));
    out.push('\n');
    for index in 0..report.timeline.events.len() {
        let described = describe(report, index);
        let cell = described
            .lines
            .iter()
            .map(|(tone, text)| {
                let text = escape(text);
                match tone {
                    Tone::Plain => format!("`{}`", text.replace('`', "'")),
                    Tone::Narration => format!("*{text}*"),
                    Tone::Failed => format!("**{text}**"),
                    _ => text,
                }
            })
            .collect::<Vec<_>>()
            .join("<br>");
        out.push_str(&format!("| {} |", index + 1));
        for session in 0..scenario.sessions.len() {
            if session == described.session {
                out.push_str(&format!(" {cell} |"));
            } else {
                out.push_str(" |");
            }
        }
        out.push('\n');
    }
    let summary = report.verdict.summary(scenario);
    let (word, rest) = summary
        .split_once(" — ")
        .unwrap_or((report.verdict.word(), &summary));
    out.push_str(&format!("\n**Verdict: {word}** — {}\n", escape(rest)));
    if let Some(expected) = report.expected {
        let mark = if report.verdict.matches(&expected) {
            "✓ as expected".to_string()
        } else {
            format!("✗ got {}", report.outcome_text())
        };
        out.push_str(&format!("\nExpected: {expected} {mark}\n"));
    }
    out
}

/// Keeps a cell inside its table: pipes and angle brackets are escaped.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
