//! Finding the installed server binaries, and their major version.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::server::FLAVOR;
use super::ClusterError;
use crate::engine::cache::is_executable;
use crate::engine::cache::printed::printed_once;

/// Where the server binaries are: first `postgres` on PATH (its directory, if initdb is beside
/// it), then `pg_config --bindir`, then the highest-numbered /usr/lib/postgresql/*/bin that
/// contains both `postgres` and `initdb`.
pub fn find_bindir() -> Option<PathBuf> {
    bindir_on_path()
        .or_else(bindir_from_pg_config)
        .or_else(|| highest_bindir_under(Path::new("/usr/lib/postgresql")))
}

/// The directory of the first `postgres` on PATH, or of the file it links to, that has `initdb`
/// beside it.
fn bindir_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let postgres = std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("postgres"))
        .find(|file| is_executable(file))?;
    let dir = postgres.parent()?;
    if has_server(dir) {
        return Some(dir.to_path_buf());
    }
    let real = fs::canonicalize(&postgres).ok()?;
    let real_dir = real.parent()?;
    has_server(real_dir).then(|| real_dir.to_path_buf())
}

/// A program of the server's beside `postgres` in `bindir`, or beside the file `postgres`
/// links to (a PATH directory may link only the server and initdb).
pub(super) fn program(bindir: &Path, name: &str) -> PathBuf {
    let beside = bindir.join(name);
    if is_executable(&beside) {
        return beside;
    }
    fs::canonicalize(bindir.join("postgres"))
        .ok()
        .and_then(|real| Some(real.parent()?.join(name)))
        .filter(|file| is_executable(file))
        .unwrap_or(beside)
}

fn bindir_from_pg_config() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (dir.is_absolute() && has_server(&dir)).then_some(dir)
}

/// The `<version>/bin` under `root` with the highest version that has the server binaries.
fn highest_bindir_under(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// Whether `dir` holds the server binaries a cluster needs (`postgres` and `initdb`).
pub fn has_server(dir: &Path) -> bool {
    is_executable(&dir.join("postgres")) && is_executable(&dir.join("initdb"))
}

/// The major version `postgres --version` prints: 15 for "postgres (PostgreSQL) 15.4 (...)".
pub(super) fn major_version_of(postgres: &Path) -> Result<u32, ClusterError> {
    let failed = |detail: String| ClusterError::Version {
        program: postgres.to_path_buf(),
        detail,
    };
    let text = printed_once(&FLAVOR, postgres, None, &["--version"]).map_err(failed)?;
    parse_major(&text).ok_or_else(|| failed(format!("unexpected output {:?}", text.trim())))
}

fn parse_major(text: &str) -> Option<u32> {
    let version = text
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("nonsense"), None);
    }
}
