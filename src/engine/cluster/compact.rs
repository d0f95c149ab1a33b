//! Keeping a slot's data directory small. Every run creates and drops a schema with tables, which
//! leaves dead rows in the catalogs (`pg_attribute`, `pg_class`, `pg_depend`, …); a server that
//! lives for a run never gives autovacuum its turn, so they pile up (35 MB over 2,860 runs). A
//! start that finds the databases grown by [`COMPACT_GROWTH`] since the last compaction runs
//! `VACUUM FULL` in single-user mode before the server starts, which rewrites them to their
//! live size (about 0.2 s). Between compactions, a server that stops with `base/` grown by
//! [`VACUUM_GROWTH`] since the last compaction or vacuum first runs a plain `VACUUM` of the
//! catalogs that churn ([`CATALOG_VACUUM`], about 20 ms), which makes their dead rows' space
//! reusable: the files then hardly grow, and the compaction (with, for a pair, a fresh copy of
//! the standby: about 1 s) is rarely due.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use super::DB_NAME;
use crate::engine::cache::slot::Owner;
use crate::engine::cache::spawn::{confine, spawn_lasting};

/// Growth of `base/` past its size after the last compaction that triggers the next one.
const COMPACT_GROWTH: u64 = 2 * 1024 * 1024;
/// The file, in a slot's directory, that holds the size of `base/` after the last compaction.
const COMPACTED: &str = "compacted";
/// Growth of `base/` past its size after the last compaction or vacuum that makes a stopping
/// server vacuum the catalogs first.
const VACUUM_GROWTH: u64 = 256 * 1024;
/// The file, in a slot's directory, that holds the size of `base/` after the last vacuum.
const VACUUMED: &str = "vacuumed";

/// The catalogs that a run's schema, role and tables leave dead rows in.
pub(crate) const CATALOG_VACUUM: &str = "VACUUM pg_catalog.pg_attribute, pg_catalog.pg_depend, \
     pg_catalog.pg_class, pg_catalog.pg_type, pg_catalog.pg_index, pg_catalog.pg_constraint, \
     pg_catalog.pg_attrdef, pg_catalog.pg_namespace, pg_catalog.pg_description, \
     pg_catalog.pg_statistic, pg_catalog.pg_rewrite, pg_catalog.pg_trigger, \
     pg_catalog.pg_sequence, pg_catalog.pg_authid, pg_catalog.pg_shdepend, \
     pg_catalog.pg_shdescription, pg_catalog.pg_auth_members";

/// Whether the slot's catalogs are due a plain vacuum before its server stops: `base/` has grown
/// by [`VACUUM_GROWTH`] since the last compaction or vacuum.
pub(super) fn vacuum_due(slot_dir: &Path) -> bool {
    let (compacted, vacuumed) = (record(slot_dir, COMPACTED), record(slot_dir, VACUUMED));
    base_size(slot_dir).is_ok_and(|size| vacuum_due_at(compacted, vacuumed, size))
}

/// The size a record in the slot's directory holds (`compacted`, `vacuumed`), if it is there.
fn record(slot_dir: &Path, name: &str) -> Option<u64> {
    fs::read_to_string(slot_dir.join(name))
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
}

/// Whether `base/`, now `size` bytes, has grown enough since the last compaction (`compacted`)
/// or vacuum (`vacuumed`, which a compaction removes); with no record of either, the start's
/// compaction is due, not a vacuum.
fn vacuum_due_at(compacted: Option<u64>, vacuumed: Option<u64>, size: u64) -> bool {
    compacted
        .max(vacuumed)
        .is_some_and(|since| size > since.saturating_add(VACUUM_GROWTH))
}

/// Records the size of the slot's databases as the one the next vacuum is measured from.
pub(super) fn record_vacuum(slot_dir: &Path) -> io::Result<()> {
    fs::write(slot_dir.join(VACUUMED), base_size(slot_dir)?.to_string())
}

