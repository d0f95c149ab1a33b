//! The only code that talks to databases.
//!
//! An [`Engine`] is a connected database (a server at a URL, a throwaway cluster, or an embedded
//! SQLite); [`Engine::prepare`] makes a [`Run`]: a private copy of a scenario's data and one
//! connection per session, at one isolation level. The runner drives a `Run` step by step.

pub mod bench;
mod cache;
pub mod cluster;
mod error;
pub mod mariadb;
mod postgres;
mod probe;
mod redis;
mod run;
mod shared;
mod sqlite;

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::time::Instant;

use crate::level::{Level, SessionLevel};
use crate::scenario::{EngineKind, Node, ReplicaAction, Scenario, Topology};
use crate::timeline::{ResultSet, StepResult};

/// Which engine a user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A URL means the engine its scheme names (PostgreSQL unless `mysql://` or `mariadb://`);
    /// else installed PostgreSQL server binaries mean a throwaway PostgreSQL; else SQLite.
    Auto,
    Only(EngineKind),
    /// A throwaway MariaDB Galera cluster (`--engine galera`): the MariaDB engine, on nodes
    /// that each take writes. It runs the scenarios of a multi-master topology only.
    Galera,
}

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub choice: Choice,
    /// A URL (or, for PostgreSQL, a libpq key=value string); PostgreSQL's PG* variables fill in
    /// what it leaves out.
    pub url: Option<String>,
    /// With `url`, the user's hot standby of that server (`--url standby=URL`).
    pub standby_url: Option<String>,
    /// With `url` as node 1, the other nodes of the user's Galera cluster, node 2 first
    /// (`--url 1=URL --url 2=URL`); only with [`Choice::Galera`].
    pub node_urls: Vec<String>,
    pub connect_timeout: Duration,
    /// Server binaries to start a throwaway PostgreSQL from, instead of searching for them.
    pub pg_bindir: Option<PathBuf>,
    /// The directory of `mariadbd` to start a throwaway MariaDB from, instead of searching.
    pub mariadb_bindir: Option<PathBuf>,
    /// The Redis that scenarios with Redis steps use; a throwaway `redis-server` when `None`.
    pub redis_url: Option<String>,
    /// The nodes the scenarios need: a throwaway PostgreSQL is started as a primary with a
    /// hot standby for `PrimaryStandby`.
    pub topology: Topology,
}

/// What the header says about the database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineInfo {
    pub name: EngineKind,
    pub version: String,
    /// `throwaway cluster`, `127.0.0.1:5432/app`, `journal wal`...
    pub detail: String,
    /// For a scenario with Redis steps, the Redis beside the database: `Redis 7.0.15
    /// (throwaway server)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

/// The final queries, each answered before the next goes, then the reset: what
/// [`BackendRun::finals_then_reset`] does where an engine sends nothing at once.
pub(crate) async fn finals_in_turn<R: BackendRun + ?Sized>(
    run: &mut R,
    sqls: &[&str],
    connections: bool,
) -> Result<Vec<ResultSet>, EngineError> {
    let mut answers = Vec::with_capacity(sqls.len());
    for sql in sqls {
        answers.push(run.final_query(sql).await?);
    }
    run.reset(connections).await?;
    Ok(answers)
}

/// What one engine's folder implements: a connected database. Everything outside `engine/`
/// sees only [`Engine`], so a new engine is a folder and one arm in [`Engine::connect`].
#[async_trait(?Send)]
pub(crate) trait Backend {
    fn info(&self) -> &EngineInfo;

    /// On a user's server, who the tool connects as: `user me at db:5432/scratch`.
    fn users_server(&self) -> Option<String> {
        None
    }

    /// The level the engine really runs when asked for `level`.
    fn effective_level(&self, level: Level) -> Level;

    /// What the header adds to the engine's detail for a run whose sessions run at `levels`.
    fn detail_at(&self, _scenario: &Scenario, _levels: &[SessionLevel]) -> String {
        String::new()
    }

    /// Why the engine cannot give a run these nodes, if it cannot.
    fn cannot_run(&self, topology: Topology) -> Option<String> {
        match topology {
            Topology::Single => None,
            other => Some(format!(
                "it needs {}, which {} does not have here",
                other.describe(),
                self.info().name.label()
            )),
        }
    }

