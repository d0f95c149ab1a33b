//! A throwaway PostgreSQL server started from the installed server binaries.
//!
//! Data directories are made once by `initdb` and kept in a cache, in one of a few slots so that
//! runs at the same time each have their own: `<cache>/pg-<major>/slot-<N>/`, which holds
//!
//! - `lock`: held with an exclusive `flock` for as long as a [`Cluster`] uses the slot;
//! - `data/`: the data directory (made in `data.tmp/` and renamed, so it is whole or absent);
//! - `sock/`: the private directory of the server's Unix socket (the server listens on no TCP
//!   port);
//! - `initdb.log`: what the last `initdb` of the slot printed;
//! - `manifest`: fingerprints of the configuration files as initdb left them;
//! - `compacted`: the size of `data/base/` after initdb or the last compaction;
//! - `data.damaged/`: a damaged data directory on its way out (removed at once).
//!
//! A slot whose data directory fails the checks of `health.rs`, or whose server will not
//! start, is set aside and initialised again by the run that holds its lock, which then tells
//! the user what was wrong ([`Cluster::notice`]).
//!
//! The server is a child of this process in its own process group, so a Ctrl-C at the terminal
//! reaches only us and we stop it ourselves; if we are killed outright, the kernel sends it
//! SIGQUIT (the parent-death signal) and it stops at once. A server that outlived a run anyway is
//! found through `postmaster.pid` and stopped by the next run that takes its slot.
//!
//! PostgreSQL refuses to run as root: as root, the server and `initdb` run as the `postgres`
//! user, or else `nobody`, and own their slot.

mod binaries;
mod compact;
mod health;
mod server;
mod slot;
mod standby;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

pub use binaries::{find_bindir, has_server};
pub(crate) use compact::CATALOG_VACUUM;
pub use standby::STANDBY_NAME;

use crate::engine::cache::process::Server;
use crate::engine::cache::slot::{
    cache_root, private_dir, server_user, set_aside, take_slot, Owner, TakenSlot,
};
use crate::engine::cache::CacheError;
use binaries::major_version_of;
use server::{stop_orphan, FLAVOR};
use slot::{initdb_once, manifest, SOCKET_NAME};

/// A failure to start or stop a throwaway server.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot tell the version of {}: {detail}", .program.display())]
    Version { program: PathBuf, detail: String },
    #[error("initdb failed for {} ({status}): {reason} (its output is in {})", .dir.display(), .log.display())]
    Initdb {
        dir: PathBuf,
        status: String,
        reason: String,
        log: PathBuf,
    },
    #[error("pg_basebackup failed to copy the primary for its standby ({status}): {reason} (its output is in {})", .log.display())]
    Basebackup {
        status: String,
        reason: String,
        log: PathBuf,
    },
    /// The cache, the slot or the server process, which every engine's throwaway shares.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// A running throwaway server and the slot it holds.
pub struct Cluster {
    /// Stopped by `stop`, or else when dropped (Server's own `Drop`).
    server: Server,
    slot: usize,
    slot_dir: PathBuf,
    socket_dir: PathBuf,
    major: u32,
    /// What starting had to repair in the slot, one line for the user.
    notice: Option<String>,
    /// A pair's hot standby; stopped after the primary.
    standby: Option<standby::Standby>,
    bindir: PathBuf,
    owner: Option<Owner>,
    /// Held until the Cluster is dropped, after the server has stopped.
    _lock: Flock<File>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("slot", &self.slot)
            .field("slot_dir", &self.slot_dir)
            .field("major", &self.major)
            .field("pid", &self.server.child.id())
            .finish()
    }
}

impl Cluster {
    /// Starts a server; blocks until it accepts connections.
    pub fn start(bindir: &Path) -> Result<Cluster, ClusterError> {
        Cluster::start_with(bindir, false)
    }

