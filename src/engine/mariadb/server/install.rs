//! Filling a slot once: `mariadb-install-db` makes the data directory in `data.tmp/`, which is
//! renamed to `data/` (so it is whole or absent), and the manifest of what it wrote is kept.

use std::fs;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;

use super::binaries::Binaries;
use super::health::{failure_reason, manifest_of};
use super::process::{path_setting, FILE_SETTINGS, RUN_DIR};
use super::MariaError;
use crate::engine::cache::slot::{prepare_install, InstallLog, Owner};
use crate::engine::cache::spawn::{confine, spawn_lasting};
use crate::engine::cache::{self, io_error, CacheError};

/// The file `mariadb-install-db` writes last, and only when it succeeds: a data directory
/// without it was never finished.
pub(super) const FINISHED: &str = "mysql_upgrade_info";

/// The slot's manifest; one is written from the files as they are when a slot that was
/// finished but not yet fingerprinted (the run was killed between the two) has none.
pub(super) fn manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<String, CacheError> {
    cache::slot::manifest(slot_dir, owner, || files(slot_dir))
}

/// Whether the slot's data directory was finished by `mariadb-install-db`.
pub(super) fn is_installed(slot_dir: &Path) -> bool {
    slot_dir.join("data").join(FINISHED).is_file()
}

/// Runs `mariadb-install-db` into `slot_dir/data` unless a finished data directory is there.
/// As root it runs as the server's user, as the server will.
pub(super) fn install_once(
    binaries: &Binaries,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<(), MariaError> {
    if is_installed(slot_dir) {
        return Ok(());
    }
    let data_dir = slot_dir.join("data");
    let tmp_dir = slot_dir.join("data.tmp");
    let InstallLog {
        path: log_path,
        stdout: log_copy,
        stderr: log,
    } = prepare_install(slot_dir, "install.log", owner)?;
    let mut command = Command::new(&binaries.install_db);
    // `--no-defaults` first: the script reads no my.cnf then, and passes it on to the server.
    command.arg("--no-defaults");
    if let Some(basedir) = basedir(&binaries.server) {
        // Where the script finds the SQL it feeds the server (`<basedir>/share/mysql`).
        command.arg(path_setting("basedir", basedir));
    }
    command
        .arg(path_setting("datadir", &tmp_dir))
        // Not /tmp: a MariaDB server that starts removes every `#sql*` file in its tmpdir,
        // which are the temporary tables of any other server bootstrapping there.
        .arg(path_setting("tmpdir", &slot_dir.join(RUN_DIR)))
        .args([
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
            // Skips the host name lookup, which only names root's accounts (grant tables
            // are skipped anyway) and can hang on a machine without DNS.
            "--force",
        ])
        .args(FILE_SETTINGS)
        // The server the script bootstraps: the one that will run this data directory.
        .env("MYSQLD_BOOTSTRAP", &binaries.server)
        .stdout(log_copy)
        .stderr(log);
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    let status = spawn_lasting(command)
        .and_then(|mut child| child.wait())
        .map_err(io_error(format!(
            "cannot run {}",
            binaries.install_db.display()
        )))?;
    if !status.success() || !tmp_dir.join(FINISHED).is_file() {
        let output = fs::read(&log_path).unwrap_or_default();
        let output = String::from_utf8_lossy(&output);
        let lines: Vec<&str> = output.lines().collect();
        return Err(MariaError::InstallDb {
            dir: tmp_dir,
            status: status.to_string(),
            reason: failure_reason(&lines),
            log: log_path,
        });
    }
    fs::rename(&tmp_dir, &data_dir).map_err(io_error(format!(
        "cannot rename {} to {}",
        tmp_dir.display(),
        data_dir.display()
    )))?;
    Ok(write_manifest(slot_dir, owner)?)
}

/// The installation's root, the server's directory's parent: `/usr` for `/usr/sbin/mariadbd`,
/// a tarball's top for its `bin/mariadbd`.
fn basedir(server: &Path) -> Option<&Path> {
    server.parent()?.parent()
}

fn write_manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<(), CacheError> {
    cache::slot::write_manifest(slot_dir, owner, &files(slot_dir)?)
}

/// What the manifest records: the data directory's files as they are now.
fn files(slot_dir: &Path) -> Result<String, CacheError> {
    let data_dir = slot_dir.join("data");
    manifest_of(&data_dir).map_err(io_error(format!(
        "cannot read the files in {}",
        data_dir.display()
    )))
}
