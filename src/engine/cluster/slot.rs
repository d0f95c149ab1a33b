//! The cache of data directories and its slots: where they are, who owns them, how a run takes
//! one, and how `initdb` fills it once.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use nix::unistd::{chown, Gid, Uid, User};

use super::compact::record_size;
use super::health::{failure_reason, manifest_of, MANIFEST};
use super::server::{confine, spawn_lasting};
use super::{io_error, ClusterError, DB_USER};

/// How many servers can run at once from one cache.
pub(super) const SLOTS: usize = 8;
/// The file name of the server's socket in its socket directory.
pub(super) const SOCKET_NAME: &str = ".s.PGSQL.5432";
/// The longest socket path the kernel takes (`sun_path` is 108 bytes with its final NUL).
pub(super) const SOCKET_PATH_MAX: usize = 107;

/// Settings of a new data directory, in its `postgresql.auto.conf` (not on the server's command
/// line, which would refuse them for a directory made with 16 MB segments): keep two WAL segments
/// of 1 MB, the least allowed, rather than up to 80 MB, so the cache stays small.
const WAL_SETTINGS: &str = "min_wal_size = '2MB'\nmax_wal_size = '8MB'\n";

/// The user the server runs as when we are root.
pub(super) struct Owner {
    pub(super) name: String,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
}

/// `None` when not root: then the server runs as we do.
pub(super) fn server_user() -> Result<Option<Owner>, ClusterError> {
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
pub(super) fn cache_root() -> Result<PathBuf, ClusterError> {
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

pub(super) fn check_socket_path(socket_dir: &Path) -> Result<(), ClusterError> {
    let path = socket_dir.join(SOCKET_NAME);
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(ClusterError::SocketPathTooLong { path, len });
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0755, whatever the umask.
pub(super) fn make_dirs(dir: &Path) -> Result<(), ClusterError> {
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
pub(super) fn check_traversable(dir: &Path, owner: &Owner) -> Result<(), ClusterError> {
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
pub(super) fn private_dir(dir: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
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

/// A slot this run holds.
pub(super) struct TakenSlot {
    pub(super) number: usize,
    pub(super) dir: PathBuf,
    pub(super) lock: Flock<File>,
    /// Whether this run made the slot's directory: an empty slot is then no damage.
    pub(super) fresh: bool,
    /// What had to be repaired to take it, for the notice.
    pub(super) note: Option<String>,
}

/// Locks the first free slot.
pub(super) fn take_slot(pg_dir: &Path, owner: Option<&Owner>) -> Result<TakenSlot, ClusterError> {
    for number in 0..SLOTS {
        let slot_dir = pg_dir.join(format!("slot-{number}"));
        let note = replace_non_directory(&slot_dir)?;
        let fresh = !slot_dir.exists();
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
        return Ok(TakenSlot {
            number,
            dir: slot_dir,
            lock,
            fresh,
            note,
        });
    }
    Err(ClusterError::NoFreeSlot {
        dir: pg_dir.to_path_buf(),
    })
}

/// Removes what stands at a slot's path if it is not a directory (a file, a link). Nobody can
/// hold the lock of such a slot, and `remove_file` cannot remove the directory of another run
/// that got there first.
fn replace_non_directory(slot_dir: &Path) -> Result<Option<String>, ClusterError> {
    match fs::symlink_metadata(slot_dir) {
        Ok(meta) if !meta.is_dir() => match fs::remove_file(slot_dir) {
            Ok(()) => Ok(Some(format!(
                "{} was not a directory, so it was replaced",
                slot_dir.display()
            ))),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error(format!("cannot remove {}", slot_dir.display()))(
                err,
            )),
        },
        _ => Ok(None),
    }
}

/// Moves a held slot's data directory out of the way and removes it, so that the next
/// [`initdb_once`] makes it again. The caller holds the slot's lock.
pub(super) fn set_aside(slot_dir: &Path) -> Result<(), ClusterError> {
    let data_dir = slot_dir.join("data");
    let aside = slot_dir.join("data.damaged");
    remove_any(&aside)?;
    if fs::symlink_metadata(&data_dir).is_ok() {
        fs::rename(&data_dir, &aside).map_err(io_error(format!(
            "cannot move {} aside",
            data_dir.display()
        )))?;
    }
    remove_any(&aside)
}

/// The slot's manifest of its configuration files; one is written from the files as they are
/// when a slot made before manifests has none.
pub(super) fn manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<String, ClusterError> {
    let path = slot_dir.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            write_manifest(slot_dir, owner)?;
            fs::read_to_string(&path).map_err(io_error(format!("cannot read {}", path.display())))
        }
        Err(err) => Err(io_error(format!("cannot read {}", path.display()))(err)),
    }
}

fn write_manifest(slot_dir: &Path, owner: Option<&Owner>) -> Result<(), ClusterError> {
    let data_dir = slot_dir.join("data");
    let text = manifest_of(&data_dir).map_err(io_error(format!(
        "cannot read the configuration files in {}",
        data_dir.display()
    )))?;
    let path = slot_dir.join(MANIFEST);
    let tmp = slot_dir.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, text).map_err(io_error(format!("cannot write {}", tmp.display())))?;
    give(&tmp, owner)?;
    fs::rename(&tmp, &path).map_err(io_error(format!("cannot write {}", path.display())))
}

/// Runs initdb into `slot_dir/data` unless a finished data directory is there.
pub(super) fn initdb_once(
    bindir: &Path,
    slot_dir: &Path,
    owner: Option<&Owner>,
) -> Result<(), ClusterError> {
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
            // 1 MB WAL segments, not 16: see WAL_SETTINGS.
            "--wal-segsize=1",
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
        return Err(ClusterError::Initdb {
            dir: tmp_dir,
            status: status.to_string(),
            reason: failure_reason(String::from_utf8_lossy(&output).lines()),
            log: log_path,
        });
    }
    let auto_conf = tmp_dir.join("postgresql.auto.conf");
    OpenOptions::new()
        .append(true)
        .open(&auto_conf)
        .and_then(|mut file| file.write_all(WAL_SETTINGS.as_bytes()))
        .map_err(io_error(format!("cannot write {}", auto_conf.display())))?;
    fs::rename(&tmp_dir, &data_dir).map_err(io_error(format!(
        "cannot rename {} to {}",
        tmp_dir.display(),
        data_dir.display()
    )))?;
    write_manifest(slot_dir, owner)?;
    record_size(slot_dir).map_err(io_error(format!(
        "cannot record the size of {}",
        data_dir.display()
    )))
}

/// Removes a file or a directory tree, if there; a tree made read-only is made writable first.
fn remove_any(path: &Path) -> Result<(), ClusterError> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).or_else(|err| {
            if err.kind() != io::ErrorKind::PermissionDenied {
                return Err(err);
            }
            make_writable(path)?;
            fs::remove_dir_all(path)
        }),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => Err(err),
    };
    result.map_err(io_error(format!("cannot remove {}", path.display())))
}

/// Lets us change every directory under `path` (itself included; links not followed).
fn make_writable(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(meta.mode() | 0o700))?;
    for entry in fs::read_dir(path)? {
        make_writable(&entry?.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from("/").join("x".repeat(100));
        assert!(matches!(
            check_socket_path(&long),
            Err(ClusterError::SocketPathTooLong { .. })
        ));
        assert!(check_socket_path(Path::new("/var/cache/anomalies/pg-15/slot-0/sock")).is_ok());
    }
}
