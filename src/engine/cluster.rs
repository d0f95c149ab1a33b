//! A throwaway PostgreSQL server started from the installed server binaries.
//!
//! Data directories are made once by `initdb` and kept in a cache, in one of a few slots so that
//! runs at the same time each have their own: `<cache>/pg-<major>/slot-<N>/`, which holds
//!
//! - `lock`: held with an exclusive `flock` for as long as a [`Cluster`] uses the slot;
//! - `data/`: the data directory (made in `data.tmp/` and renamed, so it is whole or absent);
//! - `sock/`: the private directory of the server's Unix socket (the server listens on no TCP
//!   port);
//! - `initdb.log`: what the last `initdb` of the slot printed.
//!
//! The server is a child of this process in its own process group, so a Ctrl-C at the terminal
//! reaches only us and we stop it ourselves; if we are killed outright, the kernel sends it
//! SIGQUIT (the parent-death signal) and it stops at once. A server that outlived a run anyway is
//! found through `postmaster.pid` and stopped by the next run that takes its slot.
//!
//! PostgreSQL refuses to run as root: as root, the server and `initdb` run as the `postgres`
//! user, or else `nobody`, and own their slot.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Gid, Pid, Uid, User};

/// How many servers can run at once from one cache.
const SLOTS: usize = 8;
/// The superuser that `initdb` makes; all connections log in as it.
const DB_USER: &str = "anomalies";
const DB_NAME: &str = "postgres";
const PORT: u16 = 5432;
/// The file name of the server's socket in its socket directory.
const SOCKET_NAME: &str = ".s.PGSQL.5432";
/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its final NUL).
const SOCKET_PATH_MAX: usize = 107;
/// What the server logs once it accepts connections.
const READY: &str = "database system is ready to accept connections";
/// Log lines kept in memory, and shown in an error.
const LOG_KEEP: usize = 50;
const LOG_SHOW: usize = 20;
/// A server that neither starts nor fails in this time is stopped and reported.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// After a fast shutdown request this long, an immediate one; after that, SIGKILL.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server left by an earlier run gets to exit after SIGQUIT.
const ORPHAN_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's settings: fast and disposable rather than durable.
const SETTINGS: &[&str] = &[
    "listen_addresses=",
    "port=5432",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "deadlock_timeout=50ms",
    "max_connections=50",
    "shared_buffers=16MB",
    "lc_messages=C",
    "log_min_error_statement=panic",
    "log_checkpoints=off",
    "unix_socket_permissions=0700",
];

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

fn has_server(dir: &Path) -> bool {
    is_executable(&dir.join("postgres")) && is_executable(&dir.join("initdb"))
}

fn is_executable(file: &Path) -> bool {
    fs::metadata(file).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// A failure to start or stop a throwaway server.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot find a cache directory for the throwaway PostgreSQL cluster: set \
         ANOMALIES_CACHE_DIR or HOME"
    )]
    NoCacheDir,
    #[error(
        "running as root, and there is neither a `postgres` nor a `nobody` user to run the \
         PostgreSQL server as (it refuses to run as root)"
    )]
    NoServerUser,
    #[error("{what}: {err}")]
    Io { what: String, err: io::Error },
    #[error("cannot tell the version of {}: {detail}", .program.display())]
    Version { program: PathBuf, detail: String },
    #[error(
        "the PostgreSQL socket path {} would be {len} bytes, over the {SOCKET_PATH_MAX} bytes \
         Unix sockets allow: set ANOMALIES_CACHE_DIR to a shorter directory",
        .path.display()
    )]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error(
        "the PostgreSQL server runs as user {user}, who cannot enter {}: make it traversable \
         (chmod o+x) or set ANOMALIES_CACHE_DIR to a directory that is",
        .dir.display()
    )]
    NotTraversable { user: String, dir: PathBuf },
    #[error("all {SLOTS} throwaway PostgreSQL cluster slots under {} are in use by other runs", .dir.display())]
    NoFreeSlot { dir: PathBuf },
    #[error("initdb failed for {} ({status}){output}", .dir.display())]
    Initdb {
        dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "a PostgreSQL server left running by an earlier run (pid {pid}) did not exit within {} s \
         of SIGQUIT",
        ORPHAN_TIMEOUT.as_secs()
    )]
    Orphan { pid: i32 },
    #[error("the PostgreSQL server exited before accepting connections ({status}){log}")]
    StartFailed { status: String, log: String },
    #[error(
        "the PostgreSQL server did not accept connections within {} s{log}",
        START_TIMEOUT.as_secs()
    )]
    StartTimeout { log: String },
    #[error("cannot send {signal} to the PostgreSQL server (pid {pid}): {errno}")]
    Signal {
        signal: Signal,
        pid: i32,
        errno: Errno,
    },
    #[error("the PostgreSQL server {what}{log}")]
    Stop { what: String, log: String },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |err| ClusterError::Io { what, err }
}

