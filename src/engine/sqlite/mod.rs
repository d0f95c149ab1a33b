//! Embedded SQLite through rusqlite: a connection per session, each statement run on the
//! caller's thread.
//!
//! A step whose lock is held waits: SQLite asks the busy handler, ours declines at once, and
//! the step runs again from that statement when the runner says another step finished. No
//! timing.

mod bench;
mod session;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, OpenFlags};
use tokio::time::Instant;

use session::{Progress, Session, TxnState};

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
    /// How the sessions' connections are opened, and each one's level: a reset opens them so
    /// again.
    flags: OpenFlags,
    levels: Vec<SessionLevel>,
    /// `DELETE ...; INSERT ... SELECT` for every table, once the initial state is saved.
    restore: Option<String>,
    sessions: Vec<Session>,
    /// A read-only connection for the final query: outside the sessions, opened once per run
    /// rather than once per order.
    last: Session,
    /// A read-write connection of the tool's own, for saving and restoring the data: a session
    /// may be read-only (`query_only`).
    tool: Session,
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
        let levels: Vec<SessionLevel> = levels
            .iter()
            .take(scenario.sessions.len())
            .copied()
            .collect();
        let sessions = levels
            .iter()
            .map(|level| open_session(&path, flags, level))
            .collect::<Result<Vec<_>, _>>()?;
        let last = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sqlite_error)?;
        let last = Session::new(last).map_err(sqlite_error)?;
        let tool = Connection::open_with_flags(&path, flags - OpenFlags::SQLITE_OPEN_SHARED_CACHE)
            .map_err(sqlite_error)?;
        no_sync(&tool)?;
        let tool = Session::new(tool).map_err(sqlite_error)?;
        let states = vec![TxnState::None; sessions.len()];
        Ok(SqliteRun {
            path,
            flags,
            levels,
            restore: None,
            sessions,
            last,
            tool,
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

/// A session's connection to the run's file at `level`.
fn open_session(
    path: &Path,
    flags: OpenFlags,
    level: &SessionLevel,
) -> Result<Session, EngineError> {
    let connection = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
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
    Session::new(connection).map_err(sqlite_error)
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
        self.sessions[session].send(sql);
    }
    /// Runs the step sent; SQLite never makes it wait past its busy handler's first question.
    async fn settle(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        let progress = self.sessions[session].run(Some(deadline.into_std()));
        self.states[session] = self.sessions[session].state();
        match progress {
            None => Err(EngineError::Sqlite(format!(
                "session {session} was settled with no step sent"
            ))),
            Some(Progress::Waiting) => Ok(Settled::Waiting(self.holders(session))),
            Some(Progress::TimedOut) => Ok(Settled::TimedOut),
            Some(Progress::Done(result)) => Ok(Settled::Done(result)),
        }
    }
    /// Runs a waiting step again from the statement that found its lock held.
    async fn recheck(&mut self, session: usize, deadline: Instant) -> Result<Settled, EngineError> {
        self.settle(session, deadline).await
    }
    /// Gives up the step: a waiting one changed nothing, and one past its deadline was
    /// interrupted already.
    async fn cancel(&mut self, session: usize) -> Result<(), EngineError> {
        self.sessions[session].drop_step();
        Ok(())
    }
    async fn rollback(&mut self, session: usize) -> Result<(), EngineError> {
        if self.states[session] == TxnState::None {
            return Ok(());
        }
        // A failed ROLLBACK (no transaction left) is no step's result.
        let _ = self.sessions[session].execute("ROLLBACK");
        self.states[session] = self.sessions[session].state();
        Ok(())
    }
    async fn save_initial_state(&mut self) -> Result<(), EngineError> {
        let listed = self.tool_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        )?;
        let StepResult::Rows(set) = listed else {
            return Err(EngineError::Sqlite("no table list".into()));
        };
        let tables: Vec<String> = set.rows.iter().filter_map(|row| row[0].clone()).collect();
        let (save, restore) = snapshot_sql(&tables, '"');
        self.tool_sql(&save)?;
        self.restore = Some(restore);
        Ok(())
    }
    /// Puts the data back for another order; with `connections` (a session may have left a
    /// PRAGMA, a temporary table, an attached database), every session's connection is opened
    /// afresh first, which ends its transaction.
    async fn reset(&mut self, connections: bool) -> Result<(), EngineError> {
        if connections {
            for (session, level) in self.sessions.iter_mut().zip(&self.levels) {
                *session = open_session(&self.path, self.flags, level)?;
            }
            self.states.fill(TxnState::None);
        }
        for session in 0..self.sessions.len() {
            self.rollback(session).await?;
        }
        let Some(restore) = self.restore.clone() else {
            return Err(EngineError::Setup(
                "reset before the initial state was saved".into(),
            ));
        };
        self.tool_sql(&restore).map(|_| ())
    }
    async fn final_query(&mut self, sql: &str) -> Result<ResultSet, EngineError> {
        final_rows(self.last.execute(sql), |_| String::new())
    }

    async fn finish(self: Box<Self>) -> Result<(), EngineError> {
        let mut this = *self;
        for session in 0..this.sessions.len() {
            this.rollback(session).await?;
        }
        let SqliteRun {
            path,
            sessions,
            last,
            tool,
            ..
        } = this;
        // Closed before their files are removed.
        drop((sessions, last, tool));
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    fn breaks_deadlocks(&self) -> bool {
        false
    }

    // A waiting step runs again only when the runner asks, and SQLite answers a deadlock with
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
    /// Runs SQL of the tool's own on its own connection, while every session is idle.
    fn tool_sql(&mut self, sql: &str) -> Result<StepResult, EngineError> {
        match self.tool.execute(sql) {
            StepResult::Failed(e) => Err(EngineError::Sqlite(format!("{}: {}", e.code, e.message))),
            result => Ok(result),
        }
    }
}
