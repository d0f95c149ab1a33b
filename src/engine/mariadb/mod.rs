//! MariaDB and MySQL through mysql_async: a worker task per session connection, a control
//! connection per run that sets up a private database and asks `SHOW ENGINE INNODB STATUS`
//! whether a session waits.

mod bench;
mod cluster;
mod connect;
mod footprint;
pub mod galera;
mod probe;
mod reply;
mod run;
pub mod server;
mod waits;
mod worker;

use std::time::Duration;

use async_trait::async_trait;
use mysql_async::{Opts, OptsBuilder};

use cluster::Cluster;
use connect::{connect, describe, opts_for_socket, opts_from_url};
use footprint::{claim_database, create_database, drop_all, end_connections, lock, sweep_stale};
use footprint::{drop_database, Live, LiveRun, CLEANUP_TIMEOUT};
use run::{MariaRun, MariaSession};
use server::MariaServer;
use worker::Worker;

pub(super) use connect::claims_url;

use crate::engine::{
    Backend, BackendRun, Choice, ConnectOptions, Connected, EngineError, EngineInfo,
};
use crate::level::{Level, SessionLevel};
use crate::scenario::{display_name, EngineKind, Scenario, StepKind, Topology};

pub(crate) struct MariaEngine {
    info: EngineInfo,
    opts: Opts,
    timeout: Duration,
    admin: Worker,
    /// MariaDB rather than MySQL: database comments, `max_statement_time`.
    mariadb: bool,
    /// Runs not yet finished; `close` cleans up what an interrupted run left.
    live: Live,
    /// On a user's server, who the tool connects as: `user app at db:3306/app`.
    users_server: Option<String>,
    /// The throwaway server, stopped by `close` (and by its `Drop` on a panic).
    server: Option<MariaServer>,
    /// With `--engine galera`, the cluster's nodes instead (a throwaway cluster is stopped
    /// the same way).
    cluster: Option<Cluster>,
}

/// The server the URL names, else a throwaway server started from the installed binaries.
pub(super) async fn open(options: &ConnectOptions) -> Result<Connected, EngineError> {
    if options.standby_url.is_some() {
        return Err(EngineError::Setup(
            "--url standby=URL names a PostgreSQL hot standby; MariaDB runs on one server here"
                .into(),
        ));
    }
    if options.choice == Choice::Galera {
        return cluster::open(options).await;
    }
    let Some(url) = &options.url else {
        let bindir = options.mariadb_bindir.clone();
        let server = tokio::task::spawn_blocking(move || MariaServer::start(bindir.as_deref()))
            .await
            .map_err(|e| EngineError::Setup(format!("starting the server panicked: {e}")))??;
        let notice = server.notice().map(str::to_owned);
        let opts = opts_for_socket(server.socket());
        let target = "the throwaway server";
        let engine = MariaEngine::connect(opts, options.connect_timeout, target).await?;
        // The server is ours alone: clear what a run killed without a chance to clean up left.
        drop_all(&engine.admin).await?;
        let engine = MariaEngine {
            info: EngineInfo {
                detail: "throwaway server".into(),
                ..engine.info
            },
            server: Some(server),
            ..engine
        };
        return Ok((Box::new(engine), notice));
    };
    let opts = opts_from_url(url)?;
    let target = describe(&opts);
    let user = opts.user().unwrap_or("root").to_string();
    let engine = MariaEngine::connect(opts, options.connect_timeout, &target).await?;
    sweep_stale(&engine.admin, engine.mariadb, &[]).await?;
    let engine = MariaEngine {
        // MariaDB runs get no account of their own (yet): a file runs with the user's rights.
        users_server: Some(format!(
            "user {user} at {target} (MariaDB runs get no account of their own)"
        )),
        ..engine
    };
    Ok((Box::new(engine), None))
}

impl MariaEngine {
    async fn connect(
        opts: Opts,
        timeout: Duration,
        target: &str,
    ) -> Result<MariaEngine, EngineError> {
        let admin = Worker::start(connect(&opts, timeout, target).await?);
        // The first query is bounded too: a server can finish the handshake and then stall.
        let version = tokio::time::timeout(timeout, admin.value("SELECT VERSION()"))
            .await
            .map_err(|_| EngineError::MariadbConnect {
                target: target.to_string(),
                reason: format!("no answer within {}", humantime::format_duration(timeout)),
            })??
            .unwrap_or_default();
        let mariadb = version.contains("MariaDB");
        own_limits(&admin, mariadb).await?;
        let shown = version.split('-').next().unwrap_or(&version).to_string();
        Ok(MariaEngine {
            info: EngineInfo {
                name: EngineKind::Mariadb,
                version: shown,
                detail: if mariadb {
                    target.to_string()
                } else {
                    format!("MySQL, {target}")
                },
                redis: None,
            },
            opts,
            timeout,
            admin,
            mariadb,
            live: Live::default(),
            users_server: None,
            server: None,
            cluster: None,
        })
    }
}

