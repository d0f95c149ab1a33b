//! `--format svg`: a self-contained swimlane picture for slides. One lane per session, one box
//! per event in order, a bar for the time a step waited (up to the row where it resumed), red
//! for failures, the values read on the boxes, and a verdict banner.

use std::fmt::Write;

use super::event::{describe, shorten, Tone};
use crate::report::Report;
use crate::scenario::display_name;
use crate::timeline::EventKind;

const WIDTH: f64 = 1000.0;
const MARGIN: f64 = 24.0;
const ROW: f64 = 70.0;
const BOX: f64 = 60.0;
const HEADER: f64 = 150.0;
const LANE_HEADER: f64 = 34.0;

const INK: &str = "#1f2933";
const MUTED: &str = "#616e7c";
const RED: &str = "#c62828";
const GREEN: &str = "#2e7d32";
const AMBER: &str = "#e09b00";
const BLUE: &str = "#1565c0";

pub fn svg(report: &Report) -> String {
    let scenario = &report.scenario;
    let n_sessions = scenario.sessions.len().max(1);
    let n_events = report.timeline.events.len();
    let lane = (WIDTH - 2.0 * MARGIN) / n_sessions as f64;
    let top = HEADER + LANE_HEADER;
    let height = top + n_events as f64 * ROW + MARGIN;
    let mut out = open(WIDTH, height);

    // Title, what ran where, and the verdict banner.
    let engine = &report.engine;
    text(
        &mut out,
        MARGIN,
        34.0,
        22.0,
        INK,
        "bold",
        &format!("{} — {}", scenario.label(), scenario.title),
    );
    text(
        &mut out,
        MARGIN,
        58.0,
        13.0,
        MUTED,
        "normal",
        &format!(
            "{} ({}) · {} {} ({}){} · {}",
            scenario.anomaly,
            scenario.code,
            engine.name,
            engine.version,
            engine.detail,
            engine
                .redis
                .as_ref()
                .map(|redis| format!(" + {redis}"))
                .unwrap_or_default(),
            report.levels_text()
        ),
    );
    let (banner, fill) = if report.verdict.finding.mechanism().is_none() {
        ("#fdecea", RED)
    } else {
        ("#e8f5e9", GREEN)
    };
    let _ = writeln!(
        out,
        r#"<rect x="{MARGIN}" y="72" width="{}" height="56" rx="8" fill="{banner}" stroke="{fill}"/>"#,
        WIDTH - 2.0 * MARGIN
    );
    let summary = report.verdict.summary(scenario);
    let max_chars = ((WIDTH - 2.0 * MARGIN - 24.0) / 7.2) as usize;
    for (i, line) in super::table::wrap(&summary, max_chars)
        .iter()
        .take(2)
        .enumerate()
    {
        let weight = if i == 0 { "bold" } else { "normal" };
        text(
            &mut out,
            MARGIN + 12.0,
            95.0 + i as f64 * 20.0,
            14.0,
            fill,
            weight,
            line,
        );
    }

    // Lanes.
    for (i, session) in scenario.sessions.iter().enumerate() {
        let x = MARGIN + i as f64 * lane;
        let shade = if i % 2 == 0 { "#f5f7fa" } else { "#eef2f7" };
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{HEADER}" width="{lane}" height="{}" fill="{shade}"/>"#,
            height - HEADER - MARGIN / 2.0
        );
        text(
            &mut out,
            x + 12.0,
            HEADER + 23.0,
            16.0,
            INK,
            "bold",
            &display_name(&session.name),
        );
    }

    // A bar from each wait to the row where its step resumed (or to the end).
    for (index, event) in report.timeline.events.iter().enumerate() {
        if !matches!(event.kind, EventKind::Waiting { .. }) {
            continue;
        }
        let end = report.timeline.events[index + 1..]
            .iter()
            .position(|later| later.step == event.step)
            .map_or(n_events - 1, |offset| index + 1 + offset);
        // In the gutter right of the boxes, clear of the row numbers on the left.
        let x = MARGIN + (event.step.session + 1) as f64 * lane - 9.0;
        let y1 = top + index as f64 * ROW + BOX / 2.0;
        let y2 = top + end as f64 * ROW + BOX / 2.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y1}" width="6" height="{}" rx="3" fill="{AMBER}"/>"#,
            y2 - y1
        );
    }

    // One box per event.
    let chars = ((lane - 40.0) / 7.2).max(10.0) as usize;
    for index in 0..n_events {
        let event = &report.timeline.events[index];
        let described = describe(report, index);
        let x = MARGIN + described.session as f64 * lane + 16.0;
        let y = top + index as f64 * ROW;
        let w = lane - 28.0;
        let failed = described.line(Tone::Failed).is_some();
        let skipped = matches!(event.kind, EventKind::Skipped);
        let (stroke, dash) = if failed {
            (RED, "")
        } else if skipped {
            ("#9aa5b1", r#" stroke-dasharray="5 4""#)
        } else if matches!(event.kind, EventKind::Waiting { .. }) {
            (AMBER, "")
        } else {
            ("#9aa5b1", "")
        };
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{BOX}" rx="6" fill="white" stroke="{stroke}" stroke-width="{}"{dash}/>"##,
            if failed { 2.0 } else { 1.0 }
        );
        text(
            &mut out,
            x - 12.0,
            y + 14.0,
            10.0,
            MUTED,
            "normal",
            &format!("{}", index + 1),
        );
        let first = match &event.kind {
            EventKind::Resumed { .. } => described
                .line(Tone::Resumed)
                .unwrap_or_default()
                .to_string(),
            _ => described.line(Tone::Plain).unwrap_or_default().to_string(),
        };
        let first_color = if matches!(event.kind, EventKind::Resumed { .. }) {
            BLUE
        } else {
            INK
        };
        mono(
            &mut out,
            x + 10.0,
            y + 18.0,
            first_color,
            &shorten(&first, chars),
        );
        let second = described.line(Tone::Narration).unwrap_or_default();
        italic(&mut out, x + 10.0, y + 35.0, &shorten(second, chars + 8));
        let (color, status) = [
            (Tone::Failed, RED),
            (Tone::Waiting, AMBER),
            (Tone::Skipped, MUTED),
            (Tone::Decision, AMBER),
            (Tone::Result, GREEN),
        ]
        .iter()
        .find_map(|(tone, color)| described.line(*tone).map(|line| (*color, line)))
        .unwrap_or((MUTED, ""));
        let weight = if failed { "bold" } else { "normal" };
        // No hourglass: slides are shown on machines without an emoji font; amber says waiting.
        // A deferred step still shows how it ended; that it was deferred is said after.
        let status = if event.deferred {
            format!("{status} (deferred)")
        } else {
            status.to_string()
        };
        text(
            &mut out,
            x + 10.0,
            y + 52.0,
            12.0,
            color,
            weight,
            &shorten(&status, chars + 6),
        );
    }
    out.push_str("</svg>\n");
    out
}

/// The `<svg>` element, opened, on a white background.
pub(super) fn open(width: f64, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\">\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"
    )
}

pub(super) fn text(
    out: &mut String,
    x: f64,
    y: f64,
    size: f64,
    fill: &str,
    weight: &str,
    content: &str,
) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{size}" fill="{fill}" font-weight="{weight}">{}</text>"#,
        escape(content)
    );
}

fn mono(out: &mut String, x: f64, y: f64, fill: &str, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="12" fill="{fill}" font-family="Menlo, Consolas, monospace">{}</text>"#,
        escape(content)
    );
}

fn italic(out: &mut String, x: f64, y: f64, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="11" fill="{MUTED}" font-style="italic">{}</text>"#,
        escape(content)
    );
}

/// Text or a double-quoted attribute value, as XML (SVG, JUnit) reads it.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