/// A running throwaway server and the slot it holds.
pub struct Cluster {
    /// `None` once stopped.
    server: Option<Server>,
    slot: usize,
    slot_dir: PathBuf,
    socket_dir: PathBuf,
    major: u32,
    /// Held until the Cluster is dropped, after the server has stopped.
    _lock: Flock<File>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("slot", &self.slot)
            .field("slot_dir", &self.slot_dir)
            .field("major", &self.major)
            .field("pid", &self.server.as_ref().map(|server| server.child.id()))
            .finish()
    }
}

impl Cluster {
    /// Starts a server; blocks until it accepts connections.
    pub fn start(bindir: &Path) -> Result<Cluster, ClusterError> {
        let postgres = bindir.join("postgres");
        let major = major_version_of(&postgres)?;
        let owner = server_user()?;
        let pg_dir = cache_root()?.join(format!("pg-{major}"));
        check_socket_path(&pg_dir.join("slot-0").join("sock"))?;
        make_dirs(&pg_dir)?;
        if let Some(owner) = &owner {
            check_traversable(&pg_dir, owner)?;
        }
        let (slot, slot_dir, lock) = take_slot(&pg_dir, owner.as_ref())?;
        let data_dir = slot_dir.join("data");
        let socket_dir = slot_dir.join("sock");
        initdb_once(bindir, &slot_dir, owner.as_ref())?;
        private_dir(&socket_dir, owner.as_ref())?;
        stop_orphan(&data_dir, &socket_dir)?;
        let server = Server::launch(&postgres, &slot_dir, &socket_dir, owner.as_ref())?;
        Ok(Cluster {
            server: Some(server),
            slot,
            slot_dir,
            socket_dir,
            major,
            _lock: lock,
        })
    }

    /// Connection settings: host = the private socket directory, port, user = "anomalies",
    /// dbname = "postgres".
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.socket_dir)
            .port(PORT)
            .user(DB_USER)
            .dbname(DB_NAME);
        config
    }

    /// Major version from the binaries, e.g. 15.
    pub fn major_version(&self) -> u32 {
        self.major
    }

    /// Stops the server (fast shutdown: SIGINT to the postmaster, then wait for it to exit) and
    /// releases the slot.
    pub fn stop(mut self) -> Result<(), ClusterError> {
        match self.server.take() {
            Some(mut server) => server.stop(),
            None => Ok(()),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.stop();
        }
    }
}

/// The user the server runs as when we are root.
struct Owner {
    name: String,
    uid: Uid,
    gid: Gid,
}

/// `None` when not root: then the server runs as we do.
fn server_user() -> Result<Option<Owner>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = User::from_name(name) {
            if !user.uid.is_root() {
                return Ok(Some(Owner {
                    name: user.name,
                    uid: user.uid,
                    gid: user.gid,
                }));
            }
        }
    }
    Err(ClusterError::NoServerUser)
}

/// `$ANOMALIES_CACHE_DIR`; as root `/var/cache/anomalies`; else `$XDG_CACHE_HOME/anomalies` or
/// `$HOME/.cache/anomalies`. Always absolute.
fn cache_root() -> Result<PathBuf, ClusterError> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let root = if let Some(dir) = var("ANOMALIES_CACHE_DIR") {
        PathBuf::from(dir)
    } else if Uid::effective().is_root() {
        PathBuf::from("/var/cache/anomalies")
    } else if let Some(dir) = var("XDG_CACHE_HOME") {
        PathBuf::from(dir).join("anomalies")
    } else if let Some(home) = var("HOME") {
        PathBuf::from(home).join(".cache").join("anomalies")
    } else {
        return Err(ClusterError::NoCacheDir);
    };
    std::path::absolute(&root).map_err(io_error(format!(
        "cannot resolve the cache directory {}",
        root.display()
    )))
}

