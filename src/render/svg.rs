//! `--format svg`: a self-contained swimlane picture for slides. One lane per session, one box
//! per event in order, a bar for the time a step waited (up to the row where it resumed), red
//! for failures, the values read on the boxes, and a verdict banner.

use std::fmt::Write;

use super::event::{describe, Tone};
use crate::report::Report;
use crate::timeline::EventKind;

const WIDTH: f64 = 1000.0;
const MARGIN: f64 = 24.0;
const LANE_HEADER: f64 = 38.0;
/// Every text is at least this size at 1000 px: readable on a slide.
const TEXT: f64 = 14.0;
const LINE: f64 = 19.0;
/// Average advance of a character, as a share of the font size: Helvetica or Arial text, and
/// a monospace font's exact one. Lines are wrapped to what fits; nothing is cut.
const SANS_ADVANCE: f64 = 0.52;
const MONO_ADVANCE: f64 = 0.61;

const INK: &str = "#1f2933";
/// Narration and secondary text: 7.6:1 against white.
const SOFT: &str = "#3e4c59";
const RED: &str = "#b71c1c";
const GREEN: &str = "#1b5e20";
/// The wait's bar and box outline; its text is the darker AMBER_TEXT (4.9:1 against white).
const AMBER: &str = "#e09b00";
const AMBER_TEXT: &str = "#8a5a00";
const BLUE: &str = "#0d47a1";
const GREY: &str = "#7b8794";

/// How a line of a box is drawn.
#[derive(Clone, Copy)]
enum Face {
    Mono(&'static str),
    Italic,
    Status(&'static str, &'static str),
}

pub fn svg(report: &Report) -> String {
    let scenario = &report.scenario;
    let n_sessions = scenario.sessions.len().max(1);
    let n_events = report.timeline.events.len();
    let lane = (WIDTH - 2.0 * MARGIN) / n_sessions as f64;
    let inner = WIDTH - 2.0 * MARGIN;
    let engine = &report.engine;

    // Title, what ran where, and the verdict banner, each wrapped to the width.
    let title = fit(
        &format!("{} — {}", scenario.label(), scenario.title),
        inner,
        24.0,
        SANS_ADVANCE,
    );
    let facts = fit(
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
        inner,
        15.0,
        SANS_ADVANCE,
    );
    let summary = fit(
        &report.verdict.summary(scenario),
        inner - 28.0,
        15.0,
        SANS_ADVANCE,
    );
    let mut y = MARGIN + 10.0;
    let mut head = String::new();
    for line in &title {
        y += 30.0;
        text(&mut head, MARGIN, y, 24.0, INK, "bold", line);
    }
    y += 6.0;
    for line in &facts {
        y += 21.0;
        text(&mut head, MARGIN, y, 15.0, SOFT, "normal", line);
    }
    let (banner, fill) = if report.verdict.finding.mechanism().is_none() {
        ("#fdecea", RED)
    } else {
        ("#e8f5e9", GREEN)
    };
    let banner_top = y + 14.0;
    let banner_height = summary.len() as f64 * 21.0 + 16.0;
    let _ = writeln!(
        head,
        r#"<rect x="{MARGIN}" y="{banner_top}" width="{inner}" height="{banner_height}" rx="8" fill="{banner}" stroke="{fill}"/>"#,
    );
    for (i, line) in summary.iter().enumerate() {
        let weight = if i == 0 { "bold" } else { "normal" };
        let line_y = banner_top + 24.0 + i as f64 * 21.0;
        text(&mut head, MARGIN + 14.0, line_y, 15.0, fill, weight, line);
    }
    let header = banner_top + banner_height + 18.0;
    let top = header + LANE_HEADER;

    // Each event's box: its lines, wrapped to the lane, and so its height.
    let text_width = lane - 28.0 - 20.0;
    let boxes: Vec<Vec<(Face, String)>> = (0..n_events)
        .map(|index| box_lines(report, index, text_width))
        .collect();
    let heights: Vec<f64> = boxes
        .iter()
        .map(|lines| lines.len() as f64 * LINE + 14.0)
        .collect();
    let mut tops = Vec::with_capacity(n_events);
    let mut row = top;
    for height in &heights {
        tops.push(row);
        row += height + 10.0;
    }
    let height = row + MARGIN;
    let mut out = open(WIDTH, height);
    out.push_str(&head);

    // Lanes.
    for i in 0..scenario.sessions.len() {
        let x = MARGIN + i as f64 * lane;
        let shade = if i % 2 == 0 { "#f5f7fa" } else { "#eef2f7" };
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{header}" width="{lane}" height="{}" fill="{shade}"/>"#,
            height - header - MARGIN / 2.0
        );
        text(
            &mut out,
            x + 12.0,
            header + 26.0,
            18.0,
            INK,
            "bold",
            &super::event::lane(scenario, i),
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
        let y1 = tops[index] + heights[index] / 2.0;
        let y2 = tops[end] + heights[end] / 2.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{y1}" width="6" height="{}" rx="3" fill="{AMBER}"/>"#,
            y2 - y1
        );
    }

