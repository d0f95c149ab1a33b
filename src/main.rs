//! Thin binary: parse arguments, call the library, print, map the result to an exit code.

mod bench_mode;
mod cli;
mod output;
mod requests;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use anomalies::app::{self, AppError, ExploreRequest, Request, Runs};
use anomalies::check::Status;
use anomalies::classroom::{self, Classroom};
use anomalies::engine::Choice;
use anomalies::exit;
use anomalies::level::Level;
use anomalies::render::{self, Style};
use anomalies::report::Report;
use anomalies::scenario::{EngineKind, Scenario};
use cli::{
    CheckArgs, CheckFormat, Cli, Command, EnginesArg, ExploreArgs, Format, MatrixArgs,
    MatrixFormat, RunArgs, RunFormat, Selection,
};
use indicatif::ProgressBar;
use output::{one_line, print, progress_bar, style};
use requests::{connect_options, engine_choice, levels, run_options, with_fix};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            let code = match error.downcast_ref::<AppError>() {
                Some(AppError::Interrupted) => exit::INTERRUPTED,
                _ => exit::ERROR,
            };
            eprintln!("error: {}", one_line(&format!("{error:#}")));
            code
        }
    };
    ExitCode::from(code as u8)
}

fn execute(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::List { format } => list(format).map(|()| exit::OK),
        Command::Run(args) => run(args),
        Command::Matrix(args) => matrix(args),
        Command::Check(args) => check(args),
        Command::Explore(args) => explore(args),
        Command::Bench(args) => bench_mode::bench(args),
        Command::Completions { shell } => print(&cli::completions(shell)).map(|()| exit::OK),
        Command::Man { subcommand } => match cli::man(subcommand.as_deref()) {
            Some(page) => print(&page.context("cannot write the manual page")?).map(|()| exit::OK),
            None => Err(AppError::Usage(format!(
                "no subcommand {}: `anomalies --help` lists them",
                subcommand.unwrap_or_default()
            ))
            .into()),
        },
        Command::Explain {
            scenario,
            format,
            color,
            width,
        } => explain(&scenario, format, style(color, width)).map(|()| exit::OK),
    }
}

fn explain(name: &str, format: Format, style: Style) -> anyhow::Result<()> {
    let scenario = Scenario::load(name)?;
    let text = match format {
        Format::Table => render::explain::text(&scenario, style),
        Format::Json => render::explain::json(&scenario),
    };
    print(&text)
}

fn list(format: Format) -> anyhow::Result<()> {
    let scenarios = Scenario::builtins();
    print(&match format {
        Format::Json => render::list::json(&scenarios),
        Format::Table => render::list::table(&scenarios),
    })
}