/// The major version `postgres --version` prints: 15 for "postgres (PostgreSQL) 15.4 (...)".
fn major_version_of(postgres: &Path) -> Result<u32, ClusterError> {
    let failed = |detail: String| ClusterError::Version {
        program: postgres.to_path_buf(),
        detail,
    };
    let output = Command::new(postgres)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| failed(err.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{}: {}", output.status, stderr.trim())));
    }
    parse_major(&text).ok_or_else(|| failed(format!("unexpected output {:?}", text.trim())))
}

fn parse_major(text: &str) -> Option<u32> {
    let version = text
        .split_whitespace()
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn check_socket_path(socket_dir: &Path) -> Result<(), ClusterError> {
    let path = socket_dir.join(SOCKET_NAME);
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(ClusterError::SocketPathTooLong { path, len });
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0755, whatever the umask.
fn make_dirs(dir: &Path) -> Result<(), ClusterError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    for path in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o755).create(path) {
            Ok(()) => fs::set_permissions(path, Permissions::from_mode(0o755)).map_err(
                io_error(format!("cannot set the permissions of {}", path.display())),
            )?,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_error(format!("cannot create {}", path.display()))(err)),
        }
    }
    Ok(())
}

/// Whether the server's user can reach `dir`: every directory on the way must let it search.
fn check_traversable(dir: &Path, owner: &Owner) -> Result<(), ClusterError> {
    let real =
        fs::canonicalize(dir).map_err(io_error(format!("cannot resolve {}", dir.display())))?;
    for ancestor in real.ancestors() {
        let meta = fs::metadata(ancestor)
            .map_err(io_error(format!("cannot inspect {}", ancestor.display())))?;
        let bit = if meta.uid() == owner.uid.as_raw() {
            0o100
        } else if meta.gid() == owner.gid.as_raw() {
            0o010
        } else {
            0o001
        };
        if meta.mode() & bit == 0 {
            return Err(ClusterError::NotTraversable {
                user: owner.name.clone(),
                dir: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// A directory only the server's user may use: created if missing, mode 0700, owned by it.
fn private_dir(dir: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(io_error(format!("cannot create {}", dir.display()))(err)),
    }
    fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(io_error(format!(
        "cannot set the permissions of {}",
        dir.display()
    )))?;
    give(dir, owner)
}

/// Makes `path` the server user's (as root).
fn give(path: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
    if let Some(owner) = owner {
        chown(path, Some(owner.uid), Some(owner.gid)).map_err(|errno| ClusterError::Io {
            what: format!("cannot give {} to user {}", path.display(), owner.name),
            err: errno.into(),
        })?;
    }
    Ok(())
}

/// Gives everything under `path` (itself included, links not followed) to the server's user.
fn give_tree(path: &Path, owner: &Owner) -> Result<(), ClusterError> {
    let failed = |err| ClusterError::Io {
        what: format!("cannot give {} to user {}", path.display(), owner.name),
        err,
    };
    std::os::unix::fs::lchown(path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
        .map_err(failed)?;
    let meta = fs::symlink_metadata(path).map_err(failed)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(failed)? {
            give_tree(&entry.map_err(failed)?.path(), owner)?;
        }
    }
    Ok(())
}

/// Locks the first free slot: its number, its directory and the held lock.
fn take_slot(
    pg_dir: &Path,
    owner: Option<&Owner>,
) -> Result<(usize, PathBuf, Flock<File>), ClusterError> {
    for slot in 0..SLOTS {
        let slot_dir = pg_dir.join(format!("slot-{slot}"));
        private_dir(&slot_dir, owner)?;
        let lock_path = slot_dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(format!("cannot open {}", lock_path.display())))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => continue,
            Err((_, errno)) => {
                return Err(ClusterError::Io {
                    what: format!("cannot lock {}", lock_path.display()),
                    err: errno.into(),
                })
            }
        };
        if let Some(owner) = owner {
            // A slot first used under another user (say, a cache shared with a non-root run).
            let data_dir = slot_dir.join("data");
            let foreign = |path: &Path| {
                fs::symlink_metadata(path).is_ok_and(|meta| meta.uid() != owner.uid.as_raw())
            };
            if foreign(&data_dir) || foreign(&lock_path) {
                give_tree(&slot_dir, owner)?;
            }
        }
        return Ok((slot, slot_dir, lock));
    }
    Err(ClusterError::NoFreeSlot {
        dir: pg_dir.to_path_buf(),
    })
}

/// Runs initdb into `slot_dir/data` unless a finished data directory is there.
fn initdb_once(bindir: &Path, slot_dir: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
    let data_dir = slot_dir.join("data");
    if data_dir.join("PG_VERSION").is_file() {
        return Ok(());
    }
    let tmp_dir = slot_dir.join("data.tmp");
    remove_any(&data_dir)?;
    remove_any(&tmp_dir)?;
    let log_path = slot_dir.join("initdb.log");
    let log = File::create(&log_path)
        .map_err(io_error(format!("cannot create {}", log_path.display())))?;
    give(&log_path, owner)?;
    let log_copy = log
        .try_clone()
        .map_err(io_error(format!("cannot reopen {}", log_path.display())))?;
    let initdb = bindir.join("initdb");
    let mut command = Command::new(&initdb);
    command
        .arg("-D")
        .arg(&tmp_dir)
        .args([
            "-U",
            DB_USER,
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        ])
        .args(["-E", "UTF8", "--locale=C"])
        .stdout(log_copy)
        .stderr(log);
    confine(&mut command, slot_dir, owner, Signal::SIGTERM);
    let status = spawn_lasting(command)
        .and_then(|mut child| child.wait())
        .map_err(io_error(format!("cannot run {}", initdb.display())))?;
    if !status.success() {
        let output = fs::read(&log_path).unwrap_or_default();
        let output = String::from_utf8_lossy(&output);
        let lines: Vec<&str> = output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_SHOW)..];
        return Err(ClusterError::Initdb {
            dir: tmp_dir,
            status: status.to_string(),
            output: format_log("its output", tail.iter().copied()),
        });
    }
    fs::rename(&tmp_dir, &data_dir).map_err(io_error(format!(
        "cannot rename {} to {}",
        tmp_dir.display(),
        data_dir.display()
    )))
}

