//! The nodes of a Galera cluster as the engine sees them (`--engine galera`): a throwaway
//! cluster's sockets, or the user's own nodes, a URL each (`--url 1=URL --url 2=URL`), each
//! checked at connect to be a synced node of one and the same cluster.
//!
//! The engine's own connection is on node 1, and so is every run's control connection: a
//! run's database is created there and reaches the other nodes as Galera replicates DDL. Each
//! other node has an admin connection of the engine's too: the clean-up ends a run's
//! connections node by node (connection ids are each node's own), and on a user's cluster a
//! killed run's database is dropped only when its lock is free on every node given (user-level
//! locks are each node's own too).

use std::collections::HashMap;

use mysql_async::Opts;

use super::connect::{connect, describe, opts_from_url};
use super::footprint::{drop_all, sweep_stale};
use super::galera::{GaleraCluster, MIN_NODES};
use super::worker::Worker;
use super::{own_limits, MariaEngine};
use crate::engine::{ConnectOptions, Connected, EngineError, EngineInfo};
use crate::scenario::Topology;

pub(super) struct Cluster {
    /// Node 1 first.
    nodes: Vec<Opts>,
    /// The engine's connections to nodes 2 and up (node 1's is the engine's `admin`).
    pub(super) admins: Vec<Worker>,
    /// A throwaway cluster, stopped by the engine's `close`; `None` for the user's.
    pub(super) throwaway: Option<GaleraCluster>,
}

impl Cluster {
    pub(super) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `node`'s connection options (nodes count from 0 here, from 1 for the user).
    pub(super) fn opts(&self, node: usize) -> &Opts {
        &self.nodes[node]
    }

    /// How errors name node `node`: `node 2 of the throwaway cluster`, `node 2 (db2:3306)`.
    pub(super) fn target(&self, node: usize) -> String {
        match self.throwaway {
            Some(_) => format!("node {} of the throwaway cluster", node + 1),
            None => format!("node {} ({})", node + 1, describe(&self.nodes[node])),
        }
    }
}

/// A throwaway cluster of as many nodes as the scenarios need (two at least), or the user's
/// nodes when `--url` names them.
pub(super) async fn open(options: &ConnectOptions) -> Result<Connected, EngineError> {
    match (&options.url, options.node_urls.is_empty()) {
        (None, true) => open_throwaway(options).await,
        (Some(first), false) => open_users(first, options).await,
        (Some(_), true) => Err(EngineError::Setup(
            "--engine galera on a cluster of yours needs a URL per node: \
             --url 1=URL --url 2=URL"
                .into(),
        )),
        (None, false) => Err(EngineError::Setup(
            "--url 2=URL needs node 1 of the cluster too: --url 1=URL".into(),
        )),
    }
}

async fn open_throwaway(options: &ConnectOptions) -> Result<Connected, EngineError> {
    let nodes = match options.topology {
        Topology::MultiMaster(n) => usize::from(n),
        _ => MIN_NODES,
    };
    let bindir = options.mariadb_bindir.clone();
    let cluster =
        tokio::task::spawn_blocking(move || GaleraCluster::start(bindir.as_deref(), nodes))
            .await
            .map_err(|e| EngineError::Setup(format!("starting the cluster panicked: {e}")))??;
    let notice = cluster.notice().map(str::to_owned);
    let opts: Vec<Opts> = (1..=cluster.nodes())
        .filter_map(|n| cluster.opts(n))
        .collect();
    let mut cluster = Cluster {
        nodes: opts,
        admins: Vec::new(),
        throwaway: Some(cluster),
    };
    let engine = connect_nodes(&mut cluster, options.connect_timeout).await?;
    // The cluster is ours alone: clear what a run killed without a chance to clean up left.
    drop_all(&engine.admin).await?;
    let engine = MariaEngine {
        info: EngineInfo {
            detail: format!("throwaway Galera cluster, {nodes} nodes"),
            ..engine.info
        },
        cluster: Some(cluster),
        ..engine
    };
    Ok((Box::new(engine), notice))
}

