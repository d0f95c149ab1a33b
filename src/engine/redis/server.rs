//! A throwaway Redis started from the installed `redis-server`, on a private Unix socket with no
//! TCP port and no persistence, in a slot of the shared cache (`engine/cache/`):
//! `<cache>/redis-<major.minor>/slot-<N>/` holds its `lock`, its socket `redis.sock` and its
//! pid file. Redis keeps no data directory, so a slot is only the place its socket lives and
//! the lock that says whose it is.
//!
//! The server is our child in its own process group, dies with us (SIGTERM as the parent-death
//! signal, on which it removes its socket and pid file), and as root runs as the `redis` user,
//! or else `nobody`. One a killed run left behind anyway is found through its pid file and
//! stopped by the next run that takes the slot.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::Flock;
use nix::sys::signal::Signal;

use crate::engine::cache::printed::printed_once;
use crate::engine::cache::process::{failure_line, Server};
use crate::engine::cache::slot::{cache_root, server_user, take_slot, TakenSlot};
use crate::engine::cache::spawn::confine;
use crate::engine::cache::{is_executable, orphan, CacheError, Flavor};

pub(super) static FLAVOR: Flavor = Flavor {
    engine: "Redis",
    throwaway: "throwaway Redis server",
    users: &["redis", "nobody"],
    ready: "ready to accept connections",
    stop_signal: Signal::SIGTERM,
    quit_signal: Signal::SIGKILL,
    failure_reason,
    logs_to_stdout: true,
};

const SOCKET_NAME: &str = "redis.sock";
const PID_NAME: &str = "redis.pid";

/// The server's settings: no TCP port, no persistence, nothing that outlives it.
const SETTINGS: &[&str] = &[
    "--port",
    "0",
    "--save",
    "",
    "--appendonly",
    "no",
    "--unixsocketperm",
    "700",
    "--logfile",
    "",
    "--daemonize",
    "no",
    "--protected-mode",
    "no",
];

/// A failure to find or start the throwaway Redis; each is one line.
#[derive(Debug, thiserror::Error)]
pub enum RedisServerError {
    #[error(
        "this run needs Redis, and there is no redis-server {looked}: install it (apt-get \
         install redis-server, or redis-tools, whose redis-check-rdb is the same program) or \
         pass --redis-url"
    )]
    NoServer { looked: String },
    #[error("cannot tell the version of {}: {detail}", .program.display())]
    Version { program: PathBuf, detail: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The installed server: its path, the name to run it under, its version.
struct Binary {
    path: PathBuf,
    version: String,
}

/// A running throwaway Redis and the slot it holds.
pub(crate) struct RedisServer {
    /// Stopped by `stop`, or else when dropped (Server's own `Drop`).
    server: Server,
    socket: PathBuf,
    notice: Option<String>,
    _lock: Flock<File>,
}

impl RedisServer {
    /// Starts a server and blocks until it accepts connections; call it from a blocking thread.
    pub(crate) fn start() -> Result<RedisServer, RedisServerError> {
        let binary = find()?;
        let owner = server_user(&FLAVOR)?;
        let root = cache_root(&FLAVOR)?;
        let series: String = binary
            .version
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        let engine_dir = root.join(format!("redis-{series}"));
        let TakenSlot {
            dir, lock, note, ..
        } = take_slot(&FLAVOR, &engine_dir, socket_path, owner.as_ref())?;
        let mut notes: Vec<String> = note.into_iter().collect();
        let socket = socket_path(&dir);
        notes.extend(orphan::stop_orphan(
            &FLAVOR,
            &dir.join(PID_NAME),
            &dir,
            std::slice::from_ref(&socket),
        )?);
        let mut command = Command::new(&binary.path);
        // Debian's redis-tools has the server as redis-check-rdb: the program picks its part
        // by the name it is run under.
        command.arg0("redis-server");
        command
            .args(SETTINGS)
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--pidfile")
            .arg(dir.join(PID_NAME))
            .arg("--dir")
            .arg(&dir);
        confine(&mut command, &dir, owner.as_ref(), Signal::SIGTERM);
        let server = Server::launch(&FLAVOR, &binary.path, command)?;
        Ok(RedisServer {
            server,
            socket,
            notice: (!notes.is_empty()).then(|| format!("notice: {}", notes.join("; "))),
            _lock: lock,
        })
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// What starting had to repair in the slot (a server a killed run left), one line.
    pub(crate) fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Stops the server (SIGTERM: it removes its socket and pid file) and releases the slot.
    pub(crate) fn stop(mut self) -> Result<(), CacheError> {
        self.server.stop()
    }
}

fn socket_path(slot_dir: &Path) -> PathBuf {
    slot_dir.join(SOCKET_NAME)
}

/// `redis-server` on PATH or in /usr/bin; else `redis-check-rdb`, the same program (Debian's
/// redis-server package is only a link to it).
fn find() -> Result<Binary, RedisServerError> {
    let mut looked = Vec::new();
    for name in ["redis-server", "redis-check-rdb"] {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        for dir in on_path
            .iter()
            .map(PathBuf::as_path)
            .chain([Path::new("/usr/bin")])
        {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                let version = version(&candidate)?;
                return Ok(Binary {
                    path: candidate,
                    version,
                });
            }
        }
        looked.push(name);
    }
    Err(RedisServerError::NoServer {
        looked: format!("({} on PATH or in /usr/bin)", looked.join(" nor ")),
    })
}

/// `Redis server v=7.0.15 sha=…` → `7.0.15`.
fn version(program: &Path) -> Result<String, RedisServerError> {
    let failed = |detail: String| RedisServerError::Version {
        program: program.to_path_buf(),
        detail,
    };
    let text =
        printed_once(&FLAVOR, program, Some("redis-server"), &["--version"]).map_err(failed)?;
    parse_version(&text).ok_or_else(|| failed(format!("it printed {:?}", text.trim())))
}

fn parse_version(text: &str) -> Option<String> {
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))?;
    version
        .split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| version.to_string())
}

/// Why the server would not start: its last line that says so (`#` lines are warnings, and
/// Redis prints its fatal errors as `*** FATAL CONFIG FILE ERROR` or `# … failed`).
fn failure_reason(lines: &[&str]) -> String {
    failure_line(lines.iter().copied(), |line| {
        (line.contains("FATAL") || line.contains("rror") || line.contains("failed")).then_some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_banner() {
        assert_eq!(
            parse_version("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"),
            Some("7.0.15".to_string())
        );
        assert_eq!(parse_version("redis-check-rdb 7.0.15"), None);
    }

    #[test]
    fn failures_are_the_line_that_says_so() {
        let lines = [
            "1:C 01 Dec 2026 # Redis version=7.0.15",
            "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***",
            "Bad directive or wrong number of arguments",
        ];
        assert_eq!(
            failure_reason(&lines),
            "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***"
        );
    }
}