/// Removes a file or a directory tree, if there.
fn remove_any(path: &Path) -> Result<(), ClusterError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => Err(err),
    };
    result.map_err(io_error(format!("cannot remove {}", path.display())))
}

/// Stops a server that an earlier run of this slot left behind (it was killed before it could
/// stop it), and removes its stale lock files. We hold the slot's lock, so no live run owns it.
fn stop_orphan(data_dir: &Path, socket_dir: &Path) -> Result<(), ClusterError> {
    let pid_file = data_dir.join("postmaster.pid");
    let text = match fs::read_to_string(&pid_file) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(io_error(format!("cannot read {}", pid_file.display()))(err)),
    };
    let pid = text
        .lines()
        .next()
        .and_then(|line| line.trim().parse::<i32>().ok())
        .map(i32::abs)
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw);
    if let Some(pid) = pid {
        if is_postmaster_of(pid, data_dir) {
            match kill(pid, Signal::SIGQUIT) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => {
                    return Err(ClusterError::Signal {
                        signal: Signal::SIGQUIT,
                        pid: pid.as_raw(),
                        errno,
                    })
                }
            }
            // The one place that polls: a rare recovery, with nothing to wait on but the pid.
            let deadline = Instant::now() + ORPHAN_TIMEOUT;
            while is_postmaster_of(pid, data_dir) {
                if Instant::now() >= deadline {
                    return Err(ClusterError::Orphan { pid: pid.as_raw() });
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let socket_lock = format!("{SOCKET_NAME}.lock");
    for stale in [
        pid_file,
        socket_dir.join(SOCKET_NAME),
        socket_dir.join(socket_lock),
    ] {
        match fs::remove_file(&stale) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(format!("cannot remove {}", stale.display()))(err)),
        }
    }
    Ok(())
}

/// Whether `pid` is a live process working in `data_dir` (a postmaster changes into its data
/// directory), so that a recycled pid of some other process is never signalled. Without /proc
/// a live pid is taken at its word.
fn is_postmaster_of(pid: Pid, data_dir: &Path) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    if !Path::new("/proc/self/cwd").exists() {
        return true;
    }
    let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
    match (cwd, fs::canonicalize(data_dir)) {
        (Ok(cwd), Ok(data_dir)) => cwd == data_dir,
        // A zombie, or not a process of ours.
        (Err(_), _) => false,
        (Ok(_), Err(_)) => true,
    }
}