/// The user's nodes: each must answer, be a synced Galera node, and be of node 1's cluster.
async fn open_users(first: &str, options: &ConnectOptions) -> Result<Connected, EngineError> {
    let mut nodes = vec![opts_from_url(first)?];
    for url in &options.node_urls {
        nodes.push(opts_from_url(url)?);
    }
    let mut cluster = Cluster {
        nodes,
        admins: Vec::new(),
        throwaway: None,
    };
    let engine = connect_nodes(&mut cluster, options.connect_timeout).await?;
    let all: Vec<&Worker> = std::iter::once(&engine.admin)
        .chain(&cluster.admins)
        .collect();
    let mut seen: Vec<NodeState> = Vec::new();
    for (node, admin) in all.iter().enumerate() {
        let state = NodeState::ask(admin).await?;
        if let Some(wrong) = state.unfit(&seen) {
            return Err(EngineError::Setup(format!(
                "{} {wrong}",
                cluster.target(node)
            )));
        }
        seen.push(state);
    }
    sweep_stale(&engine.admin, engine.mariadb, &cluster.admins).await?;
    let user = cluster.opts(0).user().unwrap_or("root").to_string();
    let targets: Vec<String> = (0..cluster.len()).map(|n| cluster.target(n)).collect();
    let engine = MariaEngine {
        info: EngineInfo {
            detail: format!("Galera cluster, {}", targets.join(", ")),
            ..engine.info
        },
        // As on one server of the user's: a run has the user's rights.
        users_server: Some(format!(
            "user {user} at {} (MariaDB runs get no account of their own)",
            targets.join(", ")
        )),
        cluster: Some(cluster),
        ..engine
    };
    Ok((Box::new(engine), None))
}

/// The engine on node 1, and its admin connections to nodes 2 and up, each with the engine's
/// own limits.
async fn connect_nodes(
    cluster: &mut Cluster,
    timeout: std::time::Duration,
) -> Result<MariaEngine, EngineError> {
    let engine = MariaEngine::connect(cluster.opts(0).clone(), timeout, &cluster.target(0)).await?;
    for node in 1..cluster.len() {
        let admin =
            Worker::start(connect(cluster.opts(node), timeout, &cluster.target(node)).await?);
        own_limits(&admin, engine.mariadb).await?;
        cluster.admins.push(admin);
    }
    Ok(engine)
}

/// What a node says of itself in its `wsrep_%` status.
struct NodeState {
    status: HashMap<String, String>,
}

impl NodeState {
    async fn ask(admin: &Worker) -> Result<NodeState, EngineError> {
        let sets = admin.query("SHOW GLOBAL STATUS LIKE 'wsrep\\_%'").await?;
        let status = sets
            .into_iter()
            .flat_map(|set| set.rows)
            .filter_map(|row| match row.as_slice() {
                [Some(name), value] => {
                    Some((name.to_lowercase(), value.clone().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        Ok(NodeState { status })
    }

    fn get(&self, name: &str) -> &str {
        self.status.get(name).map_or("", String::as_str)
    }

    /// Why the node cannot serve as one of the cluster, given the nodes before it.
    fn unfit(&self, before: &[NodeState]) -> Option<String> {
        if self.status.is_empty() {
            return Some(
                "is not a Galera node: it has no wsrep status (a server without the wsrep \
                 provider)"
                    .into(),
            );
        }
        if self.get("wsrep_ready") != "ON" {
            return Some(format!(
                "is not a working Galera node (wsrep_ready = {}, wsrep_cluster_status = {})",
                self.get("wsrep_ready"),
                self.get("wsrep_cluster_status")
            ));
        }
        if self.get("wsrep_local_state_comment") != "Synced" {
            return Some(format!(
                "is {}, not Synced with its cluster: run once it has caught up",
                self.get("wsrep_local_state_comment")
            ));
        }
        let same = |other: &NodeState, name: &str| other.get(name) == self.get(name);
        if let Some(first) = before.first() {
            if !same(first, "wsrep_cluster_state_uuid") {
                return Some("is a node of another Galera cluster than node 1".into());
            }
        }
        if let Some(twin) = before.iter().position(|b| same(b, "wsrep_gcomm_uuid")) {
            return Some(format!(
                "is the same server as node {}: give each node once",
                twin + 1
            ));
        }
        None
    }
}