    /// Starts a primary and its streaming hot standby, from slots of their own
    /// (`<cache>/pg-<major>-pair/slot-<N>/`, with the standby's copy in `standby/`); blocks
    /// until both accept connections. The standby may still be catching up.
    pub fn start_pair(bindir: &Path) -> Result<Cluster, ClusterError> {
        Cluster::start_with(bindir, true)
    }

    fn start_with(bindir: &Path, pair: bool) -> Result<Cluster, ClusterError> {
        let postgres = bindir.join("postgres");
        let major = major_version_of(&postgres)?;
        let owner = server_user(&FLAVOR)?;
        let family = match pair {
            true => format!("pg-{major}-pair"),
            false => format!("pg-{major}"),
        };
        let pg_dir = cache_root(&FLAVOR)?.join(family);
        let TakenSlot {
            number: slot,
            dir: slot_dir,
            lock,
            fresh,
            note,
        } = take_slot(
            &FLAVOR,
            &pg_dir,
            |slot| slot.join("sock").join(SOCKET_NAME),
            owner.as_ref(),
        )?;
        let mut notes: Vec<String> = note.into_iter().collect();
        let socket_dir = slot_dir.join("sock");
        let healer = Healer {
            bindir,
            slot_dir: &slot_dir,
            major,
            owner: owner.as_ref(),
            pair,
        };
        healer.prepare(fresh, &mut notes)?;
        private_dir(&socket_dir, owner.as_ref())?;
        let server = healer.launch(&postgres, &socket_dir, &mut notes)?;
        let mut cluster = Cluster {
            server,
            slot,
            slot_dir,
            socket_dir,
            major,
            notice: None,
            standby: None,
            bindir: bindir.to_path_buf(),
            owner,
            _lock: lock,
        };
        if pair {
            cluster.start_standby(&mut notes)?;
        }
        cluster.notice = (!notes.is_empty()).then(|| format!("notice: {}", notes.join("; ")));
        Ok(cluster)
    }

    /// Starts the pair's standby, made from the primary if the slot has none; one that will
    /// not start is made again, once.
    fn start_standby(&mut self, notes: &mut Vec<String>) -> Result<(), ClusterError> {
        let postgres = self.bindir.join("postgres");
        let owner = self.owner.as_ref();
        standby::basebackup_once(&self.bindir, &self.slot_dir, owner)?;
        let standby = match standby::launch(&postgres, &self.slot_dir, owner) {
            Err(ClusterError::Cache(CacheError::StartFailed { reason, .. })) => {
                notes.push(format!(
                    "the cached PostgreSQL standby in {} would not start ({reason}), so it was \
                     copied from its primary again",
                    self.slot_dir.display()
                ));
                standby::discard(&self.slot_dir)?;
                standby::basebackup_once(&self.bindir, &self.slot_dir, owner)?;
                standby::launch(&postgres, &self.slot_dir, owner)?
            }
            launched => launched?,
        };
        self.standby = Some(standby);
        Ok(())
    }

    /// Stops the standby, copies the primary again and starts it: for a standby that runs but
    /// does not stream (it fell behind the WAL the primary kept).
    pub fn remake_standby(&mut self) -> Result<(), ClusterError> {
        if let Some(mut standby) = self.standby.take() {
            standby.server.stop()?;
        }
        standby::discard(&self.slot_dir)?;
        self.start_standby(&mut Vec::new())
    }

    /// The standby's connection settings, like [`Cluster::config`]'s; `None` for a single
    /// server.
    pub fn standby_config(&self) -> Option<tokio_postgres::Config> {
        Some(socket_config(&self.standby.as_ref()?.socket_dir))
    }

    /// What starting had to repair in the cache (a damaged slot initialised again, a stale
    /// `postmaster.pid` removed), as one line for the user; `None` when nothing was wrong.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// Connection settings: host = the private socket directory, port, user = "anomalies",
    /// dbname = "postgres".
    pub fn config(&self) -> tokio_postgres::Config {
        socket_config(&self.socket_dir)
    }

