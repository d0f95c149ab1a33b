//! The timeline as a table: one column per session, one row per event, then the verdict.

use colored::Colorize;
use comfy_table::{
    presets, Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width,
};

use super::event::{describe_in, Tone};
use super::Style;
use crate::report::Report;
use crate::scenario::{display_name, Scenario};
use crate::timeline::Timeline;

/// Under a timeline with Redis steps: they are no part of any transaction.
pub const REDIS_LEGEND: &str =
    "redis> steps go to Redis, outside every database transaction: no ROLLBACK undoes them.";

/// A run as the terminal shows it: header, timeline, verdict.
pub fn table(report: &Report, style: Style) -> String {
    let paint = Paint(style.color);
    let scenario = &report.scenario;
    let mut out = title_lines(scenario, style, paint);
    let engine = &report.engine;
    let mut rows = vec![
        (
            "anomaly",
            format!("{} ({})", scenario.anomaly, scenario.code),
        ),
        (
            "engine",
            format!("{} {} ({})", engine.name, engine.version, engine.detail),
        ),
        ("level", report.levels_text()),
        ("order", report.interleaving.clone()),
    ];
    if let Some(redis) = &engine.redis {
        rows.insert(2, ("redis", redis.clone()));
    }
    if let Some(fix) = &scenario.applied {
        rows.push(("fix", format!("{}: {}", fix.id, fix.title)));
    }
    for (key, value) in rows {
        for (i, line) in wrap(&value, style.width as usize - 10).iter().enumerate() {
            let key = if i == 0 { key } else { "" };
            out.push_str(&format!("{}  {line}\n", paint.dim(&format!("{key:<8}"))));
        }
    }
    out.push('\n');
    for line in wrap(&scenario.story, style.width as usize) {
        out.push_str(&paint.dim(&line));
        out.push('\n');
    }
    if let Some(fix) = &scenario.applied {
        out.push('\n');
        for line in wrap(&format!("With the fix: {}", fix.how), style.width as usize) {
            out.push_str(&paint.dim(&line));
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&timeline_table(
        &report.scenario,
        &report.timeline,
        0,
        style,
        paint,
    ));
    out.push('\n');
    if scenario.uses_redis() {
        for line in wrap(REDIS_LEGEND, style.width as usize) {
            out.push_str(&paint.dim(&line));
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&verdict_lines(report, style, paint));
    out
}

/// `label — title`, wrapped to the width, the label in bold.
pub(super) fn title_lines(scenario: &Scenario, style: Style, paint: Paint) -> String {
    let label = scenario.label();
    let mut out = String::new();
    for (i, line) in wrap(
        &format!("{label} — {}", scenario.title),
        style.width as usize,
    )
    .iter()
    .enumerate()
    {
        match line.strip_prefix(&label) {
            Some(rest) if i == 0 => out.push_str(&format!("{}{rest}\n", paint.bold(&label))),
            _ => out.push_str(&format!("{line}\n")),
        }
    }
    out
}

/// `--level all` ends with one line per level.
pub fn summary(reports: &[Report], style: Style) -> String {
    let paint = Paint(style.color);
    let mut out = String::from("summary\n");
    let width = reports
        .iter()
        .map(|r| r.level_text().chars().count())
        .max()
        .unwrap_or(0);
    for report in reports {
        let level = report.level_text();
        let pad = " ".repeat(width - level.chars().count());
        let outcome = report.outcome_text();
        let painted = if report.verdict.finding.mechanism().is_none() {
            paint.red(&outcome)
        } else {
            paint.green(&outcome)
        };
        let mark = match report.matches_expectation() {
            Some(true) => format!("  {}", paint.dim("(as expected)")),
            Some(false) => format!(
                "  {}",
                paint.red(&format!(
                    "(expected {})",
                    report.expected.map(|e| e.to_string()).unwrap_or_default()
                ))
            ),
            None => String::new(),
        };
        out.push_str(&format!("  {level}{pad}  {painted}{mark}\n"));
    }
    out
}

fn verdict_lines(report: &Report, style: Style, paint: Paint) -> String {
    let verdict = &report.verdict;
    let summary = verdict.summary(&report.scenario);
    let word = verdict.word();
    let painted = if verdict.finding.mechanism().is_none() {
        paint.red_bold(word)
    } else {
        paint.green_bold(word)
    };
    let indent = " ".repeat(10);
    let mut out = String::new();
    for (index, line) in wrap(&summary, style.width as usize - indent.len())
        .iter()
        .enumerate()
    {
        if index == 0 {
            let rest = line.strip_prefix(word).unwrap_or(line);
            out.push_str(&format!("{}  {painted}{rest}\n", paint.dim("verdict ")));
        } else {
            out.push_str(&format!("{indent}{line}\n"));
        }
    }
    if let Some(expected) = report.expected {
        let mark = if verdict.matches(&expected) {
            paint.green("✓ as expected")
        } else {
            paint.red(&format!("✗ got {}", report.outcome_text()))
        };
        out.push_str(&format!("{}  {expected} {mark}\n", paint.dim("expected")));
    }
    out
}

/// Below this many columns a session's column is too narrow to read, and the timeline is
/// drawn one event per row instead, with the session's name in a column of its own.
const NARROWEST_LANE: u16 = 26;

/// The timeline's events from `from` on, in `style.width` columns: a column per session when
/// each gets at least [`NARROWEST_LANE`], otherwise one event per row. Cells wrap; nothing is
/// cut.
pub(super) fn timeline_table(
    scenario: &Scenario,
    timeline: &Timeline,
    from: usize,
    style: Style,
    paint: Paint,
) -> String {
    let n_sessions = scenario.sessions.len().max(1) as u16;
    // Each column costs its content, two spaces of padding and one border; plus the outer one.
    let index = timeline.events.len().max(1).to_string().len() as u16;
    let share = style.width.saturating_sub(1 + (index + 3) + 3 * n_sessions) / n_sessions;
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width);
    let index_cell = |i: usize| Cell::new(i + 1).set_alignment(CellAlignment::Right);
    let name = |s: usize| display_name(&scenario.sessions[s].name);
    if share >= NARROWEST_LANE {
        let mut header = vec![Cell::new("#")];
        header.extend(
            (0..scenario.sessions.len())
                .map(|s| Cell::new(paint.bold(&super::event::lane(scenario, s)))),
        );
        table.set_header(header);
        for (i, event) in timeline.events.iter().enumerate().skip(from) {
            let mut row = vec![index_cell(i)];
            for session in 0..scenario.sessions.len() {
                row.push(Cell::new(if session == event.step.session {
                    event_cell(scenario, timeline, i, share as usize, paint)
                } else {
                    String::new()
                }));
            }
            table.add_row(row);
        }
        fix_widths(&mut table, &[index, share]);
    } else {
        let who = (0..scenario.sessions.len())
            .map(|s| name(s).chars().count() as u16)
            .max()
            .unwrap_or(0)
            .max(7);
        let what = style.width.saturating_sub(1 + (index + 3) + (who + 3) + 3);
        table.set_header(vec![
            Cell::new("#"),
            Cell::new("session"),
            Cell::new("event"),
        ]);
        for (i, event) in timeline.events.iter().enumerate().skip(from) {
            table.add_row(vec![
                index_cell(i),
                Cell::new(paint.bold(&name(event.step.session))),
                Cell::new(event_cell(scenario, timeline, i, what as usize, paint)),
            ]);
        }
        fix_widths(&mut table, &[index, who, what]);
    }
    table.to_string()
}

/// Each column's content width; the last one given holds for the rest.
fn fix_widths(table: &mut Table, widths: &[u16]) {
    let last = widths.last().copied().unwrap_or(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        let width = widths.get(i).copied().unwrap_or(last);
        column.set_constraint(ColumnConstraint::Absolute(Width::Fixed(width + 2)));
    }
}

/// An event's lines, each wrapped to `width` before it is painted, so that the table measures
/// plain text and never has to cut a word that an escape made look longer.
fn event_cell(
    scenario: &Scenario,
    timeline: &Timeline,
    index: usize,
    width: usize,
    paint: Paint,
) -> String {
    describe_in(scenario, timeline, index)
        .lines
        .iter()
        .flat_map(|(tone, text)| {
            wrap_hard(text, width)
                .into_iter()
                .map(move |line| (*tone, line))
        })
        .map(|(tone, line)| {
            let text = line.as_str();
            match tone {
                Tone::Plain => line.clone(),
                Tone::Narration => paint.italic_dim(text),
                Tone::Result => paint.green(text),
                Tone::Waiting | Tone::Deferred | Tone::Decision => paint.yellow(text),
                Tone::Resumed => paint.cyan(text),
                Tone::Failed => paint.red_bold(text),
                Tone::Skipped => paint.dim(text),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// [`wrap`], with a word longer than the line split across lines rather than left to stick out.
pub(super) fn wrap_hard(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    for line in wrap(text, width) {
        let chars: Vec<char> = line.chars().collect();
        lines.extend(chars.chunks(width).map(|c| c.iter().collect::<String>()));
    }
    lines
}

/// Colors only when the CLI asked for them.
#[derive(Clone, Copy)]
pub(super) struct Paint(pub(super) bool);

impl Paint {
    fn apply(self, text: &str, f: impl Fn(&str) -> colored::ColoredString) -> String {
        if self.0 {
            f(text).to_string()
        } else {
            text.to_string()
        }
    }
    pub(super) fn bold(self, t: &str) -> String {
        self.apply(t, |t| t.bold())
    }
    pub(super) fn dim(self, t: &str) -> String {
        self.apply(t, |t| t.dimmed())
    }
    pub(super) fn italic_dim(self, t: &str) -> String {
        self.apply(t, |t| t.italic().dimmed())
    }
    pub(super) fn red(self, t: &str) -> String {
        self.apply(t, |t| t.red())
    }
    pub(super) fn red_bold(self, t: &str) -> String {
        self.apply(t, |t| t.red().bold())
    }
    pub(super) fn green(self, t: &str) -> String {
        self.apply(t, |t| t.green())
    }
    pub(super) fn green_bold(self, t: &str) -> String {
        self.apply(t, |t| t.green().bold())
    }
    pub(super) fn yellow(self, t: &str) -> String {
        self.apply(t, |t| t.yellow())
    }
    pub(super) fn cyan(self, t: &str) -> String {
        self.apply(t, |t| t.cyan())
    }
}
