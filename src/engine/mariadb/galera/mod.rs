//! A throwaway MariaDB Galera cluster of 2 or 3 nodes on this machine, started from the
//! installed binaries and Galera 4 provider, for anomalies that need more than one node.
//!
//! It mirrors [`MariaServer`](super::server::MariaServer) and shares its machinery: a slot of
//! its own in the cache, `<cache>/mariadb-<major.minor>/galera/slot-<N>/`, which holds
//!
//! - `lock`, `data/`, `manifest`, `install.log`: as a single server's slot, healed the same
//!   way; `data/` is the cluster's template, bootstrapped once as a one-node cluster and
//!   stopped cleanly (`template.rs` says why);
//! - `bin/wsrep_sst_anomalies`: the state transfer that moves nothing, first on the nodes'
//!   PATH, which is where mariadbd looks for `wsrep_sst_<method>`;
//! - `node-1/` … `node-3/`: the nodes' data directories, fresh copies of the template (26 MB)
//!   at every start and removed at stop. A copy takes 35–110 ms here (ext4, no reflinks; the
//!   spread is the machine's load), a tenth of a warm start: simpler than making a stopped
//!   cluster's directories agree again, and every run starts from the same data. Since the
//!   copies are thrown away, how the nodes stop does not matter to the template; they stop
//!   fast (`innodb_fast_shutdown = 2`), the joiners first.
//! - `run/node-K/`: a node's socket, pid file and temporary files.
//!
//! SQL reaches each node on its private socket only (`--skip-networking`, no grant tables, as
//! the single server); the nodes talk to each other on loopback TCP ports the kernel picks
//! (group communication, and incremental state transfer), drawn below the kernel's ephemeral
//! range and checked free (`node.rs` says why). Node 1 bootstraps; the others join
//! one at a time, each once the one before it says it is `Synced`. The start returns when
//! every node says `Synced` in a cluster of all of them.
//!
//! Every node is our child, confined as the single server is (own process group, the server's
//! user as root, the parent-death signal), stopped by [`GaleraCluster::stop`] and by `Drop`;
//! a node a killed run left is stopped by the next run that takes the slot.
//!
//! `hold.rs` holds a node's appliers, so that it serves stale reads on purpose.

pub(crate) mod hold;
mod node;
mod sync;
mod template;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql_async::Opts;
use nix::fcntl::Flock;

pub use hold::{
    applied, hold_appliers, release_appliers, sync_waiting, APPLIED_SQL, HOLD_APPLIERS,
    RELEASE_APPLIERS,
};
pub use sync::{state_of, NodeState};

use super::connect::opts_for_socket;
use super::server::binaries::{self, Binaries};
use super::server::process::RUN_DIR;
use super::server::{Healer, MariaError};
use crate::engine::cache::io_error;
use crate::engine::cache::process::Server;
use crate::engine::cache::slot::{cache_root, private_dir, remove_any, server_user, take_slot};
use crate::engine::cache::slot::{Owner, TakenSlot};
use node::{find_provider, free_ports, launch, Launch, NodePaths, Ports, GALERA_FLAVOR};

/// The most nodes a cluster may have: each has its own paths in the slot (`node-K/`).
pub const MAX_NODES: usize = 3;
/// The fewest: one node is the single server.
pub const MIN_NODES: usize = 2;

/// How long a started node gets to say it is `Synced`: a join takes well under a second here.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A running cluster and the slot it holds.
pub struct GaleraCluster {
    /// Node 1 first. Stopped by `stop`, or else by `Drop` (the last first).
    nodes: Vec<Node>,
    slot: usize,
    slot_dir: PathBuf,
    version: String,
    notice: Option<String>,
    /// Held until the cluster is dropped, after its nodes have stopped.
    _lock: Flock<File>,
}

struct Node {
    server: Server,
    paths: NodePaths,
}

impl fmt::Debug for GaleraCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids: Vec<u32> = self.nodes.iter().map(|n| n.server.child.id()).collect();
        f.debug_struct("GaleraCluster")
            .field("slot", &self.slot)
            .field("slot_dir", &self.slot_dir)
            .field("version", &self.version)
            .field("pids", &pids)
            .finish()
    }
}

