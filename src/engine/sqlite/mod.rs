//! Embedded SQLite through rusqlite: one thread per session, commands over channels.
//!
//! SQLite waits inside its busy handler. Ours tells the runner the moment a step starts to wait,
//! then blocks until the runner says another step finished (retry) or gives up. No timing.

mod bench;
mod session;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OpenFlags};
use tokio::time::Instant;

use session::{busy_handler, spawn_session, Poke, SessionEvent, SqliteSession, TxnState};

use async_trait::async_trait;

use crate::engine::{final_rows, snapshot_sql, Backend, BackendRun, ConnectOptions, Connected};
use crate::engine::{EngineError, EngineInfo, Settled};
use crate::level::{Level, SessionLevel};
use crate::scenario::{display_name, EngineKind, Scenario};
use crate::timeline::{ResultSet, StepResult};

pub struct SqliteEngine {
    pub info: EngineInfo,
    /// Dropped before `_lock` (fields drop in order): the folder goes while it is still ours.
    dir: tempfile::TempDir,
    /// An exclusive `flock` on the folder's lock file for the engine's life: a later run that
    /// can take it knows the owner is gone (killed, say) and removes the folder.
    _lock: Flock<File>,
    runs: AtomicU32,
}

/// Every engine's folder starts so, in the temporary directory.
const DIR_PREFIX: &str = "anomalies-sqlite-";
const LOCK_FILE: &str = "owner.lock";

pub struct SqliteRun {
    path: PathBuf,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    restore: Option<String>,
    sessions: Vec<SqliteSession>,
    /// A read-only connection on a thread of its own, for the final query: outside the
    /// sessions, opened once per run rather than once per order.
    last: SqliteSession,
    /// Each session's transaction state after its last finished step.
    states: Vec<TxnState>,
}

/// Removes the folders of engines whose owner is gone: a folder whose lock file nobody holds
/// (its process was killed, so the kernel released its `flock`). A folder without a lock file
/// is one being made this instant, or not ours: it is left alone. Best effort: what cannot be
/// removed stays for a later run.
fn sweep_left_behind(temp: &Path) {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if !ours || !path.is_dir() {
            continue;
        }
        let Ok(file) = File::open(path.join(LOCK_FILE)) else {
            continue;
        };
        if let Ok(held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = std::fs::remove_dir_all(&path);
            drop(held);
        }
    }
}

impl SqliteEngine {
    pub fn new() -> Result<SqliteEngine, EngineError> {
        sweep_left_behind(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| {
                EngineError::Sqlite(format!("cannot create a temporary directory: {e}"))
            })?;
        let failed =
            |e: String| EngineError::Sqlite(format!("cannot lock {}: {e}", dir.path().display()));
        // Locked under another name, then renamed: a sweeper finds the lock file only once it
        // is held.
        let unnamed = dir.path().join(format!("{LOCK_FILE}.new"));
        let file = File::create(&unnamed).map_err(|e| failed(e.to_string()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| failed(errno.to_string()))?;
        std::fs::rename(&unnamed, dir.path().join(LOCK_FILE)).map_err(|e| failed(e.to_string()))?;
        Ok(SqliteEngine {
            info: EngineInfo {
                name: EngineKind::Sqlite,
                version: rusqlite::version().to_string(),
                detail: "journal wal".to_string(),
                redis: None,
            },
            dir,
            _lock: lock,
            runs: AtomicU32::new(0),
        })
    }

    fn prepare(
        &self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<SqliteRun, EngineError> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.dir.path().join(format!("run-{run}.db"));
        let setup = Connection::open(&path).map_err(sqlite_error)?;
        setup
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0))
            .map_err(sqlite_error)?;
        setup.execute_batch(&scenario.setup).map_err(|e| {
            // Only SQLite's words: its error text goes on with the rest of the batch.
            let message = match &e {
                rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
                other => other.to_string(),
            };
            EngineError::Setup(format!(
                "{}: the setup SQL failed on SQLite: {message}",
                scenario.setup_at
            ))
        })?;
        drop(setup);

        // Dirty reads are real only between connections sharing a cache, with the pragma: when
        // one session reads uncommitted, every session shares the cache, so that it can see
        // what the others have not committed.
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if levels.iter().any(reads_uncommitted) {
            flags |= OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        }
        let mut sessions = Vec::new();
        for (session, level) in scenario.sessions.iter().zip(levels) {
            let connection = Connection::open_with_flags(&path, flags).map_err(sqlite_error)?;
            if reads_uncommitted(level) {
                connection
                    .pragma_update(None, "read_uncommitted", 1)
                    .map_err(sqlite_error)?;
            }
            if level.read_only {
                connection
                    .pragma_update(None, "query_only", 1)
                    .map_err(sqlite_error)?;
            }
            no_sync(&connection)?;
            connection
                .busy_handler(Some(busy_handler))
                .map_err(sqlite_error)?;
            sessions.push(spawn_session(connection, &session.name)?);
        }
        let last = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_error)?;
        let last = spawn_session(last, "final")?;
        let states = vec![TxnState::None; sessions.len()];
        Ok(SqliteRun {
            path,
            restore: None,
            sessions,
            last,
            states,
        })
    }
}

