//! Classroom mode (`run --step`, `--pace`): the binary's terminal side of the runner's pause
//! hook, drawing the timeline so far and reading keys.

use std::io::IsTerminal;

use anomalies::app::{self, AppError, Request};
use anomalies::render::{self, Style};
use anomalies::report::Report;
use anomalies::scenario::StepId;
use anomalies::timeline::Timeline;
use futures_util::future::LocalBoxFuture;

use crate::cli::{RunArgs, RunFormat};
use crate::{print, runtime};

/// Classroom mode: the timeline so far and the next step before each step, advancing on Enter
/// or by itself every `--pace`. Returns no reports when the user quit.
pub(crate) fn step_through(
    request: &Request,
    args: &RunArgs,
    style: Style,
) -> anyhow::Result<Vec<Report>> {
    if !matches!(args.format, RunFormat::Table) {
        anyhow::bail!("--step and --pace draw the table: leave out --format");
    }
    if args.pace.is_none() && !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "--step waits for Enter, but standard input is not a terminal; \
             pass --pace 800ms to advance by itself"
        );
    }
    let scenario = request.scenarios[0].clone();
    let pace = args.pace;
    let level = match request.levels.as_slice() {
        [one] => one.to_string(),
        _ => "every level in turn".to_string(),
    };
    let prompt = match pace {
        Some(pace) => format!("next step in {}", humantime::format_duration(pace)),
        None => "Enter: next step · q: quit".to_string(),
    };
    let mut pause = move |timeline: &Timeline, next: StepId| -> LocalBoxFuture<'static, bool> {
        let screen = render::step_screen(&scenario, &level, timeline, next, &prompt, style);
        // Clear the screen and draw from the top, as a slide would.
        let _ = print(&format!("\x1b[2J\x1b[H{screen}"));
        match pace {
            Some(pace) => Box::pin(async move {
                tokio::time::sleep(pace).await;
                true
            }),
            None => Box::pin(async {
                matches!(tokio::task::spawn_blocking(read_key).await, Ok(Ok(true)))
            }),
        }
    };
    let runtime = runtime()?;
    let result = runtime.block_on(app::run(
        request,
        &mut |notice| eprintln!("{notice}"),
        &mut |_| {},
        Some(&mut pause),
    ));
    // A read of stdin may still wait for a line: do not wait for it.
    runtime.shutdown_background();
    match result {
        Err(AppError::Quit) => {
            eprintln!("quit before the end; cleaned up");
            Ok(Vec::new())
        }
        other => {
            let runs = other?;
            let _ = print("\x1b[2J\x1b[H");
            Ok(runs.reports)
        }
    }
}

/// Waits for one key: Enter, Space or → go on (true); q, Esc or Ctrl-C quit (false). The
/// terminal is raw only while waiting, so everything drawn between keys is drawn normally.
fn read_key() -> std::io::Result<bool> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    crossterm::terminal::enable_raw_mode()?;
    let key = loop {
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Enter | KeyCode::Char(' ') | KeyCode::Right => break Ok(true),
                KeyCode::Char('q') | KeyCode::Esc => break Ok(false),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Ok(false)
                }
                _ => {}
            },
            Ok(_) => {}
            Err(error) => break Err(error),
        }
    };
    crossterm::terminal::disable_raw_mode()?;
    key
}
