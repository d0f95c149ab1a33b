//! The only code that talks to databases.
//!
//! An [`Engine`] is a connected database (a server at a URL, a throwaway cluster, or an embedded
//! SQLite); [`Engine::prepare`] makes a [`Run`]: a private copy of a scenario's data and one
//! connection per session, at one isolation level. The runner drives a `Run` step by step.

pub mod cluster;
mod postgres;
mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::level::{Level, SessionLevel};
use crate::scenario::{EngineKind, Scenario};
use crate::timeline::{ResultSet, StepResult};

/// Which engine a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A URL means PostgreSQL there; else installed server binaries mean a throwaway PostgreSQL;
    /// else SQLite.
    Auto,
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub choice: Choice,
    /// A libpq-style URL or key=value string; PG* variables fill in what it leaves out.
    pub url: Option<String>,
    pub connect_timeout: Duration,
    /// Server binaries to start a throwaway PostgreSQL from, instead of searching for them.
    pub pg_bindir: Option<PathBuf>,
}

/// What the header says about the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineInfo {
    pub name: EngineKind,
    pub version: String,
    /// `throwaway cluster`, `127.0.0.1:5432/app`, `journal wal`...
    pub detail: String,
}

/// A failure of the tool's own work with a database: no server, a lost connection, bad setup SQL.
/// A statement of a step that fails is not this: it is a [`StepResult::Failed`] in the timeline.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("SQLite: {0}")]
    Sqlite(String),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
}

/// A connected database.
pub enum Engine {
    Postgres(Box<postgres::PgEngine>),
    Sqlite(sqlite::SqliteEngine),
}

/// One scenario at one level, ready to run: its data set up, one connection per session.
pub enum Run {
    Postgres(postgres::PgRun),
    Sqlite(sqlite::SqliteRun),
}

/// Where a sent step stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Done(StepResult),
    /// Waiting for a lock held by these sessions.
    Waiting(Vec<usize>),
    /// Neither finished nor seen waiting before the deadline.
    TimedOut,
}

impl Engine {
    /// Connects as the options say; also returns a notice to show the user, if any.
    pub async fn connect(
        options: &ConnectOptions,
    ) -> Result<(Engine, Option<String>), EngineError> {
        match (options.choice, &options.url) {
            (Choice::Sqlite, _) => Ok((Engine::Sqlite(sqlite::SqliteEngine::new()?), None)),
            (Choice::Postgres | Choice::Auto, Some(url)) => Ok((
                Engine::Postgres(Box::new(
                    postgres::PgEngine::connect_url(url, options.connect_timeout).await?,
                )),
                None,
            )),
            (choice, None) => {
                let bindir = match &options.pg_bindir {
                    Some(dir) => cluster::has_server(dir).then(|| dir.clone()),
                    None => cluster::find_bindir(),
                };
                let looked = match &options.pg_bindir {
                    Some(dir) => format!("no PostgreSQL server binaries in {}", dir.display()),
                    None => "no PostgreSQL server binaries found (looked on PATH, through \
                             pg_config and under /usr/lib/postgresql/*/bin)"
                        .to_string(),
                };
                match bindir {
                    Some(bindir) => {
                        let engine = postgres::PgEngine::throwaway(&bindir).await?;
                        let notice = engine.cluster_notice();
                        Ok((Engine::Postgres(Box::new(engine)), notice))
                    }
                    None if choice == Choice::Auto => Ok((
                        Engine::Sqlite(sqlite::SqliteEngine::new()?),
                        Some(format!(
                            "notice: {looked} and no --url given, so this runs on embedded \
                             SQLite; install the PostgreSQL server (apt-get install postgresql) \
                             or pass --url to see PostgreSQL"
                        )),
                    )),
                    None => Err(EngineError::Setup(format!(
                        "{looked}: install the PostgreSQL server (apt-get install postgresql), \
                         point --pg-bindir at its binaries, or pass --url"
                    ))),
                }
            }
        }
    }

    /// On a user's server (`--url`) where scenarios run with the user's own privileges (runs get
    /// no roles of their own), who that is and why: `user me at db:5432/app, who may not create
    /// roles`.
    pub fn users_server(&self) -> Option<String> {
        match self {
            Engine::Postgres(engine) => engine.users_server(),
            Engine::Sqlite(_) => None,
        }
    }

    pub fn info(&self) -> &EngineInfo {
        match self {
            Engine::Postgres(engine) => &engine.info,
            Engine::Sqlite(engine) => &engine.info,
        }
    }

    /// The header's description of the engine for a run whose sessions run at `levels`.
    pub fn info_at(&self, scenario: &Scenario, levels: &[SessionLevel]) -> EngineInfo {
        let mut info = self.info().clone();
        if matches!(self, Engine::Sqlite(_)) {
            info.detail.push_str(&sqlite::detail(scenario, levels));
        }
        info
    }

    /// Each session's level in a run at `level`: its own when it pins one, as the engine runs it.
    pub fn session_levels(&self, scenario: &Scenario, level: Level) -> Vec<SessionLevel> {
        scenario
            .sessions
            .iter()
            .map(|session| {
                let requested = session.pinned.level.unwrap_or(level);
                SessionLevel {
                    requested,
                    effective: self.effective_level(requested),
                    pinned: session.pinned.level.is_some(),
                    read_only: session.pinned.read_only,
                    deferrable: session.pinned.deferrable,
                }
            })
            .collect()
    }