impl GaleraCluster {
    /// Starts a cluster of `nodes` (2 or 3) from the binaries in `bindir`, or else those found
    /// on PATH or in /usr/sbin, in the tool's cache (as [`MariaServer::start`]); blocks until
    /// every node is synced. Call it from a blocking thread.
    ///
    /// [`MariaServer::start`]: super::server::MariaServer::start
    pub fn start(bindir: Option<&Path>, nodes: usize) -> Result<GaleraCluster, MariaError> {
        let binaries = binaries::find(bindir)?;
        let root = cache_root(&GALERA_FLAVOR)?;
        start_with(&binaries, &root, nodes)
    }

    /// [`GaleraCluster::start`] with the cache at `cache_root` instead of the tool's.
    pub fn start_in(
        bindir: Option<&Path>,
        cache_root: &Path,
        nodes: usize,
    ) -> Result<GaleraCluster, MariaError> {
        let binaries = binaries::find(bindir)?;
        let root = std::path::absolute(cache_root).map_err(io_error(format!(
            "cannot resolve the cache directory {}",
            cache_root.display()
        )))?;
        start_with(&binaries, &root, nodes)
    }

    /// How many nodes the cluster has.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Node `node`'s Unix socket (nodes count from 1): any user name, no password.
    pub fn socket(&self, node: usize) -> Option<PathBuf> {
        self.node(node).map(|node| node.paths.socket())
    }

    /// Connection options for node `node` (from 1).
    pub fn opts(&self, node: usize) -> Option<Opts> {
        self.socket(node).map(|socket| opts_for_socket(&socket))
    }

