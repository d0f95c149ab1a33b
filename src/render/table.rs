//! The timeline as a table: one column per session, one row per event, then the verdict.

use colored::Colorize;
use comfy_table::{
    presets, Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width,
};

use super::event::{describe_in, sent, Tone};
use super::Style;
use crate::report::Report;
use crate::scenario::{display_name, Scenario, StepId};
use crate::timeline::Timeline;

/// Under a timeline with Redis steps: they are no part of any transaction.
pub const REDIS_LEGEND: &str =
    "redis> steps go to Redis, outside every database transaction: no ROLLBACK undoes them.";

/// A run as the terminal shows it: header, timeline, verdict.
pub fn table(report: &Report, style: Style) -> String {
    let paint = Paint(style.color);
    let scenario = &report.scenario;
    let mut out = String::new();
    out.push_str(&format!(
        "{} — {}\n",
        paint.bold(&scenario.label()),
        scenario.title
    ));
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
        out.push_str(&format!("{}  {value}\n", paint.dim(&format!("{key:<8}"))));
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
        style,
        paint,
    ));
    out.push('\n');
    if scenario.uses_redis() {
        out.push_str(&paint.dim(REDIS_LEGEND));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&verdict_lines(report, style, paint));
    out
}

/// Step mode's screen: the timeline so far, then who is about to do what.
pub fn step_screen(
    scenario: &Scenario,
    level: &str,
    timeline: &Timeline,
    next: StepId,
    prompt: &str,
    style: Style,
) -> String {
    let paint = Paint(style.color);
    let mut out = format!(
        "{} — {}\n{}  {level}\n\n",
        paint.bold(&scenario.label()),
        scenario.title,
        paint.dim("level   ")
    );
    if !timeline.events.is_empty() {
        out.push_str(&timeline_table(scenario, timeline, style, paint));
        out.push_str("\n\n");
    }
    let step = scenario.step(next);
    let text = step
        .sql
        .render(|hole| format!("${{{}.{}}}", hole.step_name, hole.column));
    out.push_str(&format!(
        "{} {}: {}\n    {}\n\n{}\n",
        paint.bold("Next:"),
        paint.bold(&display_name(&scenario.sessions[next.session].name)),
        step.say,
        paint.dim(&sent(scenario, next, &text)),
        paint.dim(prompt)
    ));
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

fn timeline_table(scenario: &Scenario, timeline: &Timeline, style: Style, paint: Paint) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width);
    let mut header = vec![Cell::new("#")];
    header.extend(
        scenario
            .sessions
            .iter()
            .map(|s| Cell::new(paint.bold(&display_name(&s.name)))),
    );
    table.set_header(header);
    for (index, event) in timeline.events.iter().enumerate() {
        let mut row = vec![Cell::new(index + 1).set_alignment(CellAlignment::Right)];
        for session in 0..scenario.sessions.len() {
            if session == event.step.session {
                row.push(Cell::new(event_cell(scenario, timeline, index, paint)));
            } else {
                row.push(Cell::new(""));
            }
        }
        table.add_row(row);
    }
    let n_sessions = scenario.sessions.len() as u16;
    let share = (style.width.saturating_sub(6 + 3 * n_sessions)) / n_sessions.max(1);
    if let Some(column) = table.column_mut(0) {
        column.set_constraint(ColumnConstraint::Absolute(Width::Fixed(4)));
    }
    for session in 0..scenario.sessions.len() {
        if let Some(column) = table.column_mut(session + 1) {
            column.set_constraint(ColumnConstraint::Absolute(Width::Fixed(share)));
        }
    }
    table.to_string()
}

fn event_cell(scenario: &Scenario, timeline: &Timeline, index: usize, paint: Paint) -> String {
    describe_in(scenario, timeline, index)
        .lines
        .iter()
        .map(|(tone, text)| match tone {
            Tone::Plain => text.clone(),
            Tone::Narration => paint.italic_dim(text),
            Tone::Result => paint.green(text),
            Tone::Waiting => paint.yellow(&format!("⏳ {text}")),
            Tone::Deferred => paint.yellow(text),
            Tone::Resumed => paint.cyan(text),
            Tone::Failed => paint.red_bold(text),
            Tone::Skipped => paint.dim(text),
            Tone::Decision => paint.yellow(text),
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