/// Sets up a server program's process: its directory and user, its own process group (so a
/// terminal's Ctrl-C reaches only us), and `deathsig` when this process dies.
fn confine(command: &mut Command, dir: &Path, owner: Option<&Owner>, deathsig: Signal) {
    command
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(owner) = owner {
        command.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
    // (prctl, getppid) and does not allocate. std runs it after switching user, which would
    // otherwise clear the parent-death signal.
    unsafe {
        command.pre_exec(move || {
            set_deathsig(deathsig)?;
            // We died before the signal was armed: the kernel will not send it now.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(target_os = "linux")]
fn set_deathsig(signal: Signal) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(signal).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn set_deathsig(_signal: Signal) -> io::Result<()> {
    Ok(())
}

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `command` from a thread that lives as long as the process.
///
/// The kernel sends the parent-death signal when the *thread* that forked the child exits, not
/// the process: a server spawned from, say, a blocking-pool thread would be killed when that
/// thread retires. One lasting thread does all the spawning instead.
fn spawn_lasting(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("anomalies-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .ok()
            .map(|_| requests)
    });
    let Some(spawner) = spawner else {
        let mut command = command;
        return command.spawn();
    };
    let (reply, answer) = mpsc::channel();
    if let Err(mpsc::SendError((mut command, _))) = spawner.send((command, reply)) {
        return command.spawn();
    }
    answer
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the thread that starts processes is gone")))
}

/// What the thread that reads the server's log tells.
enum Event {
    Ready,
    /// The log closed: the server has exited.
    Closed,
}

type Log = Arc<Mutex<VecDeque<String>>>;

fn lock_log(log: &Log) -> MutexGuard<'_, VecDeque<String>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running postmaster, our child, and the thread that reads its log (stderr).
struct Server {
    child: Child,
    drain: Option<JoinHandle<()>>,
    /// In a Mutex only so that a Cluster is Sync.
    events: Mutex<Receiver<Event>>,
    log: Log,
}

impl Server {
    /// Spawns the server and waits for it to accept connections.
    fn launch(
        postgres: &Path,
        slot_dir: &Path,
        socket_dir: &Path,
        owner: Option<&Owner>,
    ) -> Result<Server, ClusterError> {
        let mut command = Command::new(postgres);
        command
            .arg("-D")
            .arg(slot_dir.join("data"))
            .arg("-k")
            .arg(socket_dir);
        for setting in SETTINGS {
            command.arg("-c").arg(setting);
        }
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        confine(&mut command, slot_dir, owner, Signal::SIGQUIT);
        let mut child = spawn_lasting(command)
            .map_err(io_error(format!("cannot run {}", postgres.display())))?;
        let log = Log::default();
        let (events, incoming) = mpsc::channel();
        let drain = match child.stderr.take() {
            Some(stderr) => {
                let log = Arc::clone(&log);
                thread::Builder::new()
                    .name("postgres-log".into())
                    .spawn(move || drain_log(stderr, &log, &events))
            }
            None => Err(io::Error::other("its standard error is not a pipe")),
        };
        let mut server = Server {
            child,
            drain: None,
            events: Mutex::new(incoming),
            log,
        };
        match drain {
            Ok(drain) => server.drain = Some(drain),
            Err(err) => {
                // Dropping `server` stops it.
                return Err(io_error("cannot read the PostgreSQL server's log")(err));
            }
        }
        match server.next_event(START_TIMEOUT) {
            Some(Event::Ready) => Ok(server),
            Some(Event::Closed) => {
                let status = match server.child.wait() {
                    Ok(status) => status.to_string(),
                    Err(err) => format!("cannot learn how: {err}"),
                };
                server.join_drain();
                Err(ClusterError::StartFailed {
                    status,
                    log: server.log_tail(),
                })
            }
            None => {
                let log = server.log_tail();
                server.kill_now();
                Err(ClusterError::StartTimeout { log })
            }
        }
    }

    /// The next event, or `None` after `timeout`. A vanished reader counts as a closed log.
    fn next_event(&self, timeout: Duration) -> Option<Event> {
        let events = self
            .events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match events.recv_timeout(timeout) {
            Ok(event) => Some(event),
            Err(RecvTimeoutError::Disconnected) => Some(Event::Closed),
            Err(RecvTimeoutError::Timeout) => None,
        }
    }

    /// Waits up to `timeout` for the log to close, which it does when the server has exited.
    fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(Event::Closed) => return true,
                Some(Event::Ready) => {}
                None => return false,
            }
        }
    }

    /// Sends `signal` unless the child has already been reaped (its pid may be reused then).
    fn signal(&mut self, signal: Signal) -> Result<(), ClusterError> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        let pid = self.child.id() as i32;
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(ClusterError::Signal { signal, pid, errno }),
        }
    }

    /// Fast shutdown: SIGINT, then wait for the server to exit. One that has not after
    /// [`FAST_STOP_TIMEOUT`] gets an immediate shutdown (SIGQUIT), then SIGKILL.
    fn stop(&mut self) -> Result<(), ClusterError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.join_drain();
            return Err(ClusterError::Stop {
                what: format!("had already exited ({status})"),
                log: self.log_tail(),
            });
        }
        if let Err(err) = self.signal(Signal::SIGINT) {
            self.kill_now();
            return Err(err);
        }
        let mut forced = None;
        if !self.wait_closed(FAST_STOP_TIMEOUT) {
            forced = Some(format!(
                "did not stop within {} s of a fast shutdown and was shut down immediately",
                FAST_STOP_TIMEOUT.as_secs()
            ));
            let _ = self.signal(Signal::SIGQUIT);
            if !self.wait_closed(IMMEDIATE_STOP_TIMEOUT) {
                forced = Some(format!(
                    "did not stop within {} s of a fast shutdown and was killed",
                    FAST_STOP_TIMEOUT.as_secs()
                ));
                let _ = self.signal(Signal::SIGKILL);
            }
        }
        let status = self.child.wait();
        self.join_drain();
        let status: ExitStatus =
            status.map_err(io_error("cannot wait for the PostgreSQL server"))?;
        if let Some(what) = forced {
            return Err(ClusterError::Stop {
                what,
                log: self.log_tail(),
            });
        }
        if !status.success() {
            return Err(ClusterError::Stop {
                what: format!("exited with {status} on shutdown"),
                log: self.log_tail(),
            });
        }
        Ok(())
    }

    /// Immediate shutdown, and wait for it; for failures, where its state matters no more.
    fn kill_now(&mut self) {
        let _ = self.signal(Signal::SIGQUIT);
        if !self.wait_closed(IMMEDIATE_STOP_TIMEOUT) {
            let _ = self.signal(Signal::SIGKILL);
        }
        let _ = self.child.wait();
        self.join_drain();
    }

    fn join_drain(&mut self) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }

    fn log_tail(&self) -> String {
        let log = lock_log(&self.log);
        let skip = log.len().saturating_sub(LOG_SHOW);
        format_log("its log", log.iter().skip(skip).map(String::as_str))
    }
}

