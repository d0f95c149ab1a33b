//! Whether a cached MariaDB data directory looks whole before its server starts, and why a
//! server would not start, from its log.
//!
//! Much damage stops the server at once (a lost or foreign `ibdata1`, a redo log that is gone,
//! a garbled `aria_log_control`): it exits, and the slot is healed then. Damage to the system
//! tables does not: a truncated `mysql/proc.MAI` lets the server start and fails the first
//! `CREATE PROCEDURE`. So after `mariadb-install-db` the slot keeps a manifest of what it wrote:
//! the fingerprint of each file nothing changes (table definitions, `db.opt`), the size of each
//! file that only grows (the tables' data and indexes, the system tablespace, the redo log).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::engine::cache::fingerprint;
use crate::engine::cache::process::failure_line;

/// How the manifest checks a file.
#[derive(Debug, PartialEq)]
enum Rule {
    /// Nothing changes it: its fingerprint must match.
    Same,
    /// It only grows: it must be at least as large.
    Grows,
}

/// What a cheap look finds wrong with `data_dir`, if anything. `manifest` is the slot's
/// manifest, when it has one.
pub(super) fn damage(data_dir: &Path, manifest: Option<&str>) -> Option<String> {
    check_data_dir(data_dir).or_else(|| {
        manifest.and_then(|manifest| {
            let read = |name: &str| fs::read(data_dir.join(name));
            let len = |name: &str| fs::metadata(data_dir.join(name)).map(|meta| meta.len());
            manifest_damage(manifest, read, len)
        })
    })
}

/// The manifest of a data directory `mariadb-install-db` has just made: a line `rule value
/// path` for each file it checks, in a fixed order.
pub(super) fn manifest_of(data_dir: &Path) -> io::Result<String> {
    let mut files = Vec::new();
    list_files(data_dir, Path::new(""), &mut files)?;
    files.sort();
    let mut text = String::new();
    for name in files {
        let Some(rule) = rule_for(&name) else {
            continue;
        };
        let path = data_dir.join(&name);
        let (word, value) = match rule {
            Rule::Same => ("same", fingerprint(&fs::read(&path)?)),
            Rule::Grows => ("grows", fs::metadata(&path)?.len().to_string()),
        };
        text.push_str(&format!("{word} {value} {name}\n"));
    }
    Ok(text)
}

/// Why the server would not start (or `mariadb-install-db` failed), from its log: its first
/// error line, else its last few lines, on one line.
pub(super) fn failure_reason(lines: &[&str]) -> String {
    failure_line(lines.iter().copied(), |line| {
        ["[ERROR] ", "FATAL ERROR: ", "ERROR: "]
            .iter()
            .find_map(|marker| line.find(marker).map(|at| &line[at + marker.len()..]))
    })
}

/// Which rule checks the file at `name` (relative to the data directory); `None` for what the
/// server rewrites or replaces freely (Aria's log files, the buffer pool dump).
fn rule_for(name: &str) -> Option<Rule> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let extension = file.rsplit_once('.').map(|(_, extension)| extension);
    match (file, extension) {
        ("mysql_upgrade_info", _) | (_, Some("frm" | "opt")) => Some(Rule::Same),
        ("ibdata1" | "ib_logfile0" | "aria_log_control", _) => Some(Rule::Grows),
        (_, Some("MAI" | "MAD" | "ibd" | "CSV" | "CSM")) => Some(Rule::Grows),
        _ => None,
    }
}

