//! What a PostgreSQL slot holds beyond the shared ones (`cache::slot`): its socket's name, the
//! manifest of its configuration files, and how `initdb` fills it once.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;

use super::compact::record_size;
use super::health::{failure_reason, manifest_of};
use super::{io_error, ClusterError, DB_USER};
use crate::engine::cache::slot::{prepare_install, InstallLog, Owner};
use crate::engine::cache::spawn::{confine, spawn_lasting};
use crate::engine::cache::{self, CacheError};

/// The file name of the server's socket in its socket directory.
pub(super) const SOCKET_NAME: &str = ".s.PGSQL.5432";

/// Settings of a new data directory, in its `postgresql.auto.conf` (not on the server's command
/// line, which would refuse them for a directory made with 16 MB segments): keep two WAL segments
/// of 1 MB, the least allowed, rather than up to 80 MB, so the cache stays small.
const WAL_SETTINGS: &str = "min_wal_size = '2MB'\nmax_wal_size = '8MB'\n";

/// The slot's manifest of its configuration files; one is written from the files as they are
/// when a slot made before manifests has none.
pub(super) fn manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<String, ClusterError> {
    Ok(cache::slot::manifest(slot_dir, owner, || {
        configuration(slot_dir)
    })?)
}

fn write_manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
    Ok(cache::slot::write_manifest(
        slot_dir,
        owner,
        &configuration(slot_dir)?,
    )?)
}

/// What the manifest records: the configuration files as they are now.
fn configuration(slot_dir: &Path) -> Result<String, CacheError> {
    let data_dir = slot_dir.join("data");
    manifest_of(&data_dir).map_err(cache::io_error(format!(
        "cannot read the configuration files in {}",
        data_dir.display()
    )))
}

/// Runs initdb into `slot_dir/data` unless a finished data directory is there.
pub(super) fn initdb_once(
    bindir: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<(), ClusterError> {
    let data_dir = slot_dir.join("data");
    if data_dir.join("PG_VERSION").is_file() {
        return Ok(());
    }
    let tmp_dir = slot_dir.join("data.tmp");
    let InstallLog {
        path: log_path,
        stdout: log_copy,
        stderr: log,
    } = prepare_install(slot_dir, "initdb.log", owner)?;
    let initdb = bindir.join("initdb");
    let mut command = Command::new(&initdb);
    command
        .arg("-D")
        .arg(&tmp_dir)
        .args([
            "-U",
            DB_USER,
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
            // 1 MB WAL segments, not 16: see WAL_SETTINGS.
            "--wal-segsize=1",
        ])
        .args(["-E", "UTF8", "--locale=C"])
        .stdout(log_copy)
        .stderr(log);
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    let status = spawn_lasting(command)
        .and_then(|mut child| child.wait())
        .map_err(io_error(format!("cannot run {}", initdb.display())))?;
    if !status.success() {
        let output = fs::read(&log_path).unwrap_or_default();
        return Err(ClusterError::Initdb {
            dir: tmp_dir,
            status: status.to_string(),
            reason: failure_reason(String::from_utf8_lossy(&output).lines()),
            log: log_path,
        });
    }
    let auto_conf = tmp_dir.join("postgresql.auto.conf");
    OpenOptions::new()
        .append(true)
        .open(&auto_conf)
        .and_then(|mut file| file.write_all(WAL_SETTINGS.as_bytes()))
        .map_err(io_error(format!("cannot write {}", auto_conf.display())))?;
    fs::rename(&tmp_dir, &data_dir).map_err(io_error(format!(
        "cannot rename {} to {}",
        tmp_dir.display(),
        data_dir.display()
    )))?;
    write_manifest(slot_dir, owner)?;
    record_size(slot_dir).map_err(io_error(format!(
        "cannot record the size of {}",
        data_dir.display()
    )))
}
