//! The MariaDB server process: its settings, how it is started (through the shared
//! `cache::process`), and how one left by an earlier run is found and stopped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::health::failure_reason;
use crate::engine::cache::process::Server;
use crate::engine::cache::slot::Owner;
use crate::engine::cache::spawn::confine;
use crate::engine::cache::{orphan, CacheError, Flavor};

/// What the shared cache code needs to know of MariaDB. SIGTERM is its shutdown, which
/// `innodb_fast_shutdown=2` makes immediate (about 15 ms here); there is no quicker one short
/// of SIGKILL. It will not run as root without being told to.
pub(in crate::engine::mariadb) static FLAVOR: Flavor = Flavor {
    engine: "MariaDB",
    throwaway: "throwaway MariaDB server",
    users: &["mysql", "nobody"],
    ready: "ready for connections",
    stop_signal: Signal::SIGTERM,
    quit_signal: Signal::SIGTERM,
    failure_reason,
    logs_to_stdout: false,
};

/// The throwaway server's `innodb_lock_wait_timeout`: why 8 s is told at the setting, in
/// [`SETTINGS`] (a test checks that the server runs with this value). A session can set its own
/// (`SET SESSION innodb_lock_wait_timeout = …`), say when `--step-timeout` is shorter.
pub const LOCK_WAIT_TIMEOUT: Duration = Duration::from_secs(8);

/// The slot's directory of the server's socket, pid file and temporary files (its own: a
/// starting server removes the `#sql*` files in its tmpdir, another server's included).
pub(in crate::engine::mariadb) const RUN_DIR: &str = "run";
pub(super) const SOCKET_NAME: &str = "mariadbd.sock";
const PID_NAME: &str = "mariadbd.pid";

/// Settings that shape the data directory's files, the same for `mariadb-install-db` and every
/// start: a redo log of 8 MB rather than 96 MB, so a slot is 26 MB, and no binary log.
pub(in crate::engine::mariadb) const FILE_SETTINGS: &[&str] =
    &["--innodb-log-file-size=8M", "--skip-log-bin"];

/// The server's settings beside the paths: fast and disposable rather than durable.
pub(in crate::engine::mariadb) const SETTINGS: &[&str] = &[
    // No TCP: the private socket only.
    "--skip-networking",
    // Every connection is a superuser; there are no accounts to set up or keep.
    "--skip-grant-tables",
    "--skip-name-resolve",
    // SIGTERM stops it at once, as after a crash; the next start recovers from the redo log.
    "--innodb-fast-shutdown=2",
    // Commits reach the operating system, not the disk: nothing is lost when the server is
    // killed, only when the machine is.
    "--innodb-flush-log-at-trx-commit=2",
    "--skip-innodb-doublewrite",
    "--innodb-buffer-pool-size=16M",
    // No 12 MB temporary tablespace written out at every start; no buffer pool dump.
    "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
    "--innodb-buffer-pool-dump-at-shutdown=OFF",
    "--innodb-buffer-pool-load-at-startup=OFF",
    // InnoDB's own end of a lock wait (50 s by default): under the tool's default 10 s step
    // timeout, so that a wait the database will not end otherwise (a cycle through a lock InnoDB
    // does not see) ends as the database's error 1205 before the tool's own timeout; far above
    // the milliseconds a wait lasts in a run, where the runner's next step releases it.
    // `LOCK_WAIT_TIMEOUT` is the same value.
    "--innodb-lock-wait-timeout=8",
    // Every transaction's locks in SHOW ENGINE INNODB STATUS: who a waiting session waits for.
    "--innodb-status-output-locks=ON",
    // A scenario may have 200 sessions; each run adds a control connection, the engine one.
    "--max-connections=250",
    // Scenarios have a few tables: a cache of 256 in one instance rather than 2000 in 8, so
    // that the server asks for about 1,300 open files rather than 32,000. (Under a lower limit
    // it shrinks its table cache and keeps its 250 connections: checked at 1024.)
    "--table-open-cache=256",
    "--table-open-cache-instances=1",
    // What a current server's users have; 10.11 would make latin1 databases.
    "--character-set-server=utf8mb4",
];

/// The socket's path in a slot.
pub(super) fn socket_path(slot_dir: &Path) -> PathBuf {
    slot_dir.join(RUN_DIR).join(SOCKET_NAME)
}

/// Spawns the server on the slot's data directory and waits for it to accept connections.
///
/// As root it is started as `owner` (the setuid is ours, before exec) rather than with
/// `--user`: the kernel clears the parent-death signal when a process changes its user, so a
/// server that switched by itself would outlive a killed run.
pub(super) fn launch(
    server: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<Server, CacheError> {
    let run_dir = slot_dir.join(RUN_DIR);
    let mut command = Command::new(server);
    // `--no-defaults` must come first.
    command
        .arg("--no-defaults")
        .arg(path_setting("datadir", &slot_dir.join("data")))
        .arg(path_setting("socket", &run_dir.join(SOCKET_NAME)))
        .arg(path_setting("pid-file", &run_dir.join(PID_NAME)))
        .arg(path_setting("tmpdir", &run_dir))
        .args(FILE_SETTINGS)
        .args(SETTINGS);
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    Server::launch(&FLAVOR, server, command)
}

/// Stops a server that an earlier run of this slot left behind, found through its pid file,
/// and removes its stale socket. Returns a note when the pid file named a process that is not
/// the slot's server.
pub(super) fn stop_orphan(slot_dir: &Path) -> Result<Option<String>, CacheError> {
    let run_dir = slot_dir.join(RUN_DIR);
    orphan::stop_orphan(
        &FLAVOR,
        &run_dir.join(PID_NAME),
        &slot_dir.join("data"),
        &[run_dir.join(SOCKET_NAME)],
    )
}

/// `--name=path`, the path as it is (not necessarily UTF-8).
pub(in crate::engine::mariadb) fn path_setting(name: &str, path: &Path) -> OsString {
    let mut setting = OsString::from(format!("--{name}="));
    setting.push(path);
    setting
}
