//! Step mode's screens: the first one (title, story, cast) and one before each event (the
//! header, the latest rows of the timeline that fit, who is about to do what).

use super::event::sent;
use super::table::{timeline_table, title_lines, wrap, Paint};
use super::Style;
use crate::scenario::{display_name, RetryOn, Scenario, StepId};
use crate::timeline::{EventKind, Timeline};

/// The screen before the first step: the title, the anomaly, the level, the story, the fix,
/// and the cast (each session, its steps, and what its application does on a failure).
pub fn intro_screen(scenario: &Scenario, level: &str, prompt: &str, style: Style) -> String {
    let paint = Paint(style.color);
    let width = style.width as usize;
    let mut out = header(scenario, level, style, paint);
    out.push('\n');
    for line in wrap(&scenario.story, width) {
        out.push_str(&format!("{line}\n"));
    }
    if let Some(fix) = &scenario.applied {
        out.push('\n');
        for line in wrap(&format!("With the fix: {}", fix.how), width) {
            out.push_str(&format!("{line}\n"));
        }
    }
    out.push_str(&format!("\n{}\n", paint.bold("Cast")));
    let names: Vec<String> = (0..scenario.sessions.len())
        .map(|session| super::event::lane(scenario, session))
        .collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (session, name) in scenario.sessions.iter().zip(&names) {
        let steps = session.steps.len();
        let mut part = format!("{steps} step{}", if steps == 1 { "" } else { "s" });
        if let Some(level) = session.pinned.level {
            part.push_str(&format!(", always at {level}"));
        }
        if session.retry.attempts > 1 && !session.retry.on.is_empty() {
            let on: Vec<&str> = session
                .retry
                .on
                .iter()
                .map(|on| match on {
                    RetryOn::SerializationFailure => "a serialization failure",
                    RetryOn::Deadlock => "a deadlock",
                    RetryOn::Busy => "a busy database",
                    RetryOn::Locked => "a lock not available",
                })
                .collect();
            part.push_str(&format!(
                ", retries on {} (up to {} attempts)",
                on.join(" or "),
                session.retry.attempts
            ));
        }
        let first = session.steps.first().map(|s| s.say.as_str()).unwrap_or("");
        let text = format!("{part}; first: {first}");
        let indent = name_width + 4;
        for (i, line) in wrap(&text, width.saturating_sub(indent).max(20))
            .iter()
            .enumerate()
        {
            let who = if i == 0 { name.as_str() } else { "" };
            let pad = " ".repeat(name_width - who.chars().count());
            out.push_str(&format!("  {}{pad}  {line}\n", paint.bold(who)));
        }
    }
    out.push_str(&format!("\n{}\n", paint.dim(prompt)));
    out
}

/// The screen before step `next` is sent as `sql`: the header, then as many of the latest rows
/// of the timeline as fit in `height` lines (all when `None`), then who is about to do what.
pub fn step_screen(
    scenario: &Scenario,
    level: &str,
    timeline: &Timeline,
    (next, sql): (StepId, &str),
    prompt: &str,
    height: Option<usize>,
    style: Style,
) -> String {
    let paint = Paint(style.color);
    let width = style.width as usize;
    let head = header(scenario, level, style, paint);
    let step = scenario.step(next);
    let who = display_name(&scenario.sessions[next.session].name);
    let retries = timeline
        .events
        .iter()
        .filter(|e| e.step.session == next.session && matches!(e.kind, EventKind::Retried { .. }))
        .count();
    let mut say = format!("{who}: {}", step.say);
    if retries > 0 {
        say.push_str(&format!(" (attempt {})", retries + 1));
    }
    let mut tail = String::new();
    for (i, line) in wrap(&say, width.saturating_sub(6)).iter().enumerate() {
        let line = match line.strip_prefix(&format!("{who}:")) {
            Some(rest) if i == 0 => format!("{}{rest}", paint.bold(&format!("{who}:"))),
            _ => line.clone(),
        };
        let lead = if i == 0 {
            paint.bold("Next:")
        } else {
            "     ".into()
        };
        tail.push_str(&format!("{lead} {line}\n"));
    }
    for line in wrap(&sent(scenario, next, sql), width.saturating_sub(4)) {
        tail.push_str(&format!("    {}\n", paint.dim(&line)));
    }
    tail.push_str(&format!("\n{}\n", paint.dim(prompt)));
    let lines = |text: &str| text.lines().count();
    let room = height.map(|h| h.saturating_sub(lines(&head) + lines(&tail) + 1));
    let mut table = String::new();
    for from in 0..timeline.events.len() {
        let mut drawn = String::new();
        if from > 0 {
            let hidden = if from == 1 { "event" } else { "events" };
            drawn.push_str(&paint.dim(&format!("({from} earlier {hidden} above)\n")));
        }
        drawn.push_str(&timeline_table(scenario, timeline, from, style, paint));
        drawn.push_str("\n\n");
        let fits = room.is_none_or(|room| lines(&drawn) <= room);
        if fits || from + 1 == timeline.events.len() {
            table = drawn;
            break;
        }
    }
    format!("{head}\n{table}{tail}")
}