/// Opens the embedded engine (it needs no server, and so no option).
pub(super) fn open(_options: &ConnectOptions) -> Result<Connected, EngineError> {
    Ok((Box::new(SqliteEngine::new()?), None))
}

#[async_trait(?Send)]
impl Backend for SqliteEngine {
    fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// SQLite has two levels: READ UNCOMMITTED (with a shared cache) and SERIALIZABLE.
    fn effective_level(&self, level: Level) -> Level {
        match level {
            Level::ReadUncommitted => Level::ReadUncommitted,
            _ => Level::Serializable,
        }
    }

    fn detail_at(&self, scenario: &Scenario, levels: &[SessionLevel]) -> String {
        detail(scenario, levels)
    }

    async fn prepare(
        &self,
        scenario: &Scenario,
        levels: &[SessionLevel],
    ) -> Result<Box<dyn BackendRun>, EngineError> {
        Ok(Box::new(SqliteEngine::prepare(self, scenario, levels)?))
    }

    async fn close(self: Box<Self>) -> Result<(), EngineError> {
        self.dir
            .close()
            .map_err(|e| EngineError::Sqlite(format!("cannot remove the temporary directory: {e}")))
    }
}

/// The run's file is thrown away at its end: a commit need not wait for the disk. What each
/// session sees of the others' commits is the same with or without the fsync.
fn no_sync(connection: &Connection) -> Result<(), EngineError> {
    connection
        .pragma_update(None, "synchronous", "OFF")
        .map_err(sqlite_error)
}

fn reads_uncommitted(level: &SessionLevel) -> bool {
    level.effective == Level::ReadUncommitted
}

/// What the header adds to the engine's description for a run at `levels`: the shared cache
/// and who reads uncommitted, and who runs with `query_only`.
fn detail(scenario: &Scenario, levels: &[SessionLevel]) -> String {
    let who = |wanted: fn(&SessionLevel) -> bool| -> Option<Vec<String>> {
        let names: Vec<String> = scenario
            .sessions
            .iter()
            .zip(levels)
            .filter(|(_, level)| wanted(level))
            .map(|(session, _)| display_name(&session.name))
            .collect();
        (!names.is_empty()).then_some(names)
    };
    let mut detail = String::new();
    if let Some(names) = who(reads_uncommitted) {
        detail.push_str(", shared cache, PRAGMA read_uncommitted = 1");
        if names.len() < levels.len() {
            detail.push_str(&format!(" for {}", names.join(", ")));
        }
    }
    if let Some(names) = who(|level| level.read_only) {
        detail.push_str(&format!(", PRAGMA query_only = 1 for {}", names.join(", ")));
    }
    detail
}

fn sqlite_error(error: rusqlite::Error) -> EngineError {
    EngineError::Sqlite(error.to_string())
}

#[async_trait(?Send)]
impl BackendRun for SqliteRun {
    fn bench_workers(&mut self) -> Result<Vec<crate::engine::bench::Worker>, EngineError> {
        bench::workers(&self.path, self.sessions.len())
    }

