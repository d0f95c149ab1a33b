//! Whether a cached data directory looks whole before its server starts: cheap checks of what
//! every start needs, and a manifest of the configuration files as initdb wrote them. What is
//! wrong is said in a few words, for the notice of a slot that was initialised again.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::engine::cache::fingerprint;
use crate::engine::cache::process::failure_line;

/// The configuration files initdb writes and nothing of ours changes.
const CONFIG_FILES: &[&str] = &[
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
];
/// The size of `global/pg_control` (PostgreSQL's `PG_CONTROL_FILE_SIZE`).
const PG_CONTROL_SIZE: u64 = 8192;
/// The databases initdb makes: template1, template0 and postgres.
const INITDB_DATABASES: usize = 3;
/// The length of a WAL segment's file name (timeline, log and segment, 8 hex digits each).
const WAL_NAME_LEN: usize = 24;

/// What a cheap look finds wrong with `data_dir`, if anything. `manifest` is the slot's
/// manifest, when it has one.
pub(super) fn damage(data_dir: &Path, major: u32, manifest: Option<&str>) -> Option<String> {
    check_data_dir(data_dir)
        .or_else(|| check_version(data_dir, major))
        .or_else(|| check_control(data_dir))
        .or_else(|| check_databases(data_dir))
        .or_else(|| check_wal(data_dir))
        .or_else(|| {
            manifest
                .and_then(|manifest| config_damage(manifest, |name| fs::read(data_dir.join(name))))
        })
}

/// The manifest of `data_dir`'s configuration files: one `name fingerprint` line each.
pub(super) fn manifest_of(data_dir: &Path) -> io::Result<String> {
    let mut text = String::new();
    for name in CONFIG_FILES {
        let bytes = fs::read(data_dir.join(name))?;
        text.push_str(&format!("{name} {}\n", fingerprint(&bytes)));
    }
    Ok(text)
}

/// Why a server would not start (or initdb failed), from its log: its first FATAL or PANIC
/// message, else its last few lines (a message printed before logging starts spans lines), on
/// one line.
pub(super) fn failure_reason<'a>(log: impl Iterator<Item = &'a str>) -> String {
    failure_line(log, |line| {
        ["FATAL:", "PANIC:"]
            .iter()
            .find_map(|level| line.find(level).map(|at| &line[at..]))
    })
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
    // The server refuses any other mode, and needs to write.
    let mode = meta.permissions().mode() & 0o777;
    (mode != 0o700 && mode != 0o750)
        .then(|| format!("its data directory has mode {mode:04o}, not 0700"))
}

fn check_version(data_dir: &Path, major: u32) -> Option<String> {
    let bytes = match fs::read(data_dir.join("PG_VERSION")) {
        Ok(bytes) => bytes,
        Err(err) => return Some(format!("PG_VERSION cannot be read ({err})")),
    };
    let text = String::from_utf8_lossy(&bytes);
    let version = text.trim();
    if version == major.to_string() {
        return None;
    }
    if version.is_empty() {
        return Some("PG_VERSION is empty".to_string());
    }
    let shown: String = version.chars().take(20).collect();
    Some(format!("PG_VERSION says {shown:?}, not {major}"))
}

fn check_control(data_dir: &Path) -> Option<String> {
    match fs::metadata(data_dir.join("global").join("pg_control")) {
        Ok(meta) if meta.is_file() && meta.len() == PG_CONTROL_SIZE => None,
        Ok(meta) => Some(format!(
            "global/pg_control is {} bytes, not {PG_CONTROL_SIZE}",
            meta.len()
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Some("global/pg_control is missing".to_string())
        }
        Err(err) => Some(format!("global/pg_control cannot be read ({err})")),
    }
}

fn check_databases(data_dir: &Path) -> Option<String> {
    let entries = match fs::read_dir(data_dir.join("base")) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Some("base/ is missing".to_string())
        }
        Err(err) => return Some(format!("base/ cannot be read ({err})")),
    };
    let databases = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter(|entry| is_number(&entry.file_name().to_string_lossy()))
        .count();
    (databases < INITDB_DATABASES).then(|| {
        format!("base/ holds {databases} databases, not the {INITDB_DATABASES} initdb made")
    })
}