/// Compacts the slot's databases if they have grown by [`COMPACT_GROWTH`] since the last
/// compaction (or since initdb; a slot from before these records is compacted once): `None`
/// when none was due, else whether it worked (a note when not). Run while no server uses the
/// slot, with the server's own `settings`.
pub(super) fn compact_if_grown(
    postgres: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
    settings: &[&str],
) -> Option<Result<(), String>> {
    let size = base_size(slot_dir).ok()?;
    if !compaction_due(record(slot_dir, COMPACTED), size) {
        return None;
    }
    let failed = vacuum_full(postgres, slot_dir, owner, settings).err();
    // Recorded even after a failure, so that a failing compaction is not tried at every start.
    let recorded = record_size(slot_dir).err().map(|err| err.to_string());
    Some(match failed.or(recorded) {
        None => Ok(()),
        Some(why) => Err(format!(
            "compacting the cached PostgreSQL cluster in {} failed ({why})",
            slot_dir.display()
        )),
    })
}

/// Records the size of the slot's databases as the one the next compaction (and vacuum) is
/// measured from.
pub(super) fn record_size(slot_dir: &Path) -> io::Result<()> {
    match fs::remove_file(slot_dir.join(VACUUMED)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    fs::write(slot_dir.join(COMPACTED), base_size(slot_dir)?.to_string())
}

fn base_size(slot_dir: &Path) -> io::Result<u64> {
    tree_size(&slot_dir.join("data").join("base"))
}

/// Whether `base/`, now `size` bytes, has grown enough since the last compaction (`compacted`
/// bytes; `None` when there is no record).
fn compaction_due(compacted: Option<u64>, size: u64) -> bool {
    compacted.is_none_or(|compacted| size > compacted.saturating_add(COMPACT_GROWTH))
}

/// `VACUUM FULL` of the `postgres` database, by the server in single-user mode.
fn vacuum_full(
    postgres: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
    settings: &[&str],
) -> Result<(), String> {
    let mut command = Command::new(postgres);
    command
        .arg("--single")
        .arg("-D")
        .arg(slot_dir.join("data"))
        .args([
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "lc_messages=C",
        ])
        .args(settings.iter().flat_map(|setting| ["-c", setting]))
        .arg(DB_NAME)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    command.stdin(Stdio::piped());
    let mut child = spawn_lasting(command).map_err(|err| err.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"VACUUM FULL\n")
            .map_err(|err| err.to_string())?;
    }
    let mut output = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut output);
    }
    let status = child.wait().map_err(|err| err.to_string())?;
    let error = output
        .lines()
        .find(|line| line.contains("ERROR:") || line.contains("FATAL:"));
    match (status.success(), error) {
        (true, None) => Ok(()),
        (_, Some(line)) => Err(line.trim().to_string()),
        (false, None) => Err(format!("the single-user server exited with {status}")),
    }
}

/// The bytes of the files under `dir`.
fn tree_size(dir: &Path) -> io::Result<u64> {
    let mut size = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        size += match meta.is_dir() {
            true => tree_size(&entry.path())?,
            false => meta.len(),
        };
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vacuum_is_due_after_some_growth_since_the_last_compaction_or_vacuum() {
        let kb = 1024;
        assert!(!vacuum_due_at(None, None, 9_000 * kb));
        assert!(!vacuum_due_at(Some(7_000 * kb), None, 7_256 * kb));
        assert!(vacuum_due_at(Some(7_000 * kb), None, 7_256 * kb + 1));
        assert!(!vacuum_due_at(
            Some(7_000 * kb),
            Some(7_500 * kb),
            7_600 * kb
        ));
        assert!(vacuum_due_at(
            Some(7_000 * kb),
            Some(7_500 * kb),
            7_800 * kb
        ));
        assert!(!vacuum_due_at(Some(u64::MAX), None, u64::MAX));
    }

    #[test]
    fn compaction_is_due_after_enough_growth_since_the_last() {
        let mb = 1024 * 1024;
        assert!(compaction_due(None, 0));
        assert!(!compaction_due(Some(7 * mb), 7 * mb));
        assert!(!compaction_due(Some(7 * mb), 9 * mb));
        assert!(compaction_due(Some(7 * mb), 9 * mb + 1));
        assert!(!compaction_due(Some(u64::MAX), u64::MAX));
    }
}