impl MariaEngine {
    /// The engine's own connection to each node, node 1's first.
    fn admins(&self) -> impl Iterator<Item = &Worker> {
        let others = self.cluster.iter().flat_map(|c| &c.admins);
        std::iter::once(&self.admin).chain(others)
    }

    /// Notes a connection of the run on `database` to `node`, for the clean-up to end.
    fn track(&self, database: &str, node: usize, id: u32) {
        if let Some(run) = lock(&self.live).iter_mut().find(|r| r.database == database) {
            run.connections.push((node, id));
        }
    }
}

/// The tool's own connections wait at most a minute for a statement or a lock.
async fn own_limits(conn: &Worker, mariadb: bool) -> Result<(), EngineError> {
    let statement = if mariadb {
        "SET SESSION max_statement_time = 60"
    } else {
        "SET SESSION max_execution_time = 60000"
    };
    conn.query(&format!("{statement}; SET SESSION lock_wait_timeout = 60"))
        .await
        .map(|_| ())
}

/// `SET SESSION TRANSACTION ISOLATION LEVEL …, READ ONLY`: for the session's next
/// transactions, so nothing of the tool's runs inside one.
fn characteristics_sql(level: &SessionLevel) -> String {
    let mut sql = format!(
        "SET SESSION TRANSACTION ISOLATION LEVEL {}",
        level.effective.sql()
    );
    if level.read_only {
        sql.push_str(", READ ONLY");
    }
    sql
}

#[async_trait(?Send)]
impl Backend for MariaEngine {
    /// One server runs the single-server scenarios, and a Galera cluster the multi-master
    /// ones: node 1 of a cluster is no single server (certification, no GET_LOCK across
    /// nodes), so the single-server expectations are not run there.
    fn cannot_run(&self, topology: Topology) -> Option<String> {
        match (topology, &self.cluster) {
            (Topology::Single, None) => None,
            (Topology::Single, Some(_)) => {
                Some("it runs on one server: run it with --engine mariadb".into())
            }
            (Topology::MultiMaster(_), None) => Some(
                "it needs a multi-master cluster (MariaDB Galera): run it with --engine galera"
                    .into(),
            ),
            (Topology::MultiMaster(n), Some(cluster)) if usize::from(n) > cluster.len() => Some(
                format!("it needs {n} nodes and the cluster has {}", cluster.len()),
            ),
            (Topology::MultiMaster(_), Some(_)) => None,
            (other, _) => Some(format!(
                "it needs {}, which MariaDB does not have here",
                other.describe()
            )),
        }
    }

    fn info(&self) -> &EngineInfo {
        &self.info
    }

    fn users_server(&self) -> Option<String> {
        self.users_server.clone()
    }

    /// InnoDB runs all four levels as themselves.
    fn effective_level(&self, level: Level) -> Level {
        level
    }

    fn detail_at(&self, scenario: &Scenario, levels: &[SessionLevel]) -> String {
        let deferrable: Vec<String> = scenario
            .sessions
            .iter()
            .zip(levels)
            .filter(|(_, level)| level.deferrable)
            .map(|(session, _)| display_name(&session.name))
            .collect();
        if deferrable.is_empty() {
            String::new()
        } else {
            format!(
                ", no DEFERRABLE on MariaDB (asked for {})",
                deferrable.join(", ")
            )
        }
    }

