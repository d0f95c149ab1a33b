//! The postmaster: its settings, how it is started (through the shared `cache::process`), and
//! how one left by an earlier run is found and stopped.

use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;

use super::health::failure_reason;
use super::slot::SOCKET_NAME;
use super::ClusterError;
use crate::engine::cache::orphan;
use crate::engine::cache::process::Server;
use crate::engine::cache::slot::Owner;
use crate::engine::cache::spawn::confine;
use crate::engine::cache::Flavor;

/// What the shared cache code needs to know of PostgreSQL: fast shutdown is SIGINT, immediate
/// shutdown SIGQUIT; it refuses to run as root.
pub(super) static FLAVOR: Flavor = POSTMASTER;

const POSTMASTER: Flavor = Flavor {
    engine: "PostgreSQL",
    throwaway: "throwaway PostgreSQL cluster",
    users: &["postgres", "nobody"],
    ready: "database system is ready to accept connections",
    stop_signal: Signal::SIGINT,
    quit_signal: Signal::SIGQUIT,
    failure_reason: |lines| failure_reason(lines.iter().copied()),
    logs_to_stdout: false,
};

/// A hot standby's: it logs another ready line.
pub(super) static STANDBY_FLAVOR: Flavor = Flavor {
    throwaway: "throwaway PostgreSQL standby",
    ready: "database system is ready to accept read-only connections",
    ..POSTMASTER
};

/// The server's settings: fast and disposable rather than durable.
pub(super) const SETTINGS: &[&str] = &[
    "listen_addresses=",
    "port=5432",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "deadlock_timeout=50ms",
    // A scenario may have 200 sessions; each run adds a control connection, the engine one.
    "max_connections=250",
    "shared_buffers=16MB",
    "lc_messages=C",
    "log_min_error_statement=panic",
    "log_checkpoints=off",
    "unix_socket_permissions=0700",
];

/// Spawns the postmaster and waits for it to accept connections.
pub(super) fn launch(
    postgres: &Path,
    slot_dir: &Path,
    socket_dir: &Path,
    owner: Option<&Owner>,
    extra: &[&str],
) -> Result<Server, ClusterError> {
    let mut command = Command::new(postgres);
    command
        .arg("-D")
        .arg(slot_dir.join("data"))
        .arg("-k")
        .arg(socket_dir);
    for setting in SETTINGS.iter().chain(extra) {
        command.arg("-c").arg(setting);
    }
    confine(&mut command, slot_dir, owner, Signal::SIGQUIT);
    Ok(Server::launch(&FLAVOR, postgres, command)?)
}

/// Stops a server that an earlier run of this slot left behind, found through
/// `postmaster.pid`, and removes its stale lock files. Returns a note when `postmaster.pid`
/// named a process that is not the slot's server.
pub(super) fn stop_orphan(
    data_dir: &Path,
    socket_dir: &Path,
) -> Result<Option<String>, ClusterError> {
    let stale = [
        socket_dir.join(SOCKET_NAME),
        socket_dir.join(format!("{SOCKET_NAME}.lock")),
    ];
    Ok(orphan::stop_orphan(
        &FLAVOR,
        &data_dir.join("postmaster.pid"),
        data_dir,
        &stale,
    )?)
}
