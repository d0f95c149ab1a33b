//! Finding the installed MariaDB server and its `mariadb-install-db`, and the server's version.

use std::fs;
use std::path::{Path, PathBuf};

use super::process::FLAVOR;
use super::MariaError;
use crate::engine::cache::is_executable;
use crate::engine::cache::printed::printed_once;

/// The server's names, the newer first (Debian's `mysqld` is a link to `mariadbd`).
const SERVERS: &[&str] = &["mariadbd", "mysqld"];
/// The data directory initialiser's names, the newer first.
const INSTALLERS: &[&str] = &["mariadb-install-db", "mysql_install_db"];
/// Where distributions put the server, often not on a user's PATH.
const SYSTEM_SBIN: &str = "/usr/sbin";
/// Where distributions put `mariadb-install-db`.
const SYSTEM_BIN: &str = "/usr/bin";

/// The programs a throwaway server needs, and what the server says it is.
#[derive(Debug, Clone)]
pub(in crate::engine::mariadb) struct Binaries {
    /// `mariadbd` (or `mysqld`).
    pub(in crate::engine::mariadb) server: PathBuf,
    /// `mariadb-install-db` (or `mysql_install_db`).
    pub(in crate::engine::mariadb) install_db: PathBuf,
    /// As `SELECT VERSION()` says it: `10.11.19-MariaDB-0+deb12u1`.
    pub(in crate::engine::mariadb) version: String,
    /// Major and minor version, which name the cache directory: `10.11`.
    pub(in crate::engine::mariadb) series: String,
}

/// Finds the server in `bindir` when one is given, else on PATH or in /usr/sbin (`mariadbd`
/// anywhere before `mysqld`); then `mariadb-install-db` beside it, in `../bin` or
/// `../scripts` (a tarball's layout), and, for a server found by searching, on PATH or in
/// /usr/bin.
pub(in crate::engine::mariadb) fn find(bindir: Option<&Path>) -> Result<Binaries, MariaError> {
    let dirs: Vec<PathBuf> = match bindir {
        Some(dir) => vec![dir.to_path_buf()],
        None => search_path(SYSTEM_SBIN),
    };
    let found = first_program(SERVERS, &dirs).ok_or_else(|| MariaError::NoServer {
        looked: match bindir {
            Some(dir) => format!("in {}", dir.display()),
            None => format!("on PATH or in {SYSTEM_SBIN}"),
        },
    })?;
    // The real file, whose directory is its installation's (Debian's /usr/sbin/mysqld is a
    // link to mariadbd; /sbin may be a link to /usr/sbin).
    let server = fs::canonicalize(&found).unwrap_or(found);
    let version = version_of(&server)?;
    let series = series_of(&version).ok_or_else(|| MariaError::Version {
        program: server.clone(),
        detail: format!("unexpected version {version:?}"),
    })?;
    let server_dir = server.parent().unwrap_or(Path::new("/"));
    let mut install_dirs = vec![
        server_dir.to_path_buf(),
        server_dir.join("../bin"),
        server_dir.join("../scripts"),
    ];
    if bindir.is_none() {
        install_dirs.extend(search_path(SYSTEM_BIN));
    }
    let install_db =
        first_program(INSTALLERS, &install_dirs).ok_or_else(|| MariaError::NoInstallDb {
            server: server.clone(),
            looked: match bindir {
                Some(_) => "beside it, in ../bin or in ../scripts".to_string(),
                None => format!("beside it, in ../bin, in ../scripts, on PATH or in {SYSTEM_BIN}"),
            },
        })?;
    Ok(Binaries {
        server,
        install_db,
        version,
        series,
    })
}

/// PATH's directories, then `system` (once).
fn search_path(system: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.retain(|dir| !dir.as_os_str().is_empty());
    if !dirs.iter().any(|dir| dir == Path::new(system)) {
        dirs.push(PathBuf::from(system));
    }
    dirs
}

/// The first of `names` (in order of preference) that is an executable in one of `dirs`.
fn first_program(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|file| is_executable(file))
    })
}

/// What `mariadbd --version` says the server is; a MySQL server is refused.
fn version_of(server: &Path) -> Result<String, MariaError> {
    let failed = |detail: String| MariaError::Version {
        program: server.to_path_buf(),
        detail,
    };
    let text =
        printed_once(&FLAVOR, server, None, &["--no-defaults", "--version"]).map_err(failed)?;
    let version = parse_version(&text)
        .ok_or_else(|| failed(format!("unexpected output {:?}", text.trim())))?;
    if !version.contains("MariaDB") {
        return Err(MariaError::NotMariaDb {
            program: server.to_path_buf(),
            version,
        });
    }
    Ok(version)
}

/// The word after `Ver`: `10.11.19-MariaDB-0+deb12u1` from
/// `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)`.
fn parse_version(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|word| *word == "Ver")?;
    let version = words.next()?;
    version
        .starts_with(|c: char| c.is_ascii_digit())
        .then(|| version.to_string())
}

/// `10.11` from `10.11.19-MariaDB-0+deb12u1`.
fn series_of(version: &str) -> Option<String> {
    let mut parts = version.split(['.', '-']);
    let major = parts.next().filter(|part| is_number(part))?;
    let minor = parts.next().filter(|part| is_number(part))?;
    Some(format!("{major}.{minor}"))
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_servers_words() {
        let debian =
            "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)\n";
        assert_eq!(
            parse_version(debian).as_deref(),
            Some("10.11.19-MariaDB-0+deb12u1")
        );
        let mysql =
            "/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)";
        assert_eq!(parse_version(mysql).as_deref(), Some("8.0.36"));
        assert_eq!(parse_version("mariadbd Ver"), None);
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn the_series_is_major_and_minor() {
        assert_eq!(
            series_of("10.11.19-MariaDB-0+deb12u1").as_deref(),
            Some("10.11")
        );
        assert_eq!(series_of("11.4.2-MariaDB").as_deref(), Some("11.4"));
        assert_eq!(series_of("11-MariaDB"), None);
        assert_eq!(series_of("x.y"), None);
    }

    #[test]
    fn the_first_name_wins_over_the_first_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        for (dir, name) in [(&first, "mysqld"), (&second, "mariadbd")] {
            fs::create_dir(dir).unwrap();
            let file = dir.join(name);
            fs::write(&file, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        fs::write(first.join("mariadbd"), "not executable").unwrap();
        assert_eq!(
            first_program(SERVERS, &[first.clone(), second.clone()]),
            Some(second.join("mariadbd"))
        );
        assert_eq!(first_program(INSTALLERS, &[first, second]), None);
    }
}
