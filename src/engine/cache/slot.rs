//! The cache of data directories and its slots: where the cache is, who owns a slot, how a run
//! takes one, and how a damaged data directory is set aside. Each engine keeps its slots in a
//! directory of its own under the cache root (`pg-15/`, `mariadb-10.11/`), and fills a slot's
//! `data/` its own way.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{chown, Gid, Uid, User};

use super::{io_error, CacheError, Flavor, SLOTS, SOCKET_PATH_MAX};

/// The user the server runs as when we are root.
#[derive(Clone)]
pub(crate) struct Owner {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
}

/// `None` when not root: then the server runs as we do.
pub(crate) fn server_user(flavor: &'static Flavor) -> Result<Option<Owner>, CacheError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in flavor.users {
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
    Err(CacheError::NoServerUser { flavor })
}

/// `$ANOMALIES_CACHE_DIR`; as root `/var/cache/anomalies`; else `$XDG_CACHE_HOME/anomalies` or
/// `$HOME/.cache/anomalies`. Always absolute.
pub(crate) fn cache_root(flavor: &'static Flavor) -> Result<PathBuf, CacheError> {
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
        return Err(CacheError::NoCacheDir { flavor });
    };
    std::path::absolute(&root).map_err(io_error(format!(
        "cannot resolve the cache directory {}",
        root.display()
    )))
}