    /// Node `node`'s process id.
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.node(node).map(|node| node.server.child.id())
    }

    /// The servers' version as `SELECT VERSION()` says it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What starting had to repair in the slot, one line starting `notice: `; `None` when
    /// nothing was wrong.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The cache slot the cluster runs in.
    pub fn slot_dir(&self) -> &Path {
        &self.slot_dir
    }

    /// Stops every node, the joiners first and node 1 last (each a fast shutdown, waited for),
    /// removes the nodes' directories, and releases the slot. The first failure is returned
    /// once all have been stopped.
    pub fn stop(mut self) -> Result<(), MariaError> {
        self.stop_all()
    }

    fn node(&self, node: usize) -> Option<&Node> {
        node.checked_sub(1).and_then(|index| self.nodes.get(index))
    }

    fn stop_all(&mut self) -> Result<(), MariaError> {
        let mut first = None;
        while let Some(mut node) = self.nodes.pop() {
            let group = nix::unistd::Pid::from_raw(node.server.child.id() as i32);
            let stopped = node.server.stop().map_err(MariaError::from);
            // What the node left in its process group: a joiner's SST watchdog (`tail --pid`),
            // which would otherwise notice its server's end up to a second later. The group
            // cannot be another's: its id stays taken while any member lives.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let removed = remove_node(&node.paths).map_err(MariaError::from);
            if let Err(err) = stopped.and(removed) {
                first.get_or_insert(err);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for GaleraCluster {
    /// Stops what still runs (a panic, or a drop without `stop`), as `stop` does.
    fn drop(&mut self) {
        let _ = self.stop_all();
    }
}

fn remove_node(paths: &NodePaths) -> Result<(), crate::engine::cache::CacheError> {
    remove_any(&paths.data_dir)?;
    remove_any(&paths.run_dir)
}

fn start_with(binaries: &Binaries, root: &Path, nodes: usize) -> Result<GaleraCluster, MariaError> {
    if !(MIN_NODES..=MAX_NODES).contains(&nodes) {
        return Err(MariaError::GaleraSize {
            nodes,
            min: MIN_NODES,
            max: MAX_NODES,
        });
    }
    let provider = find_provider().map_err(|looked| MariaError::NoGalera { looked })?;
    let owner = server_user(&GALERA_FLAVOR)?;
    let engine_dir = root
        .join(format!("mariadb-{}", binaries.series))
        .join("galera");
    let last_socket = move |slot: &Path| NodePaths::of(slot, MAX_NODES).socket();
    let TakenSlot {
        number: slot,
        dir: slot_dir,
        lock,
        fresh,
        note,
    } = take_slot(&GALERA_FLAVOR, &engine_dir, last_socket, owner.as_ref())?;
    let mut notes: Vec<String> = note.into_iter().collect();
    private_dir(&slot_dir.join(RUN_DIR), owner.as_ref())?;
    for number in 1..=MAX_NODES {
        notes.extend(NodePaths::of(&slot_dir, number).stop_orphan()?);
    }
    let healer = Healer {
        binaries,
        slot_dir: &slot_dir,
        owner: owner.as_ref(),
    };
    healer.prepare(fresh, &mut notes)?;
    template::install_sst_script(&slot_dir, owner.as_ref())?;
    template::ensure_template(&healer, &provider, &mut notes)?;
    let mut cluster = GaleraCluster {
        nodes: Vec::with_capacity(nodes),
        slot,
        slot_dir,
        version: binaries.version.clone(),
        notice: None,
        _lock: lock,
    };
    let starter = Starter {
        binaries,
        provider: &provider,
        owner: owner.as_ref(),
        nodes,
    };
    // On an error, dropping `cluster` stops the nodes already started.
    let (mut peers, mut taken) = (Vec::new(), Vec::new());
    for number in 1..=nodes {
        let (node, ports) = starter.start_node(&cluster.slot_dir, number, &peers, &taken)?;
        cluster.nodes.push(node);
        peers.push(ports.group);
        taken.extend([ports.group, ports.ist]);
    }
    // Every node agrees on the whole cluster (the first ones saw it grow).
    for number in 1..=nodes {
        starter.synced(&cluster.nodes[number - 1], number, nodes)?;
    }
    cluster.notice = (!notes.is_empty()).then(|| format!("notice: {}", notes.join("; ")));
    Ok(cluster)
}

/// What every node's start needs.
struct Starter<'a> {
    binaries: &'a Binaries,
    provider: &'a Path,
    owner: Option<&'a Owner>,
    nodes: usize,
}

impl Starter<'_> {
    /// Copies the template for node `number`, starts it joined to `peers` (their group ports;
    /// none: it bootstraps), and waits until it is synced in a cluster of `number` nodes.
    fn start_node(
        &self,
        slot_dir: &Path,
        number: usize,
        peers: &[u16],
        taken: &[u16],
    ) -> Result<(Node, Ports), MariaError> {
        let paths = NodePaths::of(slot_dir, number);
        template::copy_template(&slot_dir.join("data"), &paths.data_dir, self.owner)?;
        private_dir(&paths.run_dir, self.owner)?;
        let ports = free_ports(taken)?;
        let server = launch(&Launch {
            server: &self.binaries.server,
            provider: self.provider,
            slot_dir,
            owner: self.owner,
            name: format!("node-{number}"),
            paths: &paths,
            ports,
            peers: peers.to_vec(),
            extra: &[],
        })
        .map_err(|err| MariaError::GaleraNode {
            node: number,
            nodes: self.nodes,
            reason: err.to_string(),
        })?;
        let node = Node { server, paths };
        self.synced(&node, number, number)?;
        Ok((node, ports))
    }

    /// Waits until `node` says it is synced in a cluster of `size`.
    fn synced(&self, node: &Node, number: usize, size: usize) -> Result<(), MariaError> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        match sync::wait_synced((number, self.nodes), &node.paths.socket(), size, deadline)? {
            Ok(()) => Ok(()),
            Err(last) => Err(MariaError::GaleraNode {
                node: number,
                nodes: self.nodes,
                reason: format!(
                    "not synced in a cluster of {size} within {} s: {last} ({})",
                    SYNC_TIMEOUT.as_secs(),
                    node.server.log_reason()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<GaleraCluster>();
    }

    #[test]
    fn a_cluster_of_one_or_four_is_refused_before_anything_starts() {
        let cache = tempfile::tempdir().unwrap();
        for nodes in [1, 4] {
            let err = GaleraCluster::start_in(None, cache.path(), nodes).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("a throwaway Galera cluster has 2 to 3 nodes, not {nodes}")
            );
        }
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    }
}