    /// Whether the catalogs are due a plain `VACUUM` ([`CATALOG_VACUUM`]) before the server
    /// stops, which keeps the compaction at start rare (`compact.rs`).
    pub fn vacuum_due(&self) -> bool {
        compact::vacuum_due(&self.slot_dir)
    }

    /// Notes that the catalogs were vacuumed, at the slot's size now.
    pub fn vacuumed(&self) {
        // A record that cannot be written only has the next stop vacuum again.
        let _ = compact::record_vacuum(&self.slot_dir);
    }

    /// Major version from the binaries, e.g. 15.
    pub fn major_version(&self) -> u32 {
        self.major
    }

    /// Stops the server (fast shutdown: SIGINT to the postmaster, then wait for it to exit) and
    /// releases the slot.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        // The primary first: its shutdown checkpoint reaches the standby, so both stop clean.
        let primary = self.server.stop();
        let standby = match &mut self.standby {
            Some(standby) => standby.server.stop(),
            None => Ok(()),
        };
        primary?;
        Ok(standby?)
    }
}

/// Makes a held slot's data directory whole before and after its server's first try: one
/// that fails the cheap checks, or whose server will not start, is set aside and initialised
/// again, once. Only ever used on a slot whose lock this run holds.
struct Healer<'a> {
    bindir: &'a Path,
    slot_dir: &'a Path,
    major: u32,
    owner: Option<&'a Owner>,
    /// A pair's primary: its standby is a copy of it, made again whenever it is.
    pair: bool,
}

impl Healer<'_> {
    /// Initialises the slot if it has no data directory, or heals it if the checks fail. A
    /// slot this run has just made is initialised without a note.
    fn prepare(&self, fresh: bool, notes: &mut Vec<String>) -> Result<(), ClusterError> {
        let data_dir = self.slot_dir.join("data");
        if fresh {
            return initdb_once(self.bindir, self.slot_dir, self.owner);
        }
        let manifest = match data_dir.join("PG_VERSION").exists() {
            true => manifest(self.slot_dir, self.owner).ok(),
            false => None,
        };
        match health::damage(&data_dir, self.major, manifest.as_deref()) {
            Some(wrong) => self.heal(&wrong, notes),
            None => Ok(()),
        }
    }

    /// Starts the server; if it will not start, heals the slot and starts it once more.
    fn launch(
        &self,
        postgres: &Path,
        socket_dir: &Path,
        notes: &mut Vec<String>,
    ) -> Result<Server, ClusterError> {
        let data_dir = self.slot_dir.join("data");
        notes.extend(stop_orphan(&data_dir, socket_dir)?);
        let extra = match self.pair {
            true => standby::PRIMARY_SETTINGS,
            false => &[],
        };
        if let Some(compacted) =
            compact::compact_if_grown(postgres, self.slot_dir, self.owner, extra)
        {
            notes.extend(compacted.err());
            // A pair's standby would replay the rewritten catalogs, holding their locks, before
            // a session could log in there: a login once waited past its 5 s in CI. A fresh
            // copy of the compacted primary is quick and certain. (The compaction keeps the
            // pair's `wal_keep_size` all the same: without it, its checkpoint removed the WAL
            // the standby needed, and each such start waited 10 s for it to stream.)
            if self.pair {
                standby::discard(self.slot_dir)?;
            }
        }
        match server::launch(postgres, self.slot_dir, socket_dir, self.owner, extra) {
            Err(ClusterError::Cache(CacheError::StartFailed { reason, .. })) => {
                self.heal(&format!("its server would not start: {reason}"), notes)?;
                stop_orphan(&data_dir, socket_dir)?;
                server::launch(postgres, self.slot_dir, socket_dir, self.owner, extra)
            }
            launched => launched,
        }
    }

    fn heal(&self, wrong: &str, notes: &mut Vec<String>) -> Result<(), ClusterError> {
        set_aside(self.slot_dir)?;
        if self.pair {
            standby::discard(self.slot_dir)?;
        }
        initdb_once(self.bindir, self.slot_dir, self.owner)?;
        notes.push(format!(
            "the cached PostgreSQL cluster in {} was damaged ({wrong}), so it was set aside and \
             initialised again",
            self.slot_dir.display()
        ));
        Ok(())
    }
}

