//! Starting a server's programs (the server, its initialisation tool) so that they die with
//! us: confined to their slot and user, in their own process group, with a parent-death signal
//! armed from a thread that lasts as long as the process.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Sender};
use std::sync::OnceLock;
use std::thread;

use nix::sys::signal::Signal;

use super::slot::Owner;

/// Sets up a server program's process: its directory and user, its own process group (so a
/// terminal's Ctrl-C reaches only us), and `deathsig` when this process dies.
pub(crate) fn confine(command: &mut Command, dir: &Path, owner: Option<&Owner>, deathsig: Signal) {
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
pub(crate) fn spawn_lasting(command: Command) -> io::Result<Child> {
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