    // One box per event.
    for (index, lines) in boxes.iter().enumerate() {
        let event = &report.timeline.events[index];
        let session = event.step.session;
        let x = MARGIN + session as f64 * lane + 16.0;
        let y = tops[index];
        let w = lane - 28.0;
        let failed = lines
            .iter()
            .any(|(face, _)| matches!(face, Face::Status(RED, _)));
        let (stroke, dash) = if failed {
            (RED, "")
        } else if matches!(event.kind, EventKind::Skipped) {
            (GREY, r#" stroke-dasharray="5 4""#)
        } else if matches!(event.kind, EventKind::Waiting { .. }) {
            (AMBER, "")
        } else {
            (GREY, "")
        };
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{y}" width="{w}" height="{}" rx="6" fill="white" stroke="{stroke}" stroke-width="{}"{dash}/>"##,
            heights[index],
            if failed { 2.0 } else { 1.0 }
        );
        // The row number, in the lane's left gutter.
        let number = format!("{}", index + 1);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="{TEXT}" fill="{SOFT}" text-anchor="end">{number}</text>"#,
            x - 3.0,
            y + 18.0
        );
        for (i, (face, line)) in lines.iter().enumerate() {
            let line_y = y + 20.0 + i as f64 * LINE;
            match face {
                Face::Mono(fill) => mono(&mut out, x + 10.0, line_y, fill, line),
                Face::Italic => italic(&mut out, x + 10.0, line_y, line),
                Face::Status(fill, weight) => {
                    text(&mut out, x + 10.0, line_y, TEXT, fill, weight, line)
                }
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

/// An event's box: the SQL (or how it resumed), the narration, and how it ended, each wrapped
/// to `width` pixels.
fn box_lines(report: &Report, index: usize, width: f64) -> Vec<(Face, String)> {
    let event = &report.timeline.events[index];
    let described = describe(report, index);
    let mut lines = Vec::new();
    let mut add = |face: Face, text: &str, advance: f64| {
        for line in fit(text, width, TEXT, advance) {
            lines.push((face, line));
        }
    };
    let (first, first_face) = match &event.kind {
        EventKind::Resumed { .. } => (described.line(Tone::Resumed), Face::Mono(BLUE)),
        _ => (described.line(Tone::Plain), Face::Mono(INK)),
    };
    if let Some(first) = first {
        add(first_face, first, MONO_ADVANCE);
    }
    if let Some(narration) = described.line(Tone::Narration) {
        add(Face::Italic, narration, SANS_ADVANCE);
    }
    let status = [
        (Tone::Failed, RED, "bold"),
        (Tone::Waiting, AMBER_TEXT, "normal"),
        (Tone::Skipped, SOFT, "normal"),
        (Tone::Decision, AMBER_TEXT, "normal"),
        (Tone::Result, GREEN, "normal"),
    ]
    .iter()
    .find_map(|(tone, color, weight)| described.line(*tone).map(|line| (*color, *weight, line)));
    if let Some((color, weight, status)) = status {
        // A deferred step still shows how it ended; that it was deferred is said after.
        let status = if event.deferred {
            format!("{status} (deferred)")
        } else {
            status.to_string()
        };
        add(Face::Status(color, weight), &status, SANS_ADVANCE);
    }
    lines
}

/// `text` in lines no wider than `width` pixels at `size`, every word kept.
fn fit(text: &str, width: f64, size: f64, advance: f64) -> Vec<String> {
    let chars = (width / (size * advance)).floor().max(8.0) as usize;
    super::table::wrap_hard(text, chars)
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
        r#"<text x="{x}" y="{y}" font-size="{TEXT}" fill="{fill}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">{}</text>"#,
        escape(content)
    );
}

fn italic(out: &mut String, x: f64, y: f64, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{TEXT}" fill="{SOFT}" font-style="italic">{}</text>"#,
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
