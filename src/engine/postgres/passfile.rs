//! libpq's other sources of connection settings: the password file (`PGPASSFILE`, else
//! `~/.pgpass`) and the service file (`PGSERVICE` names a section of `PGSERVICEFILE`, else
//! `~/.pg_service.conf`, else `PGSYSCONFDIR/pg_service.conf`), read as libpq reads them, so a
//! password need not be on the command line, where `ps` shows it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio_postgres::Config;

use crate::engine::EngineError;

/// The directories libpq uses for a Unix socket when none is given; a password file's
/// `localhost` also matches a socket there.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// Where the password for a connection is looked up.
pub(super) struct Wanted<'a> {
    /// The host as given: a name, an address, or a socket directory.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password of the first line of the file that matches, libpq's way: fields
/// `host:port:database:user:password`, `*` matches anything, `\:` and `\\` are escapes, `#`
/// starts a comment. A file others can read is refused (libpq ignores it) when it would have
/// given the password, with the reason.
pub(super) fn password(path: &Path, wanted: &Wanted) -> Result<Option<String>, EngineError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    let found = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(fields)
        .find(|fields| matches(fields, wanted))
        .and_then(|mut fields| (fields.len() == 5).then(|| fields.remove(4)));
    if found.is_none() {
        return Ok(None);
    }
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    if mode & 0o077 != 0 {
        return Err(EngineError::Setup(format!(
            "the password file {} can be read by others (mode {:04o}), so libpq and this tool \
             ignore it: chmod 0600 it",
            path.display(),
            mode & 0o7777
        )));
    }
    Ok(found)
}

/// The password file libpq reads: `PGPASSFILE`, else `~/.pgpass`.
pub(super) fn password_file() -> Option<PathBuf> {
    env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")))
}

/// A line's fields, unescaped.
fn fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field at least").push(next);
                }
            }
            // The password is the rest of the line, colons and all.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field at least").push(c),
        }
    }
    fields
}

fn matches(fields: &[String], wanted: &Wanted) -> bool {
    if fields.len() != 5 {
        return false;
    }
    let is = |field: &str, value: &str| field == "*" || field == value;
    let socket_here = DEFAULT_SOCKET_DIRS.contains(&wanted.host);
    (is(&fields[0], wanted.host) || (socket_here && is(&fields[0], "localhost")))
        && is(&fields[1], &wanted.port.to_string())
        && is(&fields[2], wanted.dbname)
        && is(&fields[3], wanted.user)
}

/// The settings of service `name`, as a configuration to fill gaps from, or why not.
pub(super) fn service(name: &str) -> Result<Config, EngineError> {
    let files: Vec<PathBuf> = [
        env("PGSERVICEFILE").map(PathBuf::from),
        env("HOME").map(|home| Path::new(&home).join(".pg_service.conf")),
        Some(
            Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
                .join("pg_service.conf"),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        if let Some(settings) = section(&text, name) {
            return Config::from_str(&settings).map_err(|e| {
                EngineError::Setup(format!(
                    "service `{name}` in {} is not a PostgreSQL connection string: {}",
                    file.display(),
                    std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string())
                ))
            });
        }
    }
    Err(EngineError::Setup(format!(
        "PGSERVICE names service `{name}`, which none of {} defines",
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Section `[name]` of a service file, as a `key=value` connection string.
fn section(text: &str, name: &str) -> Option<String> {
    let mut inside = false;
    let mut found = false;
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
            found |= inside;
            continue;
        }
        if let (true, Some((key, value))) = (inside, line.split_once('=')) {
            let value = value.trim().replace('\\', "\\\\").replace('\'', "\\'");
            settings.push(format!("{}='{value}'", key.trim()));
        }
    }
    found.then(|| settings.join(" "))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted() -> Wanted<'static> {
        Wanted {
            host: "db.example",
            port: 5432,
            dbname: "scratch",
            user: "me",
        }
    }

    fn file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn the_first_matching_line_gives_the_password() {
        let pass = file(
            "# comment\nother:5432:*:me:no\ndb.example:5432:*:me:s\\:e:cret\n*:*:*:*:any\n",
            0o600,
        );
        assert_eq!(
            password(pass.path(), &wanted()).unwrap(),
            Some("s:e:cret".into())
        );
        let mut elsewhere = wanted();
        elsewhere.host = "other";
        elsewhere.port = 5999;
        assert_eq!(
            password(pass.path(), &elsewhere).unwrap(),
            Some("any".into())
        );
    }

    #[test]
    fn localhost_matches_a_socket_in_the_default_directory() {
        let pass = file("localhost:5432:*:me:sock\n", 0o600);
        let mut socket = wanted();
        socket.host = "/var/run/postgresql";
        assert_eq!(password(pass.path(), &socket).unwrap(), Some("sock".into()));
        socket.host = "/somewhere/else";
        assert_eq!(password(pass.path(), &socket).unwrap(), None);
    }

    #[test]
    fn a_file_others_can_read_is_refused_when_it_would_give_the_password() {
        let pass = file("*:*:*:*:secret\n", 0o644);
        let error = password(pass.path(), &wanted()).unwrap_err().to_string();
        assert!(
            error.contains("mode 0644") && error.contains("chmod 0600"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        // With no matching line it is not in the way.
        let pass = file("other:1:*:*:secret\n", 0o644);
        assert_eq!(password(pass.path(), &wanted()).unwrap(), None);
    }

    #[test]
    fn a_service_section_is_a_connection_string() {
        let text = "[other]\nhost=x\n\n[scratch]\nhost = db.example\nport=6543\n\
                    dbname=scratch\nuser=me\n";
        let settings = section(text, "scratch").unwrap();
        let config = Config::from_str(&settings).unwrap();
        assert_eq!(config.get_ports(), [6543]);
        assert_eq!(config.get_dbname(), Some("scratch"));
        assert_eq!(section(text, "missing"), None);
    }
}
