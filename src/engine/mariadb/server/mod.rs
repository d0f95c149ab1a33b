//! A throwaway MariaDB server started from the installed binaries, on a private Unix socket.
//!
//! Data directories are made once by `mariadb-install-db` and kept in the cache the PostgreSQL
//! clusters use, in slots of their own (`engine/cache/`): `<cache>/mariadb-<major.minor>/slot-<N>/`,
//! which holds
//!
//! - `lock`: held with an exclusive `flock` for as long as a [`MariaServer`] uses the slot;
//! - `data/`: the data directory, used in place by each run (made in `data.tmp/` and renamed,
//!   so it is whole or absent);
//! - `run/`: the server's socket `mariadbd.sock`, its pid file and its temporary files, private
//!   to the server's user (the server listens on no TCP port);
//! - `install.log`: what the last `mariadb-install-db` of the slot printed;
//! - `manifest`: what `mariadb-install-db` wrote, to tell damage by (`health.rs`);
//! - `data.damaged/`: a damaged data directory on its way out (removed at once).
//!
//! A slot whose data directory fails the checks of `health.rs`, or whose server will not start,
//! is set aside and initialised again by the run that holds its lock, which then tells the user
//! what was wrong ([`MariaServer::notice`]).
//!
//! The server is a child of this process in its own process group, so a Ctrl-C at the terminal
//! reaches only us and we stop it ourselves; if we are killed outright, the kernel sends it
//! SIGTERM (the parent-death signal) and it stops at once. A server that outlived a run anyway
//! is found through its pid file and stopped by the next run that takes its slot.
//!
//! As root, the server and `mariadb-install-db` run as the `mysql` user, or else `nobody`, and
//! own their slot. Connections need no password: the server skips its grant tables, so any user
//! name logs in with every privilege.

pub(in crate::engine::mariadb) mod binaries;
mod health;
mod install;
pub(in crate::engine::mariadb) mod process;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

pub use process::LOCK_WAIT_TIMEOUT;

use crate::engine::cache::process::Server;
use crate::engine::cache::slot::{
    cache_root, private_dir, server_user, set_aside, take_slot, Owner, TakenSlot,
};
use crate::engine::cache::CacheError;
use binaries::Binaries;
use install::{install_once, is_installed, manifest, FINISHED};
use process::{socket_path, stop_orphan, FLAVOR, RUN_DIR};

/// A failure to find, start or stop a throwaway MariaDB server; each is one line.
#[derive(Debug, thiserror::Error)]
pub enum MariaError {
    #[error(
        "no MariaDB server (mariadbd or mysqld) {looked}: install it (apt-get install \
         mariadb-server) or point --mariadb-bindir at its directory"
    )]
    NoServer { looked: String },
    #[error(
        "the MariaDB server {} has no mariadb-install-db or mysql_install_db {looked}: install \
         the whole server (apt-get install mariadb-server) or point --mariadb-bindir at a \
         complete installation",
        .server.display()
    )]
    NoInstallDb { server: PathBuf, looked: String },
    #[error(
        "{} is MySQL {version}, not MariaDB: the throwaway server needs MariaDB's binaries \
         (apt-get install mariadb-server); pass --url to use a MySQL server",
        .program.display()
    )]
    NotMariaDb { program: PathBuf, version: String },
    #[error("cannot tell the version of {}: {detail}", .program.display())]
    Version { program: PathBuf, detail: String },
    #[error(
        "mariadb-install-db failed for {} ({status}): {reason} (its output is in {})",
        .dir.display(),
        .log.display()
    )]
    InstallDb {
        dir: PathBuf,
        status: String,
        reason: String,
        log: PathBuf,
    },
    /// The cache, the slot or the server process, which every engine's throwaway shares.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// No Galera provider (`libgalera_smm.so`) where it is looked for.
    #[error(
        "no Galera provider (libgalera_smm.so) in {looked}: install it (apt-get install \
         galera-4)"
    )]
    NoGalera { looked: String },
    /// A Galera node that would not start, or did not join its cluster in time.
    #[error("Galera node {node} of {nodes}: {reason}")]
    GaleraNode {
        node: usize,
        nodes: usize,
        reason: String,
    },
    /// A cluster of a size the throwaway cannot be.
    #[error("a throwaway Galera cluster has {min} to {max} nodes, not {nodes}")]
    GaleraSize {
        nodes: usize,
        min: usize,
        max: usize,
    },
    /// The cluster's template, bootstrapped once, that did not stop as a template must.
    #[error("the Galera template in {} {reason}", .dir.display())]
    GaleraTemplate { dir: PathBuf, reason: String },
}

/// A running throwaway server and the slot it holds.
pub struct MariaServer {
    /// Stopped by `stop`, or else when dropped (Server's own `Drop`).
    server: Server,
    slot: usize,
    slot_dir: PathBuf,
    socket: PathBuf,
    version: String,
    /// What starting had to repair in the slot, one line for the user.
    notice: Option<String>,
    /// Held until the MariaServer is dropped, after the server has stopped.
    _lock: Flock<File>,
}

impl fmt::Debug for MariaServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MariaServer")
            .field("slot", &self.slot)
            .field("slot_dir", &self.slot_dir)
            .field("version", &self.version)
            .field("pid", &self.pid())
            .finish()
    }
}

