//! Helpers the cache-damage tests share (PostgreSQL's `cache.rs`, MariaDB's `mariadb_heal.rs`):
//! finding an engine's cache directory, copying a slot, and the ways to damage a file.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

/// The cache's directory of one engine: `pg-<major>`, `mariadb-<major.minor>`.
pub fn engine_dir(cache: &Path, prefix: &str) -> PathBuf {
    fs::read_dir(cache)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("the cache has a {prefix}… directory"))
}

/// Copies `from` into `to` with its owners and modes (a slot is the server user's when we are
/// root).
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

pub fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}

pub fn truncate(path: &Path, len: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

pub fn remove(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    let removed = match meta.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    };
    removed.unwrap_or_else(|err| panic!("remove {}: {err}", path.display()));
}

/// Removes everything in `dir`, and keeps it.
pub fn empty(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        remove(&entry.unwrap().path());
    }
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// As root, gives `path` (mode 0600) to root, so the server's user cannot read it; otherwise
/// takes every permission away, which is what the server sees of a foreign file.
pub fn make_foreign(path: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::chown(path, Some(0), Some(0)).unwrap();
        chmod(path, 0o600);
    } else {
        chmod(path, 0o000);
    }
}

/// The pid of a process that has exited.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("true runs");
    let pid = child.id();
    child.wait().expect("true exits");
    pid
}

/// Cases run on this many threads at once.
const WORKERS: usize = 3;

/// Runs `heals` on every case, `WORKERS` at a time (each case works on its own copy of
/// `template`); the failures, each after its case's name.
pub fn heal_each<D: Sync>(
    template: &Path,
    cases: &[D],
    name: fn(&D) -> &str,
    heals: fn(&Path, &D) -> Result<(), String>,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(index) else {
                    break;
                };
                if let Err(failure) = heals(template, case) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {failure}", name(case)));
                }
            });
        }
    });
    failures.into_inner().unwrap()
}
