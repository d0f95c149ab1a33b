//! Classroom mode (`run --step`, `--pace`): a run through the runner's pause hook, one screen
//! per event. The screens are `render::intro_screen` and `render::step_screen`; this module
//! reads the keys and draws them on the writer the binary hands it (a terminal: cleared and
//! drawn from the top; a pipe: plain frames one after another, no escapes).

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;

use crate::app::{self, AppError, Request};
use crate::render::{self, Style};
use crate::report::Report;
use crate::scenario::StepId;
use crate::timeline::Timeline;

/// How classroom mode goes on: by a key, or by itself every `pace`.
#[derive(Debug, Clone, Copy)]
pub struct Classroom {
    pub pace: Option<Duration>,
    pub style: Style,
}

/// What a key asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Next,
    Quit,
    Interrupt,
}

/// Clears a terminal and puts the cursor at the top, as a slide would.
const CLEAR: &str = "\x1b[2J\x1b[H";

/// Steps through the request's run, drawing on `out` (a terminal when `terminal`). Returns the
/// reports at the end; [`AppError::Quit`] when the user pressed q, [`AppError::Interrupted`]
/// on Ctrl-C (as a key in step mode, or SIGINT), each after the run cleaned up.
pub fn step_through(
    request: &Request,
    classroom: Classroom,
    out: Box<dyn Write>,
    terminal: bool,
    notice: &mut dyn FnMut(&str),
) -> Result<Vec<Report>, AppError> {
    if classroom.pace.is_none() && !std::io::stdin().is_terminal() {
        return Err(AppError::Usage(
            "--step waits for Enter, but standard input is not a terminal; \
             pass --pace 800ms to advance by itself"
                .into(),
        ));
    }
    let scenario = request.scenarios[0].clone();
    let style = classroom.style;
    let pace = classroom.pace;
    let level = match request.levels.as_slice() {
        [one] => one.to_string(),
        _ => "every level in turn".to_string(),
    };
    let (prompt, start) = match pace {
        Some(pace) => {
            let every = humantime::format_duration(pace);
            (
                format!("next step in {every}"),
                format!("starts in {every}"),
            )
        }
        None => (
            "Enter: next step · q: quit".to_string(),
            "Enter: start · q: quit".to_string(),
        ),
    };
    let stopped_by: Rc<Cell<Option<Key>>> = Rc::new(Cell::new(None));
    let out = Rc::new(RefCell::new(out));
    let mut intro = Some(render::intro_screen(&scenario, &level, &start, style));
    let stopped = stopped_by.clone();
    let mut pause =
        move |timeline: &Timeline, next: StepId, sql: &str| -> LocalBoxFuture<'static, bool> {
            let height = terminal
                .then(|| crossterm::terminal::size().ok())
                .flatten()
                .map(|(_, rows)| rows as usize);
            let screen = render::step_screen(
                &scenario,
                &level,
                timeline,
                (next, sql),
                &prompt,
                height,
                style,
            );
            // The first screen, before any event: the title, the story and the cast.
            let intro = intro.take();
            let (out, stopped) = (out.clone(), stopped.clone());
            Box::pin(async move {
                if let Some(intro) = intro {
                    draw(&out, terminal, &intro);
                    if !wait(pace, &stopped).await {
                        return false;
                    }
                }
                draw(&out, terminal, &screen);
                wait(pace, &stopped).await
            })
        };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Usage(format!("cannot start the async runtime: {e}")))?;
    let result = runtime.block_on(app::run(request, notice, &mut |_| {}, Some(&mut pause)));
    // A read of stdin may still wait for a key: do not wait for it.
    runtime.shutdown_background();
    match result {
        Err(AppError::Quit) if stopped_by.get() == Some(Key::Interrupt) => {
            Err(AppError::Interrupted)
        }
        other => other.map(|runs| runs.reports),
    }
}

/// Draws a screen: on a terminal from the top of a cleared screen, into a pipe as a plain
/// frame.
fn draw(out: &RefCell<Box<dyn Write>>, terminal: bool, screen: &str) {
    let text = if terminal {
        format!("{CLEAR}{screen}")
    } else {
        format!("{screen}\n")
    };
    let mut out = out.borrow_mut();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Waits for the pace, or for a key; false (and the key kept in `stopped`) when the key
/// stops the run.
async fn wait(pace: Option<Duration>, stopped: &Cell<Option<Key>>) -> bool {
    if let Some(pace) = pace {
        tokio::time::sleep(pace).await;
        return true;
    }
    let key = match tokio::task::spawn_blocking(read_key).await {
        Ok(Ok(key)) => key,
        _ => Key::Quit,
    };
    if key != Key::Next {
        stopped.set(Some(key));
    }
    key == Key::Next
}

/// Waits for one key: Enter, Space or → go on; q or Esc quit; Ctrl-C interrupts. The terminal
/// is raw only while waiting, so everything drawn between keys is drawn normally.
fn read_key() -> std::io::Result<Key> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    crossterm::terminal::enable_raw_mode()?;
    let key = loop {
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Ok(Key::Interrupt)
                }
                KeyCode::Enter | KeyCode::Char(' ') | KeyCode::Right => break Ok(Key::Next),
                // Enter typed before the terminal went raw arrives as a line feed, which raw
                // mode reads as Ctrl-J.
                KeyCode::Char('j') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Ok(Key::Next)
                }
                KeyCode::Char('q') | KeyCode::Esc => break Ok(Key::Quit),
                _ => {}
            },
            Ok(_) => {}
            Err(error) => break Err(error),
        }
    };
    crossterm::terminal::disable_raw_mode()?;
    key
}
