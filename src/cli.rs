//! Command-line arguments. The only file that knows clap.

use std::path::PathBuf;
use std::time::Duration;

use anomalies::scenario::EngineKind;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "anomalies",
    version,
    about = "Replays Alice and John's interleaved transactions on a real database and shows which isolation anomalies happen, and what prevents them"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in scenarios and the fixes each offers.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Replay a scenario (a built-in id or a .toml file) and judge the outcome.
    Run(RunArgs),
    /// Run scenarios at every level and print the level × anomaly grid.
    Matrix(MatrixArgs),
    /// Run scenarios, and each with every fix it offers, and compare each outcome with the
    /// expectation its file declares.
    Check(CheckArgs),
    /// Run every order of a scenario's steps and count how each ends.
    Explore(ExploreArgs),
    /// Measure the concurrency-control strategies under contention (strategy × workers × hot
    /// accounts), and count the money each loses, from the database.
    Bench(BenchArgs),
    /// Explain a scenario: the story, the anomaly and its formal names, what each engine does
    /// at each level, and the fixes with when to prefer each.
    Explain {
        /// A built-in scenario id (see `anomalies list`) or a path to a scenario file.
        scenario: String,

        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,

        /// Width of the text in columns (default: the terminal's; when piped, COLUMNS or 100).
        #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..=1000))]
        width: Option<u16>,
        /// When to color the output (NO_COLOR is honoured under `auto`).
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
    },
    /// Print a shell's completion script (e.g. `anomalies completions bash >
    /// ~/.local/share/bash-completion/completions/anomalies`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, in roff (`anomalies man > ~/.local/share/man/man1/anomalies.1`),
    /// or a subcommand's (`anomalies man run > …/anomalies-run.1`).
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
    },
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "anomalies", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The manual page: anomalies(1), or a subcommand's own, anomalies-run(1), which the first
/// names under SUBCOMMANDS. `None` when there is no such subcommand.
pub fn man(subcommand: Option<&str>) -> Option<std::io::Result<String>> {
    let command = Cli::command();
    let page = match subcommand {
        None => command,
        Some(name) => {
            let sub = command.find_subcommand(name)?.clone();
            sub.name(format!("anomalies-{name}"))
        }
    };
    let mut out = Vec::new();
    let rendered = clap_mangen::Man::new(page).render(&mut out);
    Some(rendered.map(|()| String::from_utf8_lossy(&out).into_owned()))
}

#[derive(Debug, clap::Args)]
pub struct ExploreArgs {
    /// A built-in scenario id (see `anomalies list`) or a path to a scenario file.
    pub scenario: String,

    /// Isolation level to explore, or `all`.
    #[arg(long, short, value_enum, default_value_t = LevelArg::All)]
    pub level: LevelArg,

    /// Which database, as for `run`.
    #[arg(long, short, value_parser = engine_arg(), default_value = "auto")]
    pub engine: EngineArg,

    /// Explore with one of the scenario's fixes in place.
    #[arg(long, value_name = "FIX")]
    pub fix: Option<String>,

    /// Run a sample of this many orders when there are more (drawn with a fixed seed).
    #[arg(long)]
    pub limit: Option<usize>,

    /// Share the orders among this many runs at once, each with its own connections and its
    /// own schema (or database, or file) [default: the number of cores; always 1 for a
    /// scenario that pauses a standby's replay, which is the server's]
    #[arg(long, short, value_name = "W", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// Run each order this many times, and name the orders that did not end the same way each
    /// time as racy
    #[arg(long, value_name = "R", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub repeat: u16,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Width of the tables in columns (default: the terminal's; when piped, COLUMNS or 100).
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,
    /// When to color the output (NO_COLOR is honoured under `auto`).
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
}

/// Which scenarios and which databases, for `matrix` and `check`.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Scenario files or directories of them (default: the built-in scenarios).
    pub paths: Vec<String>,

    /// Engines to run on: auto, an engine, all, or a list such as postgres,mariadb.
    #[arg(long, short, value_delimiter = ',', value_parser = engines_arg(), default_value = "auto")]
    pub engine: Vec<EnginesArg>,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Width of the tables in columns (default: the terminal's; when piped, COLUMNS or 100).
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,
    /// When to color the output (NO_COLOR is honoured under `auto`).
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
}

