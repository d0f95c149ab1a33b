//! One Galera node: where the provider is, the node's paths in the slot, its settings (the
//! single server's, Galera's requirements, fast group timers), its ports, and its launch.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use super::super::server::process::{path_setting, FILE_SETTINGS, FLAVOR, RUN_DIR, SETTINGS};
use super::template::SST_METHOD;
use crate::engine::cache::process::Server;
use crate::engine::cache::slot::Owner;
use crate::engine::cache::spawn::confine;
use crate::engine::cache::{orphan, CacheError, Flavor};

/// The single server's flavor under the cluster's name, so that messages about the slots say
/// what they are for ("all 8 throwaway Galera cluster slots … are in use"), and with the
/// server's own ready line: a node first logs `WSREP: Synchronized with group, ready for
/// connections` from its applier, before the server listens or handles SIGTERM (a node
/// stopped then never stopped: seen in the tests).
pub(super) static GALERA_FLAVOR: Flavor = Flavor {
    throwaway: "throwaway Galera cluster",
    ready: ": ready for connections",
    ..FLAVOR
};

/// Where distributions put the Galera 4 provider: Debian and Ubuntu's `galera-4`, then the
/// RPM layouts.
const PROVIDERS: &[&str] = &[
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib64/galera/libgalera_smm.so",
    "/usr/lib/libgalera_smm.so",
];

/// The first provider library that exists, or where it was looked for.
pub(super) fn find_provider() -> Result<PathBuf, String> {
    PROVIDERS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| PROVIDERS.join(", "))
}

/// What Galera itself requires of every node: row-based replication events, interleaved
/// auto-increment locks (the others lock a table across the cluster), and InnoDB, the only
/// engine it replicates.
const GALERA_SETTINGS: &[&str] = &[
    "--binlog-format=ROW",
    "--innodb-autoinc-lock-mode=2",
    "--default-storage-engine=InnoDB",
    "--wsrep-on=ON",
];

/// The group's timers, shortened for nodes that share one machine's loopback: a bootstrap
/// waits 0.1 s rather than 3 s for other members to announce themselves, joins are resent
/// every 0.1 s rather than 1 s, and a vanished member is suspected after 1 s rather than 5 s.
/// A small ring buffer (2 MB, preallocated in each node's directory) rather than 128 MB: it
/// only has to hold what a joiner misses between its copy and its join.
const PROVIDER_OPTIONS: &str = "gcache.size=2M;gcache.page_size=8M;pc.announce_timeout=PT0.1S;\
     evs.join_retrans_period=PT0.1S;evs.inactive_check_period=PT0.1S;evs.suspect_timeout=PT1S;\
     evs.inactive_timeout=PT2S;evs.install_timeout=PT1S;evs.keepalive_period=PT0.2S;\
     pc.wait_prim_timeout=PT5S";

/// A node's loopback ports: group communication (gmcast), and incremental state transfer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ports {
    pub(super) group: u16,
    pub(super) ist: u16,
}

/// Where the nodes' ports are drawn from: below the kernel's ephemeral range (32768–60999 on
/// Linux by default), so that no outgoing connection can take one between its draw and the
/// node's bind. A port drawn from the kernel (bind to port 0) was: a joiner's own connection to
/// the group took its incremental-transfer port, which it binds only later, and the joiner
/// aborted ("IST will be unavailable", then "Will never receive state").
const PORTS: std::ops::Range<u16> = 20_000..32_000;
/// How many draws a port gets before the start gives up.
const DRAWS: usize = 100;

/// Two free loopback ports, drawn at random from [`PORTS`] (so that two clusters at once, from
/// one cache or two, almost never draw the same) and checked free by binding them; none of
/// `taken` (the cluster's other nodes' ports, not yet bound when a node is being started).
pub(super) fn free_ports(taken: &[u16]) -> Result<Ports, CacheError> {
    let mut drawn = Vec::with_capacity(2);
    for _ in 0..DRAWS {
        let port = fastrand::u16(PORTS);
        if taken.contains(&port) || drawn.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            drawn.push(port);
            if let [group, ist] = drawn[..] {
                return Ok(Ports { group, ist });
            }
        }
    }
    Err(CacheError::Io {
        what: format!(
            "cannot find two free loopback ports between {} and {} for a Galera node",
            PORTS.start, PORTS.end
        ),
        err: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    })
}

