//! What every throwaway server the tool starts shares, whatever its engine: a cache of
//! lockable slots that keep initialised data directories, owned by an unprivileged user when
//! run as root (`slot.rs`); the server as a child process whose log is read for readiness,
//! which dies with us and is stopped on every exit path (`process.rs`, `spawn.rs`); and the
//! server a killed run left in a slot, stopped by the next run that takes it (`orphan.rs`); a
//! program's version, asked once per build of it (`printed.rs`).
//!
//! An engine says what differs in a [`Flavor`]: its name in messages, the users it may run as,
//! what it logs when ready, how it is stopped, how to read why it would not start.

pub(crate) mod orphan;
pub(crate) mod printed;
pub(crate) mod process;
pub(crate) mod slot;
pub(crate) mod spawn;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

/// How many servers of one engine can run at once from one cache.
pub(crate) const SLOTS: usize = 8;
/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its final NUL).
pub(crate) const SOCKET_PATH_MAX: usize = 107;
/// A server that neither starts nor fails in this time is stopped and reported.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server left by an earlier run gets to exit after its signal.
pub(crate) const ORPHAN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the shared code needs to know of one engine's throwaway server.
#[derive(Debug)]
pub struct Flavor {
    /// The engine's name in messages: `PostgreSQL`, `MariaDB`.
    pub(crate) engine: &'static str,
    /// What the throwaway is called in messages: `throwaway PostgreSQL cluster`.
    pub(crate) throwaway: &'static str,
    /// The users to run the server as when we are root, the first that exists and is not root.
    pub(crate) users: &'static [&'static str],
    /// What the server logs once it accepts connections.
    pub(crate) ready: &'static str,
    /// The signal that asks for a fast shutdown.
    pub(crate) stop_signal: Signal,
    /// The signal that asks for an immediate shutdown (after a failure, or a fast shutdown
    /// that takes too long; also what a server left by an earlier run gets).
    pub(crate) quit_signal: Signal,
    /// Why a server would not start, from its log's lines, on one line.
    pub(crate) failure_reason: fn(&[&str]) -> String,
    /// The server logs to its standard output rather than its standard error (Redis: it
    /// cannot reopen an inherited pipe as `/dev/stderr` once it runs as another user).
    pub(crate) logs_to_stdout: bool,
}

/// A failure of the shared machinery, worded for the engine whose server it is.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "cannot find a cache directory for the {}: set ANOMALIES_CACHE_DIR or HOME",
        .flavor.throwaway
    )]
    NoCacheDir { flavor: &'static Flavor },
    #[error(
        "running as root, and there is neither {} user to run the {} server as (it refuses to \
         run as root)",
        user_choices(.flavor),
        .flavor.engine
    )]
    NoServerUser { flavor: &'static Flavor },
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error(
        "the {} socket path {} would be {len} bytes, over the {SOCKET_PATH_MAX} bytes Unix \
         sockets allow: set ANOMALIES_CACHE_DIR to a shorter directory",
        .flavor.engine,
        .path.display()
    )]
    SocketPathTooLong {
        flavor: &'static Flavor,
        path: PathBuf,
        len: usize,
    },
    #[error(
        "the {} server runs as user {user}, who cannot enter {}: make it traversable (chmod \
         o+x) or set ANOMALIES_CACHE_DIR to a directory that is",
        .flavor.engine,
        .dir.display()
    )]
    NotTraversable {
        flavor: &'static Flavor,
        user: String,
        dir: PathBuf,
    },
    #[error(
        "all {SLOTS} {} slots under {} are in use by other runs",
        .flavor.throwaway,
        .dir.display()
    )]
    NoFreeSlot {
        flavor: &'static Flavor,
        dir: PathBuf,
    },
    #[error(
        "a {} server left running by an earlier run (pid {pid}) did not exit within {} s of \
         {signal}",
        .flavor.engine,
        ORPHAN_TIMEOUT.as_secs()
    )]
    Orphan {
        flavor: &'static Flavor,
        pid: i32,
        signal: Signal,
    },
    #[error(
        "the {} server exited before accepting connections ({status}): {reason}",
        .flavor.engine
    )]
    StartFailed {
        flavor: &'static Flavor,
        status: String,
        /// Why, from its log, on one line ([`Flavor::failure_reason`]).
        reason: String,
    },
    #[error(
        "the {} server did not accept connections within {} s{log}",
        .flavor.engine,
        START_TIMEOUT.as_secs()
    )]
    StartTimeout {
        flavor: &'static Flavor,
        log: String,
    },
    #[error("cannot send {signal} to the {} server (pid {pid}): {errno}", .flavor.engine)]
    Signal {
        flavor: &'static Flavor,
        signal: Signal,
        pid: i32,
        errno: Errno,
    },
    #[error("the {} server {what}{log}", .flavor.engine)]
    Stop {
        flavor: &'static Flavor,
        what: String,
        log: String,
    },
}

/// "a `postgres` nor a `nobody`": the users a flavor may run as, for "neither … user".
fn user_choices(flavor: &Flavor) -> String {
    let named: Vec<String> = flavor
        .users
        .iter()
        .map(|user| format!("a `{user}`"))
        .collect();
    named.join(" nor ")
}

/// The length and the 64-bit FNV-1a hash of `bytes`: stable across builds, unlike std's hasher.
/// Manifests of the files an initialisation wrote keep these.
pub(crate) fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}:{hash:016x}", bytes.len())
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> CacheError {
    let what = what.into();
    move |err| CacheError::Io { what, err }
}

/// Whether `file` is a file someone may execute: a server program found where it is looked for.
pub(crate) fn is_executable(file: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(file).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// What `command` (a server program asked for its version) printed on its standard output, or
/// why it printed nothing to go by: it would not run, or it failed, with what it said.
pub(crate) fn printed(mut command: std::process::Command) -> Result<String, String> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| err.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{}: {}", output.status, stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_contents_apart() {
        assert_eq!(fingerprint(b""), "0:cbf29ce484222325");
        assert_ne!(fingerprint(b"ab"), fingerprint(b"ba"));
    }
}
