//! Thin binary: parse arguments, call the library, print, map the result to an exit code.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use anomalies::app::{self, AppError, Request};
use anomalies::engine::{Choice, ConnectOptions};
use anomalies::exit;
use anomalies::level::Level;
use anomalies::render::{self, Style};
use anomalies::runner::RunOptions;
use anomalies::scenario::Scenario;
use cli::{Cli, ColorArg, Command, EngineArg, Format, LevelArg, RunArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match execute(cli) {
        Ok(()) => exit::OK,
        Err(error) => {
            let code = match error.downcast_ref::<AppError>() {
                Some(AppError::Interrupted) => exit::INTERRUPTED,
                _ => exit::ERROR,
            };
            eprintln!("error: {error:#}");
            code
        }
    };
    ExitCode::from(code as u8)
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::List { format } => list(format),
        Command::Run(args) => run(args),
    }
}

fn list(format: Format) -> anyhow::Result<()> {
    let scenarios = Scenario::builtins();
    let text = match format {
        Format::Json => {
            let items: Vec<_> = scenarios
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "id": s.id, "anomaly": s.anomaly, "code": s.code, "title": s.title,
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&items)?)
        }
        Format::Table => {
            let width = scenarios.iter().map(|s| s.id.len()).max().unwrap_or(0);
            let code_width = scenarios.iter().map(|s| s.code.len()).max().unwrap_or(0);
            scenarios
                .iter()
                .map(|s| {
                    format!(
                        "{:<width$}  {:<code_width$}  {}: {}\n",
                        s.id, s.code, s.anomaly, s.title
                    )
                })
                .collect()
        }
    };
    print(&text)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let levels = match args.level {
        LevelArg::ReadUncommitted => vec![Level::ReadUncommitted],
        LevelArg::ReadCommitted => vec![Level::ReadCommitted],
        LevelArg::RepeatableRead => vec![Level::RepeatableRead],
        LevelArg::Serializable => vec![Level::Serializable],
        LevelArg::All => Level::ALL.to_vec(),
    };
    let request = Request {
        scenario,
        levels,
        interleaving: args.interleaving,
        connect: ConnectOptions {
            choice: match args.engine {
                EngineArg::Auto => Choice::Auto,
                EngineArg::Postgres => Choice::Postgres,
                EngineArg::Sqlite => Choice::Sqlite,
            },
            url: args.url,
            connect_timeout: args.connect_timeout,
            pg_bindir: args.pg_bindir,
        },
        options: RunOptions {
            step_timeout: args.step_timeout,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reports = runtime.block_on(app::run(&request, &mut |notice| eprintln!("{notice}")))?;

    let color = match args.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => {
            std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    colored::control::set_override(color);
    let style = Style {
        color,
        ..Style::default()
    };
    let text = match args.format {
        Format::Json if reports.len() == 1 => render::json(&reports[0]),
        Format::Json => render::json_all(&reports),
        Format::Table => {
            let mut text = reports
                .iter()
                .map(|r| render::table(r, style))
                .collect::<Vec<_>>()
                .join("\n\n");
            if reports.len() > 1 {
                text.push('\n');
                text.push_str(&render::summary(&reports, style));
            }
            text
        }
    };
    print(&text)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}