/// Where PostgreSQL is, and how long to wait for it.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// A PostgreSQL URL or key=value connection string; PG* variables fill in the rest.
    /// Runs work in schemas of their own and, where the user may create roles, as roles of
    /// their own, dropped afterwards. For a scenario on a primary and a hot standby, give the
    /// standby too: `--url standby=URL` (and the primary as `--url URL` or `--url
    /// primary=URL`). For your own Galera cluster, one per node: `--url 1=URL --url 2=URL`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "[NODE=]URL"
    )]
    pub url: Vec<String>,

    /// Start the throwaway PostgreSQL from the server binaries in this directory (with
    /// `postgres` and `initdb`) instead of searching PATH, pg_config and /usr/lib/postgresql.
    #[arg(
        long,
        env = "ANOMALIES_PG_BINDIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub pg_bindir: Option<PathBuf>,

    /// Start the throwaway MariaDB from the `mariadbd` (or `mysqld`) in this directory, with
    /// `mariadb-install-db` beside it, in ../bin or in ../scripts, instead of searching PATH
    /// and /usr/sbin.
    #[arg(
        long,
        env = "ANOMALIES_MARIADB_BINDIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub mariadb_bindir: Option<PathBuf>,

    /// The Redis for scenarios with Redis steps (a redis:// or unix:// URL; no TLS yet). Every key
    /// a run uses carries a prefix of its own, and the run deletes exactly those keys. Without
    /// it, such scenarios start a throwaway redis-server on a private socket.
    #[arg(
        long,
        env = "ANOMALIES_REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis_url: Option<String>,

    /// Cancel a step that neither finishes nor waits on a lock within this time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub step_timeout: Duration,

    /// Give up connecting to a database server (or Redis) after this time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub connect_timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    #[command(flatten)]
    pub selection: Selection,

    /// Add a row for every fix each scenario offers, under the scenario's own row.
    #[arg(long)]
    pub fixes: bool,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = MatrixFormat::Table)]
    pub format: MatrixFormat,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub selection: Selection,

    /// Isolation level to check, or `all`.
    #[arg(long, short, value_enum, default_value_t = LevelArg::All)]
    pub level: LevelArg,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,

    /// Rewrite the expectations in the given files to what was observed, leaving the rest of
    /// each file as it is.
    #[arg(long)]
    pub update: bool,

    /// Also fail when a run's scenario file says nothing for its engine and level, so a new
    /// scenario gates CI until its expectations are written.
    #[arg(long, conflicts_with = "update")]
    pub strict: bool,
}

/// `auto`, an engine's name, or `all` (for `matrix` and `check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginesArg {
    Auto,
    Only(EngineKind),
    All,
    /// A throwaway MariaDB Galera cluster, for the scenarios of a multi-master topology.
    Galera,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    Table,
    Json,
    Markdown,
    Mermaid,
    Svg,
    /// One self-contained page to step through in a browser; a tab per level.
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatrixFormat {
    Table,
    Json,
    Markdown,
    Svg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Junit,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A built-in scenario id (see `anomalies list`) or a path to a scenario file.
    pub scenario: String,

    /// Isolation level to request, or `all` for every level (default: read-committed, or the
    /// level the fix is meant for).
    #[arg(long, short, value_enum)]
    pub level: Option<LevelArg>,

    /// Run with one of the scenario's fixes in place (`anomalies explain SCENARIO` names them).
    #[arg(long, value_name = "FIX")]
    pub fix: Option<String>,

    /// Which database: a URL means the engine its scheme names (mysql:// and mariadb:// mean
    /// MariaDB, anything else PostgreSQL); `auto` otherwise starts a throwaway PostgreSQL from
    /// installed server binaries, or falls back to embedded SQLite.
    #[arg(long, short, value_parser = engine_arg(), default_value = "auto")]
    pub engine: EngineArg,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Output format: the terminal table, JSON, a picture (Markdown, Mermaid, SVG), or a page to
    /// step through in a browser (HTML).
    #[arg(long, short, value_enum, default_value_t = RunFormat::Table)]
    pub format: RunFormat,

    /// Which of the scenario's interleavings to replay (default: its first).
    #[arg(long, short)]
    pub interleaving: Option<String>,

    /// Classroom mode: before each step, show who is about to do what and wait for Enter
    /// (q quits, cleaning up).
    #[arg(long)]
    pub step: bool,

    /// Classroom mode that advances by itself, one step per this much time (e.g. 800ms).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", conflicts_with = "step")]
    pub pace: Option<Duration>,

    /// Width of the tables in columns (default: the terminal's; when piped, COLUMNS or 100).
    #[arg(long, value_name = "COLUMNS", value_parser = clap::value_parser!(u16).range(40..=1000))]
    pub width: Option<u16>,
    /// When to color the output (NO_COLOR is honoured under `auto`).
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
}