/// Whether a server can listen on a Unix socket at `path`.
pub(crate) fn check_socket_path(flavor: &'static Flavor, path: &Path) -> Result<(), CacheError> {
    let len = path.as_os_str().len();
    if len > SOCKET_PATH_MAX {
        return Err(CacheError::SocketPathTooLong {
            flavor,
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0755, whatever the umask.
pub(crate) fn make_dirs(dir: &Path) -> Result<(), CacheError> {
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
pub(crate) fn check_traversable(
    flavor: &'static Flavor,
    dir: &Path,
    owner: &Owner,
) -> Result<(), CacheError> {
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
            return Err(CacheError::NotTraversable {
                flavor,
                user: owner.name.clone(),
                dir: ancestor.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// A directory only the server's user may use: created if missing, mode 0700, owned by it.
pub(crate) fn private_dir(dir: &Path, owner: Option<&Owner>) -> Result<(), CacheError> {
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
pub(crate) fn give(path: &Path, owner: Option<&Owner>) -> Result<(), CacheError> {
    if let Some(owner) = owner {
        chown(path, Some(owner.uid), Some(owner.gid)).map_err(|errno| CacheError::Io {
            what: format!("cannot give {} to user {}", path.display(), owner.name),
            err: errno.into(),
        })?;
    }
    Ok(())
}

/// Gives everything under `path` (itself included, links not followed) to the server's user.
fn give_tree(path: &Path, owner: &Owner) -> Result<(), CacheError> {
    let failed = |err| CacheError::Io {
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
pub(crate) struct TakenSlot {
    pub(crate) number: usize,
    pub(crate) dir: PathBuf,
    pub(crate) lock: Flock<File>,
    /// Whether this run made the slot's directory: an empty slot is then no damage.
    pub(crate) fresh: bool,
    /// What had to be repaired to take it, for the notice.
    pub(crate) note: Option<String>,
}

/// Locks the first free slot of `engine_dir` (`slot-0/`, `slot-1/`, …), once the engine's
/// directory exists, the server's user can reach it, and the socket a slot's server makes
/// (`socket_in(slot)`) has a path short enough.
pub(crate) fn take_slot(
    flavor: &'static Flavor,
    engine_dir: &Path,
    socket_in: impl Fn(&Path) -> PathBuf,
    owner: Option<&Owner>,
) -> Result<TakenSlot, CacheError> {
    check_socket_path(flavor, &socket_in(&engine_dir.join("slot-0")))?;
    make_dirs(engine_dir)?;
    if let Some(owner) = owner {
        check_traversable(flavor, engine_dir, owner)?;
    }
    for number in 0..SLOTS {
        let slot_dir = engine_dir.join(format!("slot-{number}"));
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
                return Err(CacheError::Io {
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
    Err(CacheError::NoFreeSlot {
        flavor,
        dir: engine_dir.to_path_buf(),
    })
}

/// Removes what stands at a slot's path if it is not a directory (a file, a link). Nobody can
/// hold the lock of such a slot, and `remove_file` cannot remove the directory of another run
/// that got there first.
fn replace_non_directory(slot_dir: &Path) -> Result<Option<String>, CacheError> {
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

/// Where an installer (initdb, mariadb-install-db) writes what it prints: a fresh log file in
/// the slot, owned by the server's user, open for its standard output and error.
pub(crate) struct InstallLog {
    pub(crate) path: PathBuf,
    pub(crate) stdout: File,
    pub(crate) stderr: File,
}

/// Readies a held slot for an installation into `data.tmp/` (renamed to `data/` once whole):
/// neither is left from before, and the log `name` is fresh.
pub(crate) fn prepare_install(
    slot_dir: &Path,
    name: &str,
    owner: Option<&Owner>,
) -> Result<InstallLog, CacheError> {
    remove_any(&slot_dir.join("data"))?;
    remove_any(&slot_dir.join("data.tmp"))?;
    fresh_log(slot_dir, name, owner)
}

/// A fresh log file `name` in a held slot, owned by the server's user, open for a program's
/// standard output and error.
pub(crate) fn fresh_log(
    slot_dir: &Path,
    name: &str,
    owner: Option<&Owner>,
) -> Result<InstallLog, CacheError> {
    let path = slot_dir.join(name);
    let stderr =
        File::create(&path).map_err(io_error(format!("cannot create {}", path.display())))?;
    give(&path, owner)?;
    let stdout = stderr
        .try_clone()
        .map_err(io_error(format!("cannot reopen {}", path.display())))?;
    Ok(InstallLog {
        path,
        stdout,
        stderr,
    })
}

/// Moves a held slot's data directory out of the way and removes it, so that the next
/// initialisation makes it again. The caller holds the slot's lock.
pub(crate) fn set_aside(slot_dir: &Path) -> Result<(), CacheError> {
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

/// Removes a file or a directory tree, if there; a tree made read-only is made writable first.
pub(crate) fn remove_any(path: &Path) -> Result<(), CacheError> {
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

/// The file in a slot that says what its data directory's files should be (each engine decides
/// what it records), written once an initialisation is whole.
pub(crate) const MANIFEST: &str = "manifest";

/// The slot's manifest; one is made with `make` from the files as they are when the slot has
/// none (made before manifests, or the run was killed between initialising and writing it).
pub(crate) fn manifest(
    slot_dir: &Path,
    owner: Option<&Owner>,
    make: impl FnOnce() -> Result<String, CacheError>,
) -> Result<String, CacheError> {
    let path = slot_dir.join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            write_manifest(slot_dir, owner, &make()?)?;
            fs::read_to_string(&path).map_err(io_error(format!("cannot read {}", path.display())))
        }
        Err(err) => Err(io_error(format!("cannot read {}", path.display()))(err)),
    }
}

/// Writes the slot's manifest whole or not at all: a temporary file, given to the server's
/// user, renamed.
pub(crate) fn write_manifest(
    slot_dir: &Path,
    owner: Option<&Owner>,
    text: &str,
) -> Result<(), CacheError> {
    let path = slot_dir.join(MANIFEST);
    let tmp = slot_dir.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, text).map_err(io_error(format!("cannot write {}", tmp.display())))?;
    give(&tmp, owner)?;
    fs::rename(&tmp, &path).map_err(io_error(format!("cannot write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    static FLAVOR: Flavor = Flavor {
        engine: "Test",
        throwaway: "throwaway test server",
        users: &["nobody"],
        ready: "ready",
        stop_signal: nix::sys::signal::Signal::SIGTERM,
        quit_signal: nix::sys::signal::Signal::SIGTERM,
        failure_reason: |_| String::new(),
        logs_to_stdout: false,
    };

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from("/")
            .join("x".repeat(100))
            .join(".s.PGSQL.5432");
        assert!(matches!(
            check_socket_path(&FLAVOR, &long),
            Err(CacheError::SocketPathTooLong { .. })
        ));
        let short = Path::new("/var/cache/anomalies/pg-15/slot-0/sock/.s.PGSQL.5432");
        assert!(check_socket_path(&FLAVOR, short).is_ok());
    }
}