impl MariaServer {
    /// Starts a server from the binaries in `bindir`, or else those found on PATH or in
    /// /usr/sbin, in the tool's cache (`ANOMALIES_CACHE_DIR`; as root `/var/cache/anomalies`;
    /// else `$XDG_CACHE_HOME/anomalies` or `~/.cache/anomalies`); blocks until it accepts
    /// connections. Call it from a blocking thread (`spawn_blocking`), as `Cluster::start` is.
    pub fn start(bindir: Option<&Path>) -> Result<MariaServer, MariaError> {
        let binaries = binaries::find(bindir)?;
        let root = cache_root(&FLAVOR)?;
        start_with(&binaries, &root)
    }

    /// [`MariaServer::start`] with the cache at `cache_root` instead of the tool's.
    pub fn start_in(bindir: Option<&Path>, cache_root: &Path) -> Result<MariaServer, MariaError> {
        let binaries = binaries::find(bindir)?;
        let root =
            std::path::absolute(cache_root).map_err(crate::engine::cache::io_error(format!(
                "cannot resolve the cache directory {}",
                cache_root.display()
            )))?;
        start_with(&binaries, &root)
    }

    /// The server's Unix socket: connect to it with any user name and no password.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's version as `SELECT VERSION()` says it, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// What starting had to repair in the cache (a damaged slot initialised again, a stale pid
    /// file removed), as one line for the user starting `notice: `; `None` when nothing was
    /// wrong.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The server's process id (always known while the MariaServer lives).
    pub fn pid(&self) -> Option<u32> {
        Some(self.server.child.id())
    }

    /// The cache slot the server runs in.
    pub fn slot_dir(&self) -> &Path {
        &self.slot_dir
    }

    /// Stops the server (SIGTERM, a fast shutdown, then wait for it to exit) and releases the
    /// slot.
    pub fn stop(mut self) -> Result<(), MariaError> {
        Ok(self.server.stop()?)
    }
}

fn start_with(binaries: &Binaries, root: &Path) -> Result<MariaServer, MariaError> {
    let owner = server_user(&FLAVOR)?;
    let engine_dir = root.join(format!("mariadb-{}", binaries.series));
    let TakenSlot {
        number: slot,
        dir: slot_dir,
        lock,
        fresh,
        note,
    } = take_slot(&FLAVOR, &engine_dir, socket_path, owner.as_ref())?;
    let mut notes: Vec<String> = note.into_iter().collect();
    let healer = Healer {
        binaries,
        slot_dir: &slot_dir,
        owner: owner.as_ref(),
    };
    // Before the data directory: mariadb-install-db's server keeps its temporary files there.
    private_dir(&slot_dir.join(RUN_DIR), owner.as_ref())?;
    healer.prepare(fresh, &mut notes)?;
    let server = healer.launch(&mut notes)?;
    Ok(MariaServer {
        server,
        slot,
        socket: socket_path(&slot_dir),
        slot_dir,
        version: binaries.version.clone(),
        notice: (!notes.is_empty()).then(|| format!("notice: {}", notes.join("; "))),
        _lock: lock,
    })
}

/// Makes a held slot's data directory whole before and after its server's first try: one
/// that fails the checks, or whose server will not start, is set aside and initialised again,
/// once. Only ever used on a slot whose lock this run holds.
pub(in crate::engine::mariadb) struct Healer<'a> {
    pub(in crate::engine::mariadb) binaries: &'a Binaries,
    pub(in crate::engine::mariadb) slot_dir: &'a Path,
    pub(in crate::engine::mariadb) owner: Option<&'a Owner>,
}

impl Healer<'_> {
    /// Initialises the slot if it has no data directory, or heals it if the checks fail. A
    /// slot this run has just made is initialised without a note.
    pub(in crate::engine::mariadb) fn prepare(
        &self,
        fresh: bool,
        notes: &mut Vec<String>,
    ) -> Result<(), MariaError> {
        if fresh {
            return install_once(self.binaries, self.slot_dir, self.owner);
        }
        let data_dir = self.slot_dir.join("data");
        let wrong = match health::damage(&data_dir, None) {
            Some(wrong) => Some(wrong),
            None if !is_installed(self.slot_dir) => Some(format!("{FINISHED} is missing")),
            None => match manifest(self.slot_dir, self.owner) {
                Ok(manifest) => health::damage(&data_dir, Some(&manifest)),
                Err(err) => Some(format!("its manifest cannot be read ({err})")),
            },
        };
        match wrong {
            Some(wrong) => self.heal(&wrong, notes),
            None => Ok(()),
        }
    }

    /// Starts the server; if it will not start, heals the slot and starts it once more.
    fn launch(&self, notes: &mut Vec<String>) -> Result<Server, MariaError> {
        let server = &self.binaries.server;
        notes.extend(stop_orphan(self.slot_dir)?);
        match process::launch(server, self.slot_dir, self.owner) {
            Err(CacheError::StartFailed { reason, .. }) => {
                self.heal(&format!("its server would not start: {reason}"), notes)?;
                stop_orphan(self.slot_dir)?;
                Ok(process::launch(server, self.slot_dir, self.owner)?)
            }
            launched => Ok(launched?),
        }
    }

    pub(in crate::engine::mariadb) fn heal(
        &self,
        wrong: &str,
        notes: &mut Vec<String>,
    ) -> Result<(), MariaError> {
        set_aside(self.slot_dir)?;
        install_once(self.binaries, self.slot_dir, self.owner)?;
        notes.push(format!(
            "the cached MariaDB data directory in {} was damaged ({wrong}), so it was set aside \
             and initialised again",
            self.slot_dir.display()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