impl Drop for Server {
    /// Stops a server that is still running (after a failed start, or when stop was skipped).
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.kill_now();
        }
        self.join_drain();
    }
}

/// Reads the server's log line by line: keeps the last lines, tells when the server is ready,
/// and when the log closes. Reading on after readiness keeps the pipe from filling up, which
/// would block the server.
fn drain_log(stderr: ChildStderr, log: &Log, events: &Sender<Event>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut ready = false;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let is_ready = !ready && text.contains(READY);
        {
            let mut log = lock_log(log);
            if log.len() == LOG_KEEP {
                log.pop_front();
            }
            log.push_back(text);
        }
        if is_ready {
            ready = true;
            let _ = events.send(Event::Ready);
        }
    }
    let _ = events.send(Event::Closed);
}

/// `"; last lines of <what>:"` and the lines, indented, one a line; nothing without lines.
fn format_log<'a>(what: &str, lines: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    if text.is_empty() {
        text
    } else {
        format!("; last lines of {what}:{text}")
    }
}

#[cfg(test)]
mod tests {
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
        Pid::from_raw(cluster.server.as_ref().unwrap().child.id() as i32)
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
        let mut left = Cluster::start(&bindir).unwrap();
        let mut orphan = left.server.take().unwrap();
        // Releases the slot and leaves the server running, as a killed run would.
        drop(left);
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

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from("/").join("x".repeat(100));
        assert!(matches!(
            check_socket_path(&long),
            Err(ClusterError::SocketPathTooLong { .. })
        ));
        assert!(check_socket_path(Path::new("/var/cache/anomalies/pg-15/slot-0/sock")).is_ok());
    }

    #[test]
    fn log_tails_are_indented_lines() {
        assert_eq!(format_log("its log", std::iter::empty()), "");
        assert_eq!(
            format_log("its log", ["a", "b"].into_iter()),
            "; last lines of its log:\n    a\n    b"
        );
    }
}