/// The files under `dir`/`prefix`, as paths relative to `dir`.
fn list_files(dir: &Path, prefix: &Path, files: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir.join(prefix))? {
        let entry = entry?;
        let name = prefix.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list_files(dir, &name, files)?;
        } else {
            files.push(name.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn check_data_dir(data_dir: &Path) -> Option<String> {
    let meta = match fs::symlink_metadata(data_dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Some("there is no data directory".to_string())
        }
        Err(err) => return Some(format!("its data directory cannot be read ({err})")),
    };
    if !meta.is_dir() {
        return Some("its data directory is not a directory".to_string());
    }
    // The server writes in it (its recovery logs, the temporary tablespace).
    let mode = meta.permissions().mode() & 0o777;
    (mode & 0o700 != 0o700).then(|| format!("its data directory has mode {mode:04o}, not 0700"))
}

/// The first file that differs from the manifest: one that stays the same is read with
/// `read`, one that grows is only measured with `len` (the system tablespace and the redo log
/// are 20 MB).
fn manifest_damage(
    manifest: &str,
    read: impl Fn(&str) -> io::Result<Vec<u8>>,
    len: impl Fn(&str) -> io::Result<u64>,
) -> Option<String> {
    manifest.lines().find_map(|line| {
        let mut words = line.splitn(3, ' ');
        let (rule, expected, name) = (words.next()?, words.next()?, words.next()?);
        let unusable = |err: io::Error| match err.kind() {
            io::ErrorKind::NotFound => format!("{name} is missing"),
            _ => format!("{name} cannot be read ({err})"),
        };
        match rule {
            "same" => match read(name) {
                Ok(bytes) if fingerprint(&bytes) == expected => None,
                Ok(_) => Some(format!("{name} differs from what mariadb-install-db wrote")),
                Err(err) => Some(unusable(err)),
            },
            "grows" => {
                let least: u64 = expected.parse().ok()?;
                match len(name) {
                    Ok(len) if len >= least => None,
                    Ok(len) => Some(format!(
                        "{name} is {len} bytes, less than the {least} mariadb-install-db made"
                    )),
                    Err(err) => Some(unusable(err)),
                }
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(manifest: &str, files: &[(&str, &str)], expected: Option<&str>) {
        let read = |name: &str| {
            files
                .iter()
                .find(|(file, _)| *file == name)
                .map(|(_, text)| text.as_bytes().to_vec())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        };
        let len = |name: &str| read(name).map(|bytes| bytes.len() as u64);
        assert_eq!(manifest_damage(manifest, read, len).as_deref(), expected);
    }

    #[test]
    fn files_are_compared_with_the_manifest_by_their_rule() {
        let manifest = format!(
            "same {} mysql/proc.frm\ngrows 4 mysql/proc.MAI\n",
            fingerprint(b"frm!")
        );
        let whole = [("mysql/proc.frm", "frm!"), ("mysql/proc.MAI", "index")];
        check(&manifest, &whole, None);
        check(
            &manifest,
            &[("mysql/proc.frm", "frm?"), ("mysql/proc.MAI", "index")],
            Some("mysql/proc.frm differs from what mariadb-install-db wrote"),
        );
        check(
            &manifest,
            &[("mysql/proc.frm", "frm!"), ("mysql/proc.MAI", "")],
            Some("mysql/proc.MAI is 0 bytes, less than the 4 mariadb-install-db made"),
        );
        check(
            &manifest,
            &[("mysql/proc.MAI", "index")],
            Some("mysql/proc.frm is missing"),
        );
        check("", &[], None);
    }

    #[test]
    fn each_file_gets_its_rule() {
        assert_eq!(rule_for("mysql/proc.frm"), Some(Rule::Same));
        assert_eq!(rule_for("sys/db.opt"), Some(Rule::Same));
        assert_eq!(rule_for("mysql_upgrade_info"), Some(Rule::Same));
        assert_eq!(rule_for("ibdata1"), Some(Rule::Grows));
        assert_eq!(rule_for("mysql/proc.MAD"), Some(Rule::Grows));
        assert_eq!(rule_for("mysql/innodb_table_stats.ibd"), Some(Rule::Grows));
        assert_eq!(rule_for("aria_log.00000001"), None);
        assert_eq!(rule_for("ib_buffer_pool"), None);
    }

    #[test]
    fn a_start_failure_is_told_by_its_first_error_line() {
        let log = [
            "2026-12-01 13:26:51 0 [Note] Starting MariaDB 10.11.19-MariaDB-0+deb12u1",
            "2026-12-01 13:26:51 0 [ERROR] InnoDB: File ./ib_logfile0 was not found",
            "2026-12-01 13:26:51 0 [ERROR] Aborting",
        ];
        assert_eq!(
            failure_reason(&log),
            "InnoDB: File ./ib_logfile0 was not found"
        );
        assert_eq!(
            failure_reason(&["FATAL ERROR: Could not find /usr/share/mysql/fill_help_tables.sql"]),
            "Could not find /usr/share/mysql/fill_help_tables.sql"
        );
        assert_eq!(failure_reason(&["", "bye  now"]), "bye now");
        assert_eq!(failure_reason(&[]), "it exited without a word");
    }
}
