//! A running server: our child, whose log (its standard error) a thread reads, which tells when
//! it is ready and when it has exited; stopped by a fast shutdown that escalates, and by `Drop`.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::spawn::spawn_lasting;
use super::{io_error, CacheError, Flavor, START_TIMEOUT};

/// Log lines kept in memory, and shown in an error.
const LOG_KEEP: usize = 50;
pub(crate) const LOG_SHOW: usize = 20;
/// After a fast shutdown request this long, an immediate one; after that, SIGKILL.
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(30);
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server, our child, and the thread that reads its log (stderr, or stdout).
pub(crate) struct Server {
    pub(crate) child: Child,
    flavor: &'static Flavor,
    drain: Option<JoinHandle<()>>,
    /// In a Mutex only so that a server is Sync.
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
    /// Spawns `command` (`program`, already confined) with its stderr piped to the log reader,
    /// and waits for it to log that it is ready ([`Flavor::ready`]).
    pub(crate) fn launch(
        flavor: &'static Flavor,
        program: &Path,
        mut command: Command,
    ) -> Result<Server, CacheError> {
        if flavor.logs_to_stdout {
            command.stdout(Stdio::piped()).stderr(Stdio::null());
        } else {
            command.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let mut child = spawn_lasting(command)
            .map_err(io_error(format!("cannot run {}", program.display())))?;
        let log = Log::default();
        let (events, incoming) = mpsc::channel();
        let stream: Option<Box<dyn Read + Send>> = if flavor.logs_to_stdout {
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn Read + Send>)
        } else {
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn Read + Send>)
        };
        let drain = match stream {
            Some(stderr) => {
                let log = Arc::clone(&log);
                thread::Builder::new()
                    .name("server-log".into())
                    .spawn(move || drain_log(stderr, flavor.ready, &log, &events))
            }
            None => Err(io::Error::other("its standard error is not a pipe")),
        };
        let mut server = Server {
            child,
            flavor,
            drain: None,
            events: Mutex::new(incoming),
            log,
        };
        match drain {
            Ok(drain) => server.drain = Some(drain),
            Err(err) => {
                // Dropping `server` stops it.
                return Err(io_error(format!(
                    "cannot read the {} server's log",
                    flavor.engine
                ))(err));
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
                let lines = lock_log(&server.log);
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                let reason = (flavor.failure_reason)(&lines);
                Err(CacheError::StartFailed {
                    flavor,
                    status,
                    reason,
                })
            }
            None => {
                let log = server.log_tail();
                server.kill_now();
                Err(CacheError::StartTimeout { flavor, log })
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
    fn signal(&mut self, signal: Signal) -> Result<(), CacheError> {
        if let Ok(Some(_)) = self.child.try_wait() {
            return Ok(());
        }
        let pid = self.child.id() as i32;
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(CacheError::Signal {
                flavor: self.flavor,
                signal,
                pid,
                errno,
            }),
        }
    }

    /// Fast shutdown ([`Flavor::stop_signal`]), then wait for the server to exit. One that has
    /// not after [`FAST_STOP_TIMEOUT`] gets an immediate shutdown ([`Flavor::quit_signal`]),
    /// then SIGKILL.
    pub(crate) fn stop(&mut self) -> Result<(), CacheError> {
        let flavor = self.flavor;
        if let Ok(Some(status)) = self.child.try_wait() {
            self.join_drain();
            return Err(CacheError::Stop {
                flavor,
                what: format!("had already exited ({status})"),
                log: self.log_tail(),
            });
        }
        if let Err(err) = self.signal(flavor.stop_signal) {
            self.kill_now();
            return Err(err);
        }
        let mut forced = None;
        if !self.wait_closed(FAST_STOP_TIMEOUT) {
            forced = Some(format!(
                "did not stop within {} s of a fast shutdown and was shut down immediately",
                FAST_STOP_TIMEOUT.as_secs()
            ));
            let _ = self.signal(flavor.quit_signal);
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
        let status: ExitStatus = status.map_err(io_error(format!(
            "cannot wait for the {} server",
            flavor.engine
        )))?;
        if let Some(what) = forced {
            return Err(CacheError::Stop {
                flavor,
                what,
                log: self.log_tail(),
            });
        }
        if !status.success() {
            return Err(CacheError::Stop {
                flavor,
                what: format!("exited with {status} on shutdown"),
                log: self.log_tail(),
            });
        }
        Ok(())
    }

    /// Immediate shutdown, and wait for it; for failures, where its state matters no more.
    fn kill_now(&mut self) {
        let _ = self.signal(self.flavor.quit_signal);
        if !self.wait_closed(IMMEDIATE_STOP_TIMEOUT) {
            let _ = self.signal(Signal::SIGKILL);
        }
        let _ = self.child.wait();
        self.join_drain();
    }

    pub(crate) fn join_drain(&mut self) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
    }

    /// Why the server's log says it is unwell, on one line ([`Flavor::failure_reason`] over
    /// the lines kept): for a server that started but will not do what it should.
    pub(crate) fn log_reason(&self) -> String {
        let log = lock_log(&self.log);
        let lines: Vec<&str> = log.iter().map(String::as_str).collect();
        (self.flavor.failure_reason)(&lines)
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = lock_log(&self.log);
        let skip = log.len().saturating_sub(LOG_SHOW);
        format_log("its log", log.iter().skip(skip).map(String::as_str))
    }
}

impl Drop for Server {
    /// Stops a server that is still running (its owner panicked, or dropped it without
    /// [`Server::stop`]), as `stop` does: a fast shutdown that escalates.
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.stop();
        }
        self.join_drain();
    }
}

/// Reads the server's log line by line: keeps the last lines, tells when the server is ready
/// (the first line that contains `ready`), and when the log closes. Reading on after readiness
/// keeps the pipe from filling up, which would block the server.
fn drain_log(stderr: Box<dyn Read + Send>, ready_marker: &str, log: &Log, events: &Sender<Event>) {
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
        let is_ready = !ready && text.contains(ready_marker);
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

/// The lines of a log without a line that says why (`pick`) that tell why a server would not
/// start.
const REASON_LINES: usize = 3;

/// Why a server would not start, on one line: the first non-blank log line `pick` finds a
/// reason in (the part of it it returns), else the log's last few lines.
pub(crate) fn failure_line<'a>(
    lines: impl Iterator<Item = &'a str>,
    pick: impl Fn(&'a str) -> Option<&'a str>,
) -> String {
    let lines: Vec<&str> = lines.filter(|line| !line.trim().is_empty()).collect();
    let text = match lines.iter().find_map(|line| pick(line)) {
        Some(line) => line.to_string(),
        None => lines[lines.len().saturating_sub(REASON_LINES)..].join(" "),
    };
    match text.split_whitespace().collect::<Vec<_>>().join(" ") {
        text if text.is_empty() => "it exited without a word".to_string(),
        text => text,
    }
}

/// `"; last lines of <what>:"` and the lines, indented, one a line; nothing without lines.
pub(crate) fn format_log<'a>(what: &str, lines: impl Iterator<Item = &'a str>) -> String {
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

    #[test]
    fn log_tails_are_indented_lines() {
        assert_eq!(format_log("its log", std::iter::empty()), "");
        assert_eq!(
            format_log("its log", ["a", "b"].into_iter()),
            "; last lines of its log:\n    a\n    b"
        );
    }
}
