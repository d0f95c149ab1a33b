//! The binary's terminal side: an error on one line, the progress bar, color and width, and
//! writing to stdout.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use anomalies::render::Style;

use crate::cli::ColorArg;

/// An error on one line, as every exit-2 message is: a TOML parser's "expected …" line or a
/// database's multi-line text is joined to the first.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with([';', ':', ',']) {
                " "
            } else {
                "; "
            });
        }
        out.push_str(line);
    }
    out
}

/// A progress bar on stderr when it is a terminal; otherwise one that draws nothing.
pub(crate) fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// [`progress_bar`] with the time left, for an explore's orders.
pub(crate) fn progress_bar_with_eta(total: u64) -> ProgressBar {
    let bar = progress_bar(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} (about {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Color on when asked, or under `auto` on a terminal without NO_COLOR; the width asked for,
/// else the terminal's, else (piped) COLUMNS, else 100.
pub(crate) fn style(color: ColorArg, width: Option<u16>) -> Style {
    let color = match color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    colored::control::set_override(color);
    Style {
        color,
        width: width.unwrap_or_else(terminal_width),
    }
}

fn terminal_width() -> u16 {
    let terminal = std::io::stdout()
        .is_terminal()
        .then(|| crossterm::terminal::size().ok())
        .flatten()
        .map(|(columns, _)| columns);
    let columns = || {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<u16>().ok())
    };
    terminal
        .or_else(columns)
        .filter(|&w| w > 0)
        .unwrap_or(100)
        .clamp(40, 1000)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
