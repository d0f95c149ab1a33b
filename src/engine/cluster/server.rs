//! The server process: how it is started and confined, its log, how it is stopped, and how a
//! server left by an earlier run is found and stopped.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::health::failure_reason;
use super::slot::{Owner, SOCKET_NAME};
use super::{io_error, ClusterError};

/// What the server logs once it accepts connections.
const READY: &str = "database system is ready to accept connections";
/// Log lines kept in memory, and shown in an error.
const LOG_KEEP: usize = 50;
pub(super) const LOG_SHOW: usize = 20;
/// A server that neither starts nor fails in this time is stopped and reported.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(120);
/// After a fast shutdown request this long, an immediate one; after that, SIGKILL.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server left by an earlier run gets to exit after SIGQUIT.
pub(super) const ORPHAN_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's settings: fast and disposable rather than durable.
const SETTINGS: &[&str] = &[
    "listen_addresses=",
    "port=5432",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "deadlock_timeout=50ms",
    // A scenario may have 200 sessions; each run adds a control connection, the engine one.
    "max_connections=250",
    "shared_buffers=16MB",
    "lc_messages=C",
    "log_min_error_statement=panic",
    "log_checkpoints=off",
    "unix_socket_permissions=0700",
];

/// A running postmaster, our child, and the thread that reads its log (stderr).
pub(super) struct Server {
    pub(super) child: Child,
    drain: Option<JoinHandle<()>>,
    /// In a Mutex only so that a Cluster is Sync.
    events: Mutex<Receiver<Event>>,
    log: Log,
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

impl Server {
    /// Spawns the server and waits for it to accept connections.
    pub(super) fn launch(
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
                let reason = failure_reason(lock_log(&server.log).iter().map(String::as_str));
                Err(ClusterError::StartFailed { status, reason })
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
    pub(super) fn stop(&mut self) -> Result<(), ClusterError> {
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

    pub(super) fn join_drain(&mut self) {
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
pub(super) fn format_log<'a>(what: &str, lines: impl Iterator<Item = &'a str>) -> String {
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

/// Stops a server that an earlier run of this slot left behind (it was killed before it could
/// stop it), and removes its stale lock files. We hold the slot's lock, so no live run owns it.
/// Returns a note when `postmaster.pid` named a process that is not the slot's server.
pub(super) fn stop_orphan(
    data_dir: &Path,
    socket_dir: &Path,
) -> Result<Option<String>, ClusterError> {
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
    let mut note = None;
    if let Some(pid) = pid {
        if !is_postmaster_of(pid, data_dir) {
            note = Some(format!(
                "{} named pid {pid}, which is not its server, so it was removed",
                pid_file.display()
            ));
        } else {
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
    Ok(note)
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
pub(super) fn confine(command: &mut Command, dir: &Path, owner: Option<&Owner>, deathsig: Signal) {
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
pub(super) fn spawn_lasting(command: Command) -> io::Result<Child> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tails_are_indented_lines() {
        assert_eq!(format_log("its log", std::iter::empty()), "");
        assert_eq!(
            format_log("its log", ["a", "b"].into_iter()),
            "; last lines of its log:\n    a\n    b"
        );
    }
}