    async fn prepare(
        &self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<Box<dyn BackendRun>, EngineError> {
        let target = describe(&self.opts);
        let control = Worker::start(connect(&self.opts, self.timeout, &target).await?);
        own_limits(&control, self.mariadb).await?;
        let database = claim_database(&control, &scenario.id).await?;
        lock(&self.live).push(LiveRun {
            database: database.clone(),
            connections: vec![(0, control.id)],
        });
        create_database(&control, &database, self.mariadb).await?;
        control.query(&scenario.setup).await.map_err(|e| {
            let EngineError::Mariadb(text) = e else {
                return e;
            };
            EngineError::Setup(format!(
                "{}: the setup SQL failed on MariaDB: {text}",
                scenario.setup_at
            ))
        })?;
        // The setup may have moved the control connection elsewhere (`USE other`): the tool's
        // own queries on it (the final query, the data reset) read the run's database.
        control.query(&format!("USE `{database}`")).await?;

        // A step's row count is the rows it matched, as on PostgreSQL and SQLite (MariaDB would
        // otherwise count only rows whose value changed). On a cluster, each node's own.
        let cluster = self.cluster.as_ref();
        let base_opts = |node: usize| -> Opts {
            cluster.map_or_else(|| self.opts.clone(), |c| c.opts(node).clone())
        };
        let node_target =
            |node: usize| -> String { cluster.map_or_else(|| target.clone(), |c| c.target(node)) };
        let node_opts = |node: usize| -> Opts {
            OptsBuilder::from_opts(base_opts(node))
                .db_name(Some(database.clone()))
                .client_found_rows(true)
                .into()
        };
        let nodes = match (cluster, scenario.topology) {
            (Some(_), Topology::MultiMaster(n)) => usize::from(n),
            _ => 1,
        };
        let timeout = self.timeout;
        let mut other_nodes = Vec::new();
        if nodes > 1 {
            // The final query and the data's save and reset run on node 1, and read what every
            // node committed.
            control.query("SET SESSION wsrep_sync_wait = 1").await?;
            // The other nodes apply the run's database (DDL in total order) and its setup when
            // they get to them: the tool's workers there connect to no database, and every
            // node has caught up (the database, the setup's rows) before a session connects
            // there.
            for node in 1..nodes {
                let worker =
                    Worker::start(connect(&base_opts(node), timeout, &node_target(node)).await?);
                self.track(&database, node, worker.id);
                own_limits(&worker, self.mariadb).await?;
                worker
                    .query("SET SESSION wsrep_sync_wait = 1; SELECT 1")
                    .await?;
                other_nodes.push(worker);
            }
        }
        let connects = scenario
            .sessions
            .iter()
            .zip(levels)
            .map(|(session, level)| {
                let node = if nodes > 1 { session.node } else { 0 };
                let runs_sql = session.steps.iter().any(|s| s.kind == StepKind::Sql);
                let opts = node_opts(node);
                let target = node_target(node);
                async move {
                    let worker = Worker::start(connect(&opts, timeout, &target).await?);
                    worker.query(&characteristics_sql(level)).await?;
                    Ok::<_, EngineError>(MariaSession {
                        worker,
                        in_flight: None,
                        may_wait: true,
                        node,
                        runs_sql,
                    })
                }
            });
        let sessions = futures_util::future::try_join_all(connects).await?;
        for session in &sessions {
            self.track(&database, session.node, session.worker.id);
        }
        let mut holders = Vec::new();
        if nodes > 1 && scenario.uses_replica() {
            for node in 0..nodes {
                let holder =
                    Worker::start(connect(&base_opts(node), timeout, &node_target(node)).await?);
                self.track(&database, node, holder.id);
                holders.push(holder);
            }
        }
        Ok(Box::new(MariaRun {
            database,
            live: self.live.clone(),
            control,
            other_nodes,
            holders,
            sessions,
            restore: None,
            restores_all: false,
            commits_can_wait: waits::commits_can_wait(scenario, nodes > 1),
            levels: levels.to_vec(),
            ticker: crate::engine::probe::Ticker::new()?,
        }))
    }

    async fn close(self: Box<Self>) -> Result<(), EngineError> {
        let cleanup = async {
            let left: Vec<LiveRun> = lock(&self.live).clone();
            let mut result = Ok(());
            for run in &left {
                // Connection ids are each node's own: each node's admin ends its own.
                for (node, admin) in self.admins().enumerate() {
                    let ids: Vec<u32> = run
                        .connections
                        .iter()
                        .filter(|(at, _)| *at == node)
                        .map(|(_, id)| *id)
                        .collect();
                    if let Err(e) = end_connections(admin, &ids).await {
                        result = Err(e);
                    }
                }
                if let Err(e) = drop_database(&self.admin, &run.database).await {
                    result = Err(e);
                }
            }
            result
        };
        let result = match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
            Ok(result) => result,
            Err(_) => Err(EngineError::Mariadb(format!(
                "the server did not answer the clean-up within {}",
                humantime::format_duration(CLEANUP_TIMEOUT)
            ))),
        };
        let this = *self;
        drop(this.admin);
        if let Some(server) = this.server {
            tokio::task::spawn_blocking(move || server.stop())
                .await
                .map_err(|e| EngineError::Setup(format!("stopping the server panicked: {e}")))??;
        }
        if let Some(cluster) = this.cluster.and_then(|c| c.throwaway) {
            tokio::task::spawn_blocking(move || cluster.stop())
                .await
                .map_err(|e| EngineError::Setup(format!("stopping the cluster panicked: {e}")))??;
        }
        result
    }
}