    fn send(&mut self, session: usize, sql: &str) {
        if let Some(commands) = &self.sessions[session].commands {
            // A closed channel means the thread ended; settle reports it.
            let _ = commands.send(sql.to_string());
        }
    }
    async fn settle(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        let event = tokio::time::timeout_at(deadline, self.sessions[session].events.recv()).await;
        match event {
            Err(_) => Ok(Settled::TimedOut),
            Ok(None) => Err(EngineError::Sqlite(
                "a session thread ended unexpectedly".to_string(),
            )),
            Ok(Some(SessionEvent::Waiting)) => {
                self.sessions[session].in_busy_handler = true;
                Ok(Settled::Waiting(self.holders(session)))
            }
            Ok(Some(SessionEvent::Done(result, state))) => {
                self.sessions[session].in_busy_handler = false;
                self.states[session] = state;
                Ok(Settled::Done(result))
            }
        }
    }
    /// Lets a waiting session's busy handler retry, then reports where it stands.
    async fn recheck(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        if self.sessions[session].in_busy_handler {
            self.sessions[session].in_busy_handler = false;
            let _ = self.sessions[session].pokes.send(Poke::Retry);
        }
        self.settle(session, deadline).await
    }
    async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        let s = &mut self.sessions[session];
        s.interrupt.interrupt();
        if s.in_busy_handler {
            s.in_busy_handler = false;
            let _ = s.pokes.send(Poke::GiveUp);
        }
        // The interrupted statement's answer is not a step result.
        self.discard_answer(session).await;
        Ok(())
    }
    async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        if self.states[session] == TxnState::None {
            return Ok(());
        }
        self.send(session, "ROLLBACK");
        self.discard_answer(session).await;
        Ok(())
    }
    async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        let listed = self
            .tool_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
            )
            .await?;
        let StepResult::Rows(set) = listed else {
            return Err(EngineError::Sqlite("no table list".into()));
        };
        let tables: Vec<String> = set.rows.iter().filter_map(|row| row[0].clone()).collect();
        let (save, restore) = snapshot_sql(&tables, '"');
        self.tool_sql(&save).await?;
        self.restore = Some(restore);
        Ok(())
    }
    async fn reset(&mut self) -> Result<(), EngineError> {
        for session in 0..self.sessions.len() {
            self.rollback(session).await?;
        }
        let Some(restore) = self.restore.clone() else {
            return Err(EngineError::Setup(
                "reset before the initial state was saved".into(),
            ));
        };
        self.tool_sql(&restore).await.map(|_| ())
    }
    async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        if let Some(commands) = &self.last.commands {
            let _ = commands.send(sql.to_string());
        }
        let result = match self.last.events.recv().await {
            Some(SessionEvent::Done(result, _)) => result,
            _ => {
                return Err(EngineError::Sqlite(
                    "the final query's thread ended unexpectedly".into(),
                ))
            }
        };
        final_rows(result, |_| String::new())
    }

    async fn finish(self: Box<Self>) -> Result<(), EngineError> {
        let mut this = *self;
        for session in 0..this.sessions.len() {
            this.rollback(session).await?;
        }
        let threads: Vec<JoinHandle<()>> = this
            .sessions
            .iter_mut()
            .chain(std::iter::once(&mut this.last))
            .filter_map(|s| {
                s.commands = None;
                s.thread.take()
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await
        .map_err(|e| EngineError::Sqlite(format!("a session thread panicked: {e}")))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = this.path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    fn breaks_deadlocks(&self) -> bool {
        false
    }

    // SQLite's busy handler waits for the runner's word, and SQLite answers a deadlock with
    // SQLITE_BUSY at once instead of waiting: a wait still open now never ends by itself.
    async fn wait_any(
        &mut self,
        _waiting: &[usize],
        _deadline: Instant,
    ) -> Result<Option<(usize, Settled)>, EngineError> {
        Ok(None)
    }
}

impl SqliteRun {
    /// Who holds what `session` waits for: SQLite has one writer at a time, so the sessions in a
    /// write transaction; failing that, those holding a read lock.
    fn holders(&self, session: usize) -> Vec<usize> {
        let with = |wanted: TxnState| -> Vec<usize> {
            (0..self.states.len())
                .filter(|s| *s != session && self.states[*s] == wanted)
                .collect()
        };
        let writers = with(TxnState::Write);
        if writers.is_empty() {
            with(TxnState::Read)
        } else {
            writers
        }
    }
    /// Waits for the answer to what `session` was last sent, giving up any lock wait, and keeps
    /// the transaction state it reports. `None` when the session's thread has ended.
    async fn answer(&mut self, session: usize) -> Option<StepResult> {
        loop {
            match self.sessions[session].events.recv().await? {
                SessionEvent::Done(result, state) => {
                    self.states[session] = state;
                    return Some(result);
                }
                SessionEvent::Waiting => {
                    let _ = self.sessions[session].pokes.send(Poke::GiveUp);
                }
            }
        }
    }
    /// The answer to what `session` was last sent is not a step result: wait for it, drop it.
    async fn discard_answer(&mut self, session: usize) {
        let _ = self.answer(session).await;
    }
    /// Runs SQL of the tool's own on session 0's connection, which must be idle.
    async fn tool_sql(&mut self, sql: &str) -> Result<StepResult, EngineError> {
        self.send(0, sql);
        match self.answer(0).await {
            Some(StepResult::Failed(e)) => {
                Err(EngineError::Sqlite(format!("{}: {}", e.code, e.message)))
            }
            Some(result) => Ok(result),
            None => Err(EngineError::Sqlite(
                "a session thread ended unexpectedly".into(),
            )),
        }
    }
}
