//! The hot standby of a throwaway pair: a copy of the primary's data directory made once by
//! `pg_basebackup` and kept in the pair's slot (`standby/`), started with the primary as its
//! upstream over the primary's private socket, on a socket directory of its own
//! (`sock-standby/`).
//!
//! The primary names it its synchronous standby (`synchronous_standby_names`), so a session
//! that sets `synchronous_commit = remote_apply` waits until the standby has replayed its
//! commit; every other session commits at `synchronous_commit = local` and never waits for it.
//! The primary keeps 32 MB of WAL for a standby that fell behind while it was down (a
//! compaction writes WAL before the standby runs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use super::health::failure_reason;
use super::server::STANDBY_FLAVOR;
use super::slot::SOCKET_NAME;
use super::{io_error, ClusterError, DB_USER, PORT};
use crate::engine::cache::orphan;
use crate::engine::cache::process::Server;
use crate::engine::cache::slot::{fresh_log, give, private_dir, remove_any, InstallLog, Owner};
use crate::engine::cache::spawn::{confine, spawn_lasting};

/// The name the standby gives itself upstream, which `synchronous_standby_names` names.
pub const STANDBY_NAME: &str = "anomalies_standby";

/// The primary's settings in a pair, beside the single server's.
pub(super) const PRIMARY_SETTINGS: &[&str] = &[
    "synchronous_standby_names=anomalies_standby",
    "synchronous_commit=local",
    "wal_keep_size=32MB",
];

/// A running standby.
pub(super) struct Standby {
    pub(super) server: Server,
    pub(super) socket_dir: PathBuf,
}

/// Makes `slot/standby` from the running primary unless a whole one is there.
pub(super) fn basebackup_once(
    bindir: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<(), ClusterError> {
    let dir = slot_dir.join("standby");
    if dir.join("PG_VERSION").is_file() && dir.join("standby.signal").is_file() {
        return Ok(());
    }
    remove_any(&dir)?;
    let tmp = slot_dir.join("standby.tmp");
    remove_any(&tmp)?;
    let InstallLog {
        path: log_path,
        stdout,
        stderr,
    } = fresh_log(slot_dir, "basebackup.log", owner)?;
    let program = super::binaries::program(bindir, "pg_basebackup");
    let mut command = Command::new(&program);
    command
        .arg("-h")
        .arg(slot_dir.join("sock"))
        .args(["-p", &PORT.to_string(), "-U", DB_USER, "-D"])
        .arg(&tmp)
        .args(["--no-sync", "-X", "stream", "-c", "fast"])
        .stdout(stdout)
        .stderr(stderr);
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    let status = spawn_lasting(command)
        .and_then(|mut child| child.wait())
        .map_err(io_error(format!("cannot run {}", program.display())))?;
    if !status.success() {
        let output = fs::read(&log_path).unwrap_or_default();
        return Err(ClusterError::Basebackup {
            status: status.to_string(),
            reason: failure_reason(String::from_utf8_lossy(&output).lines()),
            log: log_path,
        });
    }
    let signal = tmp.join("standby.signal");
    fs::write(&signal, "").map_err(io_error(format!("cannot write {}", signal.display())))?;
    give(&signal, owner)?;
    fs::rename(&tmp, &dir).map_err(io_error(format!(
        "cannot rename {} to {}",
        tmp.display(),
        dir.display()
    )))
}

/// Starts the standby of the slot's primary; waits until it accepts read-only connections.
pub(super) fn launch(
    postgres: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<Standby, ClusterError> {
    let data_dir = slot_dir.join("standby");
    let socket_dir = slot_dir.join("sock-standby");
    private_dir(&socket_dir, owner)?;
    stop_orphan(&data_dir, &socket_dir)?;
    let upstream = format!(
        "primary_conninfo=host={} port={PORT} user={DB_USER} application_name={STANDBY_NAME}",
        slot_dir.join("sock").display()
    );
    let mut command = Command::new(postgres);
    command.arg("-D").arg(&data_dir).arg("-k").arg(&socket_dir);
    for setting in super::server::SETTINGS {
        command.arg("-c").arg(setting);
    }
    command
        .args(["-c", "hot_standby=on", "-c", &upstream])
        // A standby asks again at once when its stream breaks, not after 5 s.
        .args(["-c", "wal_retrieve_retry_interval=50ms"]);
    confine(&mut command, slot_dir, owner, Signal::SIGQUIT);
    let server = Server::launch(&STANDBY_FLAVOR, postgres, command)?;
    Ok(Standby { server, socket_dir })
}

/// Removes the standby's copy, to be made again from the primary; first stops a standby an
/// earlier run left running on it, which would otherwise outlive its directory.
pub(super) fn discard(slot_dir: &Path) -> Result<(), ClusterError> {
    stop_orphan(&slot_dir.join("standby"), &slot_dir.join("sock-standby"))?;
    remove_any(&slot_dir.join("standby.damaged"))?;
    let dir = slot_dir.join("standby");
    if dir.exists() {
        fs::rename(&dir, slot_dir.join("standby.damaged"))
            .map_err(io_error(format!("cannot move {} aside", dir.display())))?;
    }
    Ok(remove_any(&slot_dir.join("standby.damaged"))?)
}

/// Stops a standby an earlier run of this slot left behind.
pub(super) fn stop_orphan(data_dir: &Path, socket_dir: &Path) -> Result<(), ClusterError> {
    let stale = [
        socket_dir.join(SOCKET_NAME),
        socket_dir.join(format!("{SOCKET_NAME}.lock")),
    ];
    orphan::stop_orphan(
        &STANDBY_FLAVOR,
        &data_dir.join("postmaster.pid"),
        data_dir,
        &stale,
    )?;
    Ok(())
}