    /// The level the engine really runs when asked for `level`.
    pub fn effective_level(&self, level: Level) -> Level {
        match (self, level) {
            (Engine::Postgres(_), Level::ReadUncommitted) => Level::ReadCommitted,
            (Engine::Postgres(_), level) => level,
            (Engine::Sqlite(_), Level::ReadUncommitted) => Level::ReadUncommitted,
            (Engine::Sqlite(_), _) => Level::Serializable,
        }
    }

    /// Sets up the scenario's data privately and opens one connection per session, each at its
    /// level in a run at `level` ([`Engine::session_levels`]).
    pub async fn prepare(&mut self, scenario: &Scenario, level: Level) -> Result<Run, EngineError> {
        let levels = self.session_levels(scenario, level);
        match self {
            Engine::Postgres(engine) => Ok(Run::Postgres(engine.prepare(scenario, &levels).await?)),
            Engine::Sqlite(engine) => Ok(Run::Sqlite(engine.prepare(scenario, &levels)?)),
        }
    }

    /// Removes whatever a run that did not finish left (schemas, files) and stops a throwaway
    /// server. Safe to call after an interrupted or panicked run.
    pub async fn close(self) -> Result<(), EngineError> {
        match self {
            Engine::Postgres(engine) => (*engine).close().await,
            Engine::Sqlite(engine) => engine.close(),
        }
    }
}

impl Run {
    /// Sends a step's SQL on a session's connection, without waiting for its answer.
    pub fn send(&mut self, session: usize, sql: &str) {
        match self {
            Run::Postgres(run) => run.send(session, sql),
            Run::Sqlite(run) => run.send(session, sql),
        }
    }

    /// Waits until the step sent on `session` finishes or the database says it waits.
    pub async fn settle(
        &mut self,
        session: usize,
        deadline: Instant,
    ) -> Result<Settled, EngineError> {
        match self {
            Run::Postgres(run) => run.settle(session, deadline).await,
            Run::Sqlite(run) => run.settle(session, deadline).await,
        }
    }

    /// After another step finished: has the waiting step on `session` finished, or does it wait still?
    pub async fn recheck(
        &mut self,
        session: usize,
        deadline: Instant,
    ) -> Result<Settled, EngineError> {
        match self {
            Run::Postgres(run) => run.settle(session, deadline).await,
            Run::Sqlite(run) => run.recheck(session, deadline).await,
        }
    }

    /// Whether the engine ends a cycle of waits by itself (picks a deadlock victim) rather than
    /// refusing the step that would close it.
    pub fn breaks_deadlocks(&self) -> bool {
        match self {
            Run::Postgres(_) => true,
            Run::Sqlite(_) => false,
        }
    }

    /// Waits until one of the `waiting` sessions' steps ends by itself (a deadlock victim, say).
    /// `None` when none does before the deadline, or when the engine never ends a wait by itself.
    pub async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        match self {
            Run::Postgres(run) => run.wait_any(waiting, deadline).await,
            // SQLite's busy handler waits for the runner's word, and SQLite answers a deadlock
            // with SQLITE_BUSY at once instead of waiting: a wait still open now never ends.
            Run::Sqlite(_) => Ok(None),
        }
    }

    /// Cancels the step in flight on `session` and returns once it has ended.
    pub async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        match self {
            Run::Postgres(run) => run.cancel(session).await,
            Run::Sqlite(run) => run.cancel(session).await,
        }
    }

    /// Rolls back whatever transaction `session` has open.
    pub async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        match self {
            Run::Postgres(run) => run.rollback(session).await,
            Run::Sqlite(run) => run.rollback(session).await,
        }
    }

    /// Keeps a copy of the data as the setup left it, for [`Run::reset`]. Once per run.
    pub async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        match self {
            Run::Postgres(run) => run.save_initial_state().await,
            Run::Sqlite(run) => run.save_initial_state().await,
        }
    }

    /// Rolls back every session and puts the data back as the setup left it (DELETE and
    /// INSERT from the saved copy: no DDL), so the same connections can replay another order.
    pub async fn reset(&mut self) -> Result<(), EngineError> {
        match self {
            Run::Postgres(run) => run.reset().await,
            Run::Sqlite(run) => run.reset().await,
        }
    }

    /// Runs the scenario's final check query on the end state, from outside the sessions.
    pub async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        match self {
            Run::Postgres(run) => run.final_query(sql).await,
            Run::Sqlite(run) => run.final_query(sql).await,
        }
    }

    /// Closes the sessions and removes the run's data.
    pub async fn finish(self) -> Result<(), EngineError> {
        match self {
            Run::Postgres(run) => run.finish().await,
            Run::Sqlite(run) => run.finish().await,
        }
    }
}

/// SQL of the tool's own that keeps a copy of `tables` as the setup left them, and SQL that puts
/// them back (DELETE and INSERT, no DDL), for replaying many orders on one set of connections.
fn snapshot_sql(tables: &[String]) -> (String, String) {
    let save = tables
        .iter()
        .map(|t| format!("CREATE TABLE \"anomalies_saved_{t}\" AS SELECT * FROM \"{t}\";"))
        .collect();
    let deletes = tables.iter().rev().map(|t| format!("DELETE FROM \"{t}\";"));
    let inserts = tables
        .iter()
        .map(|t| format!("INSERT INTO \"{t}\" SELECT * FROM \"anomalies_saved_{t}\";"));
    (save, deletes.chain(inserts).collect())
}