fn check_wal(data_dir: &Path) -> Option<String> {
    let entries = match fs::read_dir(data_dir.join("pg_wal")) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Some("pg_wal/ is missing".to_string())
        }
        Err(err) => return Some(format!("pg_wal/ cannot be read ({err})")),
    };
    let has_segment = entries
        .filter_map(Result::ok)
        .any(|entry| is_wal_segment(&entry.file_name().to_string_lossy()));
    (!has_segment).then(|| "pg_wal/ holds no WAL segment".to_string())
}

/// The first configuration file that differs from the manifest (read with `read`).
fn config_damage(manifest: &str, read: impl Fn(&str) -> io::Result<Vec<u8>>) -> Option<String> {
    manifest.lines().find_map(|line| {
        let (name, expected) = line.split_once(' ')?;
        match read(name) {
            Ok(bytes) if fingerprint(&bytes) == expected => None,
            Ok(_) => Some(format!("{name} differs from what initdb wrote")),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Some(format!("{name} is missing")),
            Err(err) => Some(format!("{name} cannot be read ({err})")),
        }
    })
}

fn is_number(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_wal_segment(name: &str) -> bool {
    name.len() == WAL_NAME_LEN && name.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_config(manifest: &str, files: &[(&str, &str)], expected: Option<&str>) {
        let read = |name: &str| {
            files
                .iter()
                .find(|(file, _)| *file == name)
                .map(|(_, text)| text.as_bytes().to_vec())
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        };
        assert_eq!(config_damage(manifest, read).as_deref(), expected);
    }

    #[test]
    fn configuration_files_are_compared_with_the_manifest() {
        let manifest = format!(
            "pg_hba.conf {}\npg_ident.conf {}\n",
            fingerprint(b"local all all trust\n"),
            fingerprint(b"")
        );
        let whole = [
            ("pg_hba.conf", "local all all trust\n"),
            ("pg_ident.conf", ""),
        ];
        check_config(&manifest, &whole, None);
        let changed = [
            ("pg_hba.conf", "local all all trust\n"),
            ("pg_ident.conf", "x"),
        ];
        check_config(
            &manifest,
            &changed,
            Some("pg_ident.conf differs from what initdb wrote"),
        );
        check_config(
            &manifest,
            &[("pg_ident.conf", "")],
            Some("pg_hba.conf is missing"),
        );
        check_config("", &[], None);
    }

    #[test]
    fn a_start_failure_is_told_by_its_first_fatal_line() {
        let log = [
            "2026-01-01 00:00:00.000 UTC [7] LOG:  starting PostgreSQL 15",
            "2026-01-01 00:00:00.001 UTC [7] FATAL:  incorrect checksum in control file",
            "2026-01-01 00:00:00.002 UTC [7] LOG:  database system is shut down",
        ];
        assert_eq!(
            failure_reason(log.into_iter()),
            "FATAL: incorrect checksum in control file"
        );
        let unlogged = [
            "postgres: could not find the database system",
            "Expected to find it in the directory \"/d\",",
            "but could not open file \"/d/global/pg_control\": Permission denied",
        ];
        assert_eq!(
            failure_reason(unlogged.into_iter()),
            "postgres: could not find the database system Expected to find it in the directory \
             \"/d\", but could not open file \"/d/global/pg_control\": Permission denied"
        );
        assert_eq!(failure_reason(["", "bye  now"].into_iter()), "bye now");
        assert_eq!(
            failure_reason(std::iter::empty()),
            "it exited without a word"
        );
    }

    #[test]
    fn names_are_told_apart() {
        assert!(is_wal_segment("000000010000000000000001"));
        assert!(!is_wal_segment("archive_status"));
        assert!(is_number("5"));
        assert!(!is_number("pgsql_tmp"));
    }
}