    /// Runs may be prepared and driven at once on one engine (`app/runs.rs`): each has its own
    /// schema, database or file, and connections.
    async fn prepare(
        &self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<Box<dyn BackendRun>, EngineError>;

    async fn close(self: Box<Self>) -> Result<(), EngineError>;
}

/// What one engine's folder implements: a prepared run (see [`Run`] for each method's contract).
#[async_trait(?Send)]
pub(crate) trait BackendRun {
    fn send(&mut self, session: usize, sql: &str);

    /// Sends `sql` on the session's connection to `node` (the engines of one server have only
    /// the primary, and never see a scenario that names another: [`Backend::cannot_run`]).
    fn send_to(&mut self, session: usize, _node: Node, sql: &str) {
        self.send(session, sql)
    }

    /// Sends a replica step (`replica = "pause"`), settled like a step.
    fn send_replica(&mut self, _session: usize, _action: ReplicaAction) -> Result<(), EngineError> {
        Err(EngineError::Setup("this engine has no standby".into()))
    }

    async fn settle(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError>;

    async fn recheck(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        self.settle(session, deadline).await
    }

    fn breaks_deadlocks(&self) -> bool {
        true
    }

    async fn wait_any(
        &mut self,
        waiting: &[usize],
        deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError>;

    async fn cancel(&mut self, session: usize) -> Result<(), EngineError>;
    async fn rollback(&mut self, session: usize) -> Result<(), EngineError>;
    async fn save_initial_state(&mut self) -> Result<(), EngineError>;
    /// Rolls back every session and puts the data back; with `connections`, also resets every
    /// session's connection as at connect, at the levels it has (a session may have left state
    /// on it: [`Scenario::may_leave_session_state`]).
    async fn reset(&mut self, connections: bool) -> Result<(), EngineError>;

    /// Resets the data ([`BackendRun::reset`]) and every session's connection to what a fresh
    /// one at `levels` would be, for `next` (the scenario that ran, or another variant of it
    /// with the same setup and sessions), and says so; `false`, having done nothing, where the
    /// engine cannot promise that (then the caller prepares a new run).
    async fn relevel(
        &mut self,
        _next: &Scenario,
        _levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// Whether [`BackendRun::relevel`] can ever succeed, so that the data is saved for it.
    fn relevels(&self) -> bool {
        false
    }

    /// Makes the run what a fresh run of `next`, another scenario with as many sessions, at
    /// `levels` would be: the connections reset as at login, the data dropped and `next`'s
    /// setup run; `false`, having done nothing, where the engine cannot promise that (then the
    /// caller finishes the run and prepares a new one).
    async fn rebuild(
        &mut self,
        _next: &Scenario,
        _levels: &[SessionLevel],
    ) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// Whether [`BackendRun::rebuild`] can ever succeed for this run.
    fn rebuilds(&self) -> bool {
        false
    }

    async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError>;

    /// The final queries' answers, then [`BackendRun::reset`]: one after the other here
    /// ([`finals_in_turn`]); an engine that can send them at once does.
    async fn finals_then_reset(
        &mut self,
        sqls: &[&str],
        connections: bool,
    ) -> Result<Vec<ResultSet>, EngineError> {
        finals_in_turn(self, sqls, connections).await
    }

    async fn finish(self: Box<Self>) -> Result<(), EngineError>;

    /// How many times the run has asked the database whether a step waits.
    fn questions(&self) -> u64 {
        0
    }

    /// The sessions' connections as bench workers ([`bench::Worker`]).
    fn bench_workers(&mut self) -> Result<Vec<bench::Worker>, EngineError> {
        Err(EngineError::Setup(
            "this engine has no bench workers".into(),
        ))
    }
}

/// A connected database, and the Redis beside it once a scenario needs one.
pub struct Engine {
    backend: Box<dyn Backend>,
    /// Connected (or started) when the first scenario with Redis steps is prepared.
    redis: tokio::sync::OnceCell<redis::Redis>,
    redis_url: Option<String>,
    connect_timeout: Duration,
}

/// One scenario at one level, ready to run: its data set up, one connection per session (and
/// one to Redis per session, for a scenario with Redis steps).
pub struct Run {
    db: Box<dyn BackendRun>,
    redis: Option<redis::RedisRun>,
    /// Whether a session of the scenario the run serves may leave state on its connection
    /// ([`Scenario::may_leave_session_state`]): then [`Run::reset`] resets the connections too.
    leaves_state: bool,
    /// How many sessions the run has connections for.
    sessions: usize,
}

pub use error::EngineError;
pub(crate) use redis::Until;
use shared::{final_rows, first_reply, snapshot_sql};

/// Where a sent step stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Done(StepResult),
    /// Waiting for a lock held by these sessions.
    Waiting(Vec<usize>),
    /// Neither finished nor seen waiting before the deadline.
    TimedOut,
}

type Connected = (Box<dyn Backend>, Option<String>);

impl Engine {
    /// Connects as the options say; also returns a notice to show the user, if any.
    pub async fn connect(
        options: &ConnectOptions,
    ) -> Result<(Engine, Option<String>), EngineError> {
        if !options.node_urls.is_empty() && options.choice != Choice::Galera {
            return Err(EngineError::Setup(
                "--url 2=URL names a node of a Galera cluster: run it with --engine galera".into(),
            ));
        }
        let kind = match (options.choice, &options.url) {
            (Choice::Only(kind), _) => kind,
            (Choice::Galera, _) => EngineKind::Mariadb,
            (Choice::Auto, Some(url)) if mariadb::claims_url(url) => EngineKind::Mariadb,
            (Choice::Auto, _) => EngineKind::Postgres,
        };
        let connected: Result<Connected, EngineError> = match kind {
            EngineKind::Postgres => postgres::open(options).await,
            EngineKind::Mariadb => mariadb::open(options).await,
            EngineKind::Sqlite => sqlite::open(options),
        };
        let (backend, notice) = match connected {
            Err(EngineError::NoServer(looked)) if options.choice == Choice::Auto => {
                let (backend, _) = sqlite::open(options)?;
                let notice = format!(
                    "notice: {looked} and no --url given, so this runs on embedded SQLite; \
                     install the PostgreSQL server (apt-get install postgresql) or pass --url \
                     to see PostgreSQL"
                );
                (backend, Some(notice))
            }
            other => other?,
        };
        let engine = Engine {
            backend,
            redis: tokio::sync::OnceCell::new(),
            redis_url: options.redis_url.clone(),
            connect_timeout: options.connect_timeout,
        };
        Ok((engine, notice))
    }

    /// On a user's server (`--url`) where scenarios run with the user's own privileges (runs get
    /// no roles of their own), who that is and why: `user me at db:5432/app, who may not create
    /// roles`.
    pub fn users_server(&self) -> Option<String> {
        self.backend.users_server()
    }

    pub fn info(&self) -> &EngineInfo {
        self.backend.info()
    }

    /// The header's description of the engine for a run whose sessions run at `levels`.
    pub fn info_at(&self, scenario: &Scenario, levels: &[SessionLevel]) -> EngineInfo {
        let mut info = self.info().clone();
        info.detail
            .push_str(&self.backend.detail_at(scenario, levels));
        if scenario.uses_redis() {
            info.redis = self.redis.get().map(|r| r.description().to_string());
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
        self.backend.effective_level(level)
    }

    /// Why the engine cannot run `scenario` (it needs nodes the engine cannot give), if it
    /// cannot; the scenario is then not run, as a fix the engine lacks is not.
    pub fn cannot_run(&self, scenario: &Scenario) -> Option<String> {
        self.backend.cannot_run(scenario.topology)
    }

    /// Sets up the scenario's data privately and opens one connection per session, each at its
    /// level in a run at `level` ([`Engine::session_levels`]).
    pub async fn prepare(&self, scenario: &Scenario, level: Level) -> Result<Run, EngineError> {
        let levels = self.session_levels(scenario, level);
        let redis = match scenario.uses_redis() {
            true => Some(self.redis().await?.run(scenario.sessions.len()).await?),
            false => None,
        };
        let db = self.backend.prepare(scenario, &levels).await?;
        Ok(Run {
            db,
            redis,
            leaves_state: scenario.may_leave_session_state(),
            sessions: scenario.sessions.len(),
        })
    }

    /// The Redis beside the database: connected, or started, the first time it is needed
    /// (by one run, while the others that need it wait).
    async fn redis(&self) -> Result<&redis::Redis, EngineError> {
        self.redis
            .get_or_try_init(|| async {
                let opened =
                    redis::Redis::open(self.redis_url.as_deref(), self.connect_timeout).await?;
                Ok(opened.0)
            })
            .await
    }

    /// Removes whatever a run that did not finish left (schemas, files) and stops a throwaway
    /// server. Safe to call after an interrupted or panicked run.
    pub async fn close(self) -> Result<(), EngineError> {
        let redis = match self.redis.into_inner() {
            Some(redis) => redis.close().await,
            None => Ok(()),
        };
        self.backend.close().await?;
        redis
    }
}