/// A level by its canonical name, or its short one (`si`, snapshot isolation, is what
/// PostgreSQL's repeatable read is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LevelArg {
    #[value(alias = "ru")]
    ReadUncommitted,
    #[value(alias = "rc")]
    ReadCommitted,
    #[value(alias = "rr", alias = "si")]
    RepeatableRead,
    #[value(alias = "ser")]
    Serializable,
    All,
}

/// `auto` or an engine's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    Auto,
    Only(EngineKind),
    /// A throwaway MariaDB Galera cluster, for the scenarios of a multi-master topology.
    Galera,
}

/// The engines' names come from the engines themselves, so a new one needs nothing here.
fn engine_arg() -> impl TypedValueParser<Value = EngineArg> {
    let names = std::iter::once("auto")
        .chain(EngineKind::ALL.map(EngineKind::name))
        .chain(["galera"]);
    PossibleValuesParser::new(names.collect::<Vec<_>>()).map(|name| {
        match (name.as_str(), EngineKind::named(&name)) {
            (_, Some(kind)) => EngineArg::Only(kind),
            ("galera", None) => EngineArg::Galera,
            _ => EngineArg::Auto,
        }
    })
}

fn engines_arg() -> impl TypedValueParser<Value = EnginesArg> {
    let names = ["auto", "all"]
        .into_iter()
        .chain(EngineKind::ALL.map(EngineKind::name))
        .chain(["galera"]);
    PossibleValuesParser::new(names.collect::<Vec<_>>()).map(|name| {
        match (name.as_str(), EngineKind::named(&name)) {
            (_, Some(kind)) => EnginesArg::Only(kind),
            ("all", None) => EnginesArg::All,
            ("galera", None) => EnginesArg::Galera,
            _ => EnginesArg::Auto,
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What the workers do: payments on a bank's accounts, or claiming jobs from one queue.
    #[arg(long, value_enum, default_value_t = WorkloadArg::Payments)]
    pub workload: WorkloadArg,

    /// Strategies to measure, such as optimistic,for-update,atomic (default: all of the
    /// workload's).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,

    /// Numbers of workers, each with its own connection.
    #[arg(long, default_value = "1,4,16")]
    pub workers: String,

    /// Sizes of the hot set: how many accounts the workers pick from.
    #[arg(long, default_value = "5,1000")]
    pub hot: String,

    /// Measured time per cell.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
    pub duration: Duration,

    /// Warm-up per cell, not counted.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    pub warmup: Duration,

    /// Seed of the workers' choices of accounts and amounts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Which database, as for `run`.
    #[arg(long, short, value_parser = engine_arg(), default_value = "auto")]
    pub engine: EngineArg,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    #[arg(long, short, value_enum, default_value_t = BenchFormat::Table)]
    pub format: BenchFormat,

    /// When to color the output (NO_COLOR is honoured under `auto`).
    #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,

    /// Test hook: each worker makes one payment (or claims one job), held between its read and
    /// its write until every worker has read, where the read takes no lock.
    #[arg(long, hide = true)]
    pub rendezvous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    Payments,
    Queue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchFormat {
    Table,
    Json,
    Csv,
    Markdown,
    Svg,
}