fn header(scenario: &Scenario, level: &str, style: Style, paint: Paint) -> String {
    let mut out = title_lines(scenario, style, paint);
    out.push_str(&format!(
        "{}  {} ({})\n{}  {level}\n",
        paint.dim("anomaly "),
        scenario.anomaly,
        scenario.code,
        paint.dim("level   ")
    ));
    if let Some(fix) = &scenario.applied {
        out.push_str(&format!(
            "{}  {}: {}\n",
            paint.dim("fix     "),
            fix.id,
            fix.title
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;
    use crate::timeline::{Event, StepResult};

    fn write_skew() -> Scenario {
        Scenario::load("write-skew").unwrap()
    }

    fn done(step: StepId) -> Event {
        Event {
            step,
            sql: "BEGIN".into(),
            kind: EventKind::Done {
                result: StepResult::Command { rows_affected: 0 },
            },
            deferred: false,
            attempt: 1,
        }
    }

    #[test]
    fn the_first_screen_is_the_title_the_story_and_the_cast() {
        let scenario = write_skew();
        let screen = intro_screen(&scenario, "serializable", "Enter: start", Style::default());
        assert!(
            screen.starts_with("write-skew — Two bills paid"),
            "{screen}"
        );
        assert!(screen.contains("Alice and John each have an account with 150"));
        assert!(screen.contains("Cast\n  Alice  4 steps; first: Alice opens the app"));
        assert!(screen.contains("  John   4 steps; first: John opens the app"));
    }

    #[test]
    fn next_shows_the_sql_as_it_will_be_sent() {
        let scenario = write_skew();
        let step = StepId {
            session: 0,
            step: 2,
        };
        let sql = "UPDATE accounts SET balance = balance - 100 WHERE id = 1 AND 300 - 100 >= 200";
        let screen = step_screen(
            &scenario,
            "serializable",
            &Timeline::default(),
            (step, sql),
            "Enter",
            None,
            Style::default(),
        );
        assert!(screen.contains(&format!("    {sql}\n")), "{screen}");
        assert!(!screen.contains("${"), "{screen}");
    }

    #[test]
    fn a_short_terminal_keeps_the_header_and_the_latest_rows() {
        let scenario = write_skew();
        let mut timeline = Timeline::default();
        for i in 0..12 {
            timeline.events.push(done(StepId {
                session: i % 2,
                step: 0,
            }));
        }
        let next = StepId {
            session: 0,
            step: 1,
        };
        let draw = |height| {
            step_screen(
                &scenario,
                "serializable",
                &timeline,
                (next, "SELECT 1"),
                "Enter",
                height,
                Style::default(),
            )
        };
        let screen = draw(Some(24));
        assert!(screen.lines().count() <= 24, "{screen}");
        assert!(screen.starts_with("write-skew — "), "{screen}");
        assert!(screen.contains("earlier events above"), "{screen}");
        assert!(
            screen.contains("│ 12 ┆"),
            "the latest row is drawn:\n{screen}"
        );
        assert!(
            !screen.contains("│  1 ┆"),
            "the first row is not:\n{screen}"
        );
        let all = draw(None);
        assert!(all.contains("│  1 ┆") && !all.contains("earlier"), "{all}");
    }
}
