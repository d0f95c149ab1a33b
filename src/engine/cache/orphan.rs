//! A server that an earlier run of a slot left behind (it was killed before it could stop it):
//! found through the pid file the server writes, and stopped by the next run that takes the
//! slot. That run holds the slot's lock, so no live run owns the server.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::{io_error, CacheError, Flavor, ORPHAN_TIMEOUT};

/// Stops the server named by `pid_file` (its first line is the pid) if it is the server of
/// `data_dir`, with [`Flavor::quit_signal`], then removes the pid file and the `stale` files
/// (its socket and such). Returns a note when the pid file named a process that is not the
/// slot's server.
pub(crate) fn stop_orphan(
    flavor: &'static Flavor,
    pid_file: &Path,
    data_dir: &Path,
    stale: &[PathBuf],
) -> Result<Option<String>, CacheError> {
    let text = match fs::read_to_string(pid_file) {
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
    let mut note = None;
    if let Some(pid) = pid {
        if !is_server_of(pid, data_dir) {
            note = Some(format!(
                "{} named pid {pid}, which is not its server, so it was removed",
                pid_file.display()
            ));
        } else {
            let signal = flavor.quit_signal;
            match kill(pid, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => {
                    return Err(CacheError::Signal {
                        flavor,
                        signal,
                        pid: pid.as_raw(),
                        errno,
                    })
                }
            }
            // The one place that polls: a rare recovery, with nothing to wait on but the pid.
            let deadline = Instant::now() + ORPHAN_TIMEOUT;
            while is_server_of(pid, data_dir) {
                if Instant::now() >= deadline {
                    return Err(CacheError::Orphan {
                        flavor,
                        pid: pid.as_raw(),
                        signal,
                    });
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    for stale in std::iter::once(pid_file).chain(stale.iter().map(PathBuf::as_path)) {
        match fs::remove_file(stale) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(format!("cannot remove {}", stale.display()))(err)),
        }
    }
    Ok(note)
}

/// Whether `pid` is a live process working in `data_dir` (PostgreSQL's postmaster and MariaDB's
/// server both change into their data directory), so that a recycled pid of some other process
/// is never signalled. Without /proc a live pid is taken at its word.
fn is_server_of(pid: Pid, data_dir: &Path) -> bool {
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