/// A server's connection settings: its private socket directory, the port, the superuser.
fn socket_config(socket_dir: &Path) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(socket_dir)
        .port(PORT)
        .user(DB_USER)
        .dbname(DB_NAME);
    config
}

/// The superuser that `initdb` makes; all connections log in as it.
const DB_USER: &str = "anomalies";
const DB_NAME: &str = "postgres";
const PORT: u16 = 5432;

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |err| ClusterError::Cache(CacheError::Io { what, err })
}

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::{Duration, Instant};

    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    use super::*;

    fn bindir() -> PathBuf {
        find_bindir().expect(
            "PostgreSQL server binaries are not installed (no postgres with initdb on PATH, \
             through pg_config or under /usr/lib/postgresql/*/bin): install them \
             (apt-get install postgresql) to run these tests",
        )
    }

    fn select_one(cluster: &Cluster) -> i32 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = cluster
                .config()
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            let connection = tokio::spawn(connection);
            let row = client.query_one("SELECT 1", &[]).await.unwrap();
            drop(client);
            connection.await.unwrap().unwrap();
            row.get::<_, i32>(0)
        })
    }

    fn pid(cluster: &Cluster) -> Pid {
        Pid::from_raw(cluster.server.child.id() as i32)
    }

    #[test]
    fn starts_answers_and_stops() {
        let cluster = Cluster::start(&bindir()).unwrap();
        assert!(cluster.major_version() >= 10);
        let pid = pid(&cluster);
        assert_eq!(select_one(&cluster), 1);
        cluster.stop().unwrap();
        assert_eq!(
            kill(pid, None),
            Err(Errno::ESRCH),
            "the postmaster still runs"
        );
    }

    #[test]
    fn dropping_a_cluster_stops_its_server() {
        let cluster = Cluster::start(&bindir()).unwrap();
        let pid = pid(&cluster);
        drop(cluster);
        assert_eq!(
            kill(pid, None),
            Err(Errno::ESRCH),
            "the postmaster still runs"
        );
    }

    #[test]
    fn clusters_at_once_get_their_own_slots() {
        let bindir = bindir();
        let first = Cluster::start(&bindir).unwrap();
        let second = Cluster::start(&bindir).unwrap();
        assert_ne!(first.slot, second.slot);
        assert_ne!(first.socket_dir, second.socket_dir);
        assert_eq!(select_one(&first), 1);
        assert_eq!(select_one(&second), 1);
        let pids = [pid(&first), pid(&second)];
        first.stop().unwrap();
        second.stop().unwrap();
        for pid in pids {
            assert_eq!(
                kill(pid, None),
                Err(Errno::ESRCH),
                "a postmaster still runs"
            );
        }
    }

    #[test]
    fn outlives_the_thread_that_started_it() {
        let bindir = bindir();
        let cluster = thread::spawn(move || Cluster::start(&bindir).unwrap())
            .join()
            .unwrap();
        // Time for a parent-death signal to arrive, were it tied to that thread.
        thread::sleep(Duration::from_millis(300));
        assert_eq!(select_one(&cluster), 1);
        cluster.stop().unwrap();
    }

    #[test]
    fn a_server_left_running_is_stopped_by_the_next_run() {
        let bindir = bindir();
        let left = Cluster::start(&bindir).unwrap();
        // Releases the slot and leaves the server running, as a killed run would.
        let Cluster {
            server: mut orphan,
            _lock,
            ..
        } = left;
        drop(_lock);
        let next = Cluster::start(&bindir).unwrap();
        // Whichever run took the slot has stopped the orphan.
        let deadline = Instant::now() + Duration::from_secs(20);
        while orphan.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the orphaned server still runs");
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(select_one(&next), 1);
        next.stop().unwrap();
        orphan.join_drain();
    }

    #[test]
    fn cluster_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Cluster>();
    }
}