/// The paths of node `number` (1, 2, 3) in a slot.
pub(super) struct NodePaths {
    /// `node-K/`, a copy of the slot's template.
    pub(super) data_dir: PathBuf,
    /// `run/node-K/`: its socket, pid file and temporary files.
    pub(super) run_dir: PathBuf,
}

impl NodePaths {
    pub(super) fn of(slot_dir: &Path, number: usize) -> NodePaths {
        NodePaths {
            data_dir: slot_dir.join(format!("node-{number}")),
            run_dir: slot_dir.join(RUN_DIR).join(format!("node-{number}")),
        }
    }

    /// The template's own paths, for its one bootstrap: its data directory in place.
    pub(super) fn template(slot_dir: &Path) -> NodePaths {
        NodePaths {
            data_dir: slot_dir.join("data"),
            run_dir: slot_dir.join(RUN_DIR).join("template"),
        }
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.run_dir.join("mariadbd.sock")
    }

    fn pid_file(&self) -> PathBuf {
        self.run_dir.join("mariadbd.pid")
    }

    /// Stops a node a killed run left running on these paths, and removes its stale files.
    pub(super) fn stop_orphan(&self) -> Result<Option<String>, CacheError> {
        orphan::stop_orphan(
            &GALERA_FLAVOR,
            &self.pid_file(),
            &self.data_dir,
            &[self.socket()],
        )
    }
}

/// How to start one node.
pub(super) struct Launch<'a> {
    pub(super) server: &'a Path,
    pub(super) provider: &'a Path,
    pub(super) slot_dir: &'a Path,
    pub(super) owner: Option<&'a Owner>,
    pub(super) name: String,
    pub(super) paths: &'a NodePaths,
    pub(super) ports: Ports,
    /// The group ports of the nodes already running; none for the node that bootstraps.
    pub(super) peers: Vec<u16>,
    /// Extra settings after all the others (they win): the template's clean shutdown.
    pub(super) extra: &'a [&'a str],
}

/// Spawns the node and waits until it accepts connections: for a joiner that is after its
/// state transfer, for the first node once it has formed its one-member cluster.
pub(super) fn launch(node: &Launch<'_>) -> Result<Server, CacheError> {
    let paths = node.paths;
    let host = "127.0.0.1";
    let peers: Vec<String> = node.peers.iter().map(|p| format!("{host}:{p}")).collect();
    let options = format!(
        "gmcast.listen_addr=tcp://{host}:{};ist.recv_addr={host}:{};{PROVIDER_OPTIONS}",
        node.ports.group, node.ports.ist
    );
    let mut command = Command::new(node.server);
    command
        .arg("--no-defaults")
        .arg(path_setting("datadir", &paths.data_dir))
        .arg(path_setting("socket", &paths.socket()))
        .arg(path_setting("pid-file", &paths.pid_file()))
        .arg(path_setting("tmpdir", &paths.run_dir))
        .args(FILE_SETTINGS)
        .args(SETTINGS)
        .args(GALERA_SETTINGS)
        .arg(path_setting("wsrep-provider", node.provider))
        .arg(format!(
            "--wsrep-cluster-address=gcomm://{}",
            peers.join(",")
        ))
        .arg(format!("--wsrep-node-address={host}:{}", node.ports.group))
        .arg(format!("--wsrep-node-name={}", node.name))
        .arg(format!("--wsrep-sst-method={SST_METHOD}"))
        .arg(format!("--wsrep-provider-options={options}"));
    if node.peers.is_empty() {
        command.arg("--wsrep-new-cluster");
    }
    command.args(node.extra);
    // mariadbd runs `wsrep_sst_<method>` through PATH: the slot's script first.
    let mut path = std::ffi::OsString::from(node.slot_dir.join("bin"));
    path.push(":/usr/bin:/bin");
    command.env("PATH", path);
    confine(&mut command, node.slot_dir, node.owner, Signal::SIGTERM);
    Server::launch(&GALERA_FLAVOR, node.server, command)
}