/// A command that printed its runs exits 2 when one of them was broken: a scenario error has
/// no verdict, so the command did not do what was asked.
fn exit_code<'a>(reports: impl IntoIterator<Item = &'a Report>) -> i32 {
    if reports.into_iter().any(|r| r.verdict.is_error()) {
        exit::ERROR
    } else {
        exit::OK
    }
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
    let scenario = with_fix(Scenario::load(&args.scenario)?, args.fix.as_deref())?;
    // A fix may say which level it is meant for; otherwise PostgreSQL's default.
    let levels = match args.level {
        Some(level) => levels(level),
        None => vec![scenario
            .applied
            .as_ref()
            .and_then(|fix| fix.level)
            .unwrap_or(Level::ReadCommitted)],
    };
    let request = Request {
        scenarios: vec![scenario],
        levels,
        interleaving: args.interleaving.clone(),
        connect: connect_options(&args.connection, engine_choice(args.engine))?,
        options: run_options(&args.connection),
    };
    let style = style(args.color, args.width);
    let stepping = args.step || args.pace.is_some();
    let reports = if stepping {
        if args.format != RunFormat::Table {
            anyhow::bail!("--step and --pace draw the table: leave out --format");
        }
        let classroom = Classroom {
            pace: args.pace,
            style,
        };
        let terminal = std::io::stdout().is_terminal();
        let stdout = Box::new(std::io::stdout());
        match classroom::step_through(&request, classroom, stdout, terminal, &mut |notice| {
            eprintln!("{notice}")
        }) {
            Err(AppError::Quit) => {
                eprintln!("{}", AppError::Quit);
                return Ok(exit::OK);
            }
            other => {
                let reports = other?;
                if terminal {
                    print("\x1b[2J\x1b[H")?;
                }
                reports
            }
        }
    } else {
        execute_request(&request, &ProgressBar::hidden())?.reports
    };
    if reports.is_empty() {
        return Ok(exit::OK);
    }
    let pictures =
        |draw: fn(&Report) -> String| reports.iter().map(draw).collect::<Vec<_>>().join("\n");
    let text = match args.format {
        RunFormat::Json if reports.len() == 1 => render::json(&reports[0]),
        RunFormat::Json => render::json_all(&reports),
        RunFormat::Markdown => pictures(render::markdown),
        RunFormat::Mermaid if reports.len() > 1 => render::mermaid_markdown(&reports),
        RunFormat::Mermaid => pictures(render::mermaid),
        RunFormat::Svg if reports.len() > 1 => {
            anyhow::bail!("--format svg draws one run: choose one --level")
        }
        RunFormat::Svg => pictures(render::svg),
        RunFormat::Html => render::html(&reports),
        RunFormat::Table => {
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
    print(&text)?;
    Ok(exit_code(&reports))
}

fn matrix(args: MatrixArgs) -> anyhow::Result<i32> {
    let Runs { reports, not_run } =
        run_selection(&args.selection, Level::ALL.to_vec(), args.fixes)?;
    let text = match args.format {
        MatrixFormat::Table => {
            let mut text =
                render::matrix::table(&reports, style(args.selection.color, args.selection.width));
            text.push_str(&not_run_line(&not_run));
            text
        }
        MatrixFormat::Markdown => render::matrix::markdown(&reports),
        MatrixFormat::Json => render::matrix::json(&reports),
        MatrixFormat::Svg => render::matrix::svg(&reports),
    };
    print(&text)?;
    Ok(exit_code(&reports))
}

/// `not run, the engine lacks what it needs: …`, naming each run an engine could not do (a fix
/// it lacks, nodes it cannot give); empty when there is none.
fn not_run_line(not_run: &[anomalies::report::NotRun]) -> String {
    if not_run.is_empty() {
        return String::new();
    }
    let names: Vec<String> = not_run.iter().map(ToString::to_string).collect();
    format!(
        "not run, the engine lacks what it needs: {}\n",
        names.join(", ")
    )
}

fn check(args: CheckArgs) -> anyhow::Result<i32> {
    let Runs {
        reports,
        not_run: skipped,
    } = run_selection(&args.selection, levels(args.level), true)?;
    let failed = |status: Status| {
        reports
            .iter()
            .any(|r| anomalies::check::status(r) == status)
    };
    if args.update {
        for file in anomalies::check::update(&reports)? {
            eprintln!("updated {}", file.display());
        }
        // A broken run is never written down as what the database does.
        for report in reports.iter().filter(|r| r.verdict.is_error()) {
            eprintln!("not written: {}", anomalies::check::line(report));
        }
        return Ok(if failed(Status::Error) {
            exit::EXPECTATION_FAILED
        } else {
            exit::OK
        });
    }
    let text = match args.format {
        CheckFormat::Text => {
            let mut text =
                render::check::text(&reports, style(args.selection.color, args.selection.width));
            text.push_str(&not_run_line(&skipped));
            text
        }
        CheckFormat::Junit => render::check::junit(&reports, &skipped),
        CheckFormat::Json => render::check::json(&reports, &skipped),
        CheckFormat::Markdown => render::check::markdown(&reports),
    };
    print(&text)?;
    let failed = failed(Status::Mismatch)
        || failed(Status::Error)
        || (args.strict && failed(Status::NoExpectation));
    Ok(if failed {
        exit::EXPECTATION_FAILED
    } else {
        exit::OK
    })
}

fn explore(args: ExploreArgs) -> anyhow::Result<i32> {
    let scenario = with_fix(Scenario::load(&args.scenario)?, args.fix.as_deref())?;
    let orders = anomalies::explore::orders(&scenario, args.limit).map_err(anyhow::Error::msg)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = anomalies::explore::jobs(args.jobs.map(usize::from), cores, &scenario);
    let request = ExploreRequest {
        scenario,
        levels: levels(args.level),
        orders,
        connect: connect_options(&args.connection, engine_choice(args.engine))?,
        step_timeout: args.connection.step_timeout,
        keep_lines: matches!(args.format, Format::Json),
        jobs,
        repeat: usize::from(args.repeat),
    };
    let bar =
        output::progress_bar_with_eta((request.orders.orders.len() * request.levels.len()) as u64);
    let explorations = runtime()?.block_on(app::explore(
        &request,
        &mut |notice| bar.suspend(|| eprintln!("{notice}")),
        &mut |explored| {
            bar.set_message(explored.report.requested.to_string());
            bar.inc(1);
        },
    ))?;
    bar.finish_and_clear();
    let text = match args.format {
        Format::Table => render::explore::table(
            &request.scenario,
            &request.orders,
            &explorations,
            style(args.color, args.width),
        ),
        Format::Json => render::explore::json(&request.scenario, &request.orders, &explorations),
    };
    print(&text)?;
    Ok(match explorations.iter().any(|e| e.any_error) {
        true => exit::ERROR,
        false => exit::OK,
    })
}

/// Runs the selected scenarios (each followed by its fixes' variants when `fixes`) on each
/// selected engine, with a progress bar on a terminal; the fixes an engine could not run are
/// named too.
fn run_selection(selection: &Selection, levels: Vec<Level>, fixes: bool) -> anyhow::Result<Runs> {
    let mut scenarios = Vec::new();
    for scenario in Scenario::load_paths(&selection.paths)? {
        let variants: Vec<Scenario> = if fixes {
            scenario
                .fixes
                .iter()
                .map(|f| (*f.variant).clone())
                .collect()
        } else {
            Vec::new()
        };
        scenarios.push(scenario);
        scenarios.extend(variants);
    }
    let mut choices = Vec::new();
    for engine in &selection.engine {
        let expanded: Vec<Choice> = match engine {
            EnginesArg::Auto => vec![Choice::Auto],
            EnginesArg::Only(kind) => vec![Choice::Only(*kind)],
            EnginesArg::All => EngineKind::ALL.map(Choice::Only).to_vec(),
            EnginesArg::Galera => vec![Choice::Galera],
        };
        for choice in expanded {
            if !choices.contains(&choice) {
                choices.push(choice);
            }
        }
    }
    let bar = progress_bar((scenarios.len() * levels.len() * choices.len()) as u64);
    let requests: Vec<Request> = choices
        .into_iter()
        .map(|choice| {
            // `--url 2=URL` makes `auto` a Galera cluster.
            let connect = connect_options(&selection.connection, choice)?;
            // A Galera cluster runs the scenarios of several nodes that each take writes; one
            // that the user names anyway is refused with the reason.
            let multi_master: Vec<Scenario> = scenarios
                .iter()
                .filter(|s| matches!(s.topology, anomalies::scenario::Topology::MultiMaster(_)))
                .cloned()
                .collect();
            let scenarios = match connect.choice {
                Choice::Galera if !multi_master.is_empty() => multi_master,
                _ => scenarios.clone(),
            };
            Ok(Request {
                scenarios,
                levels: levels.clone(),
                interleaving: None,
                connect,
                options: run_options(&selection.connection),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // Every engine at once: the output is still in the engines' order.
    let each = runtime()?.block_on(app::run_each(
        &requests,
        &|notice| bar.suspend(|| eprintln!("{notice}")),
        &|report| {
            bar.set_message(format!("{} {}", report.scenario.id, report.requested));
            bar.inc(1);
        },
    ))?;
    bar.finish_and_clear();
    let mut all = Runs::default();
    for runs in each {
        all.reports.extend(runs.reports);
        all.not_run.extend(runs.not_run);
    }
    Ok(all)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn execute_request(request: &Request, bar: &ProgressBar) -> anyhow::Result<Runs> {
    let runs = runtime()?.block_on(app::run(
        request,
        &mut |notice| bar.suspend(|| eprintln!("{notice}")),
        &mut |report| {
            bar.set_message(format!("{} {}", report.scenario.id, report.requested));
            bar.inc(1);
        },
        None,
    ))?;
    Ok(runs)
}
