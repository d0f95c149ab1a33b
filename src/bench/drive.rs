//! The workers of one cell, running flat out on their connections until the time is up: each
//! payment (or job) is one of the strategy's transactions, retried as the strategy says.
//! Everything runs on the command's one thread; the server does the work.

use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Barrier};

use super::stats::Tally;
use super::strategy::{fill, ReadWrite, Shape};
use super::workload::MAX_AMOUNT;
use crate::engine::bench::{RedisLock, Worker};
use crate::engine::EngineError;
use crate::timeline::{ErrorKind, ResultSet, StepResult};

/// When a cell's warm-up ends and when its time is up.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub measured_from: Instant,
    pub until: Instant,
}

impl Clock {
    fn up(&self) -> bool {
        Instant::now() >= self.until
    }

    fn counts(&self, started: Instant) -> bool {
        started >= self.measured_from && Instant::now() <= self.until
    }
}

/// How one attempt ended.
enum Attempt {
    Committed,
    Refused,
    /// Retry: the database refused (its kind), or the write was stale.
    Retry(&'static str),
    /// The queue is empty.
    Drained,
}

/// What a worker draws its payments from: a seeded generator of its own.
pub struct Draw {
    rng: fastrand::Rng,
    hot: u64,
}

impl Draw {
    pub fn new(seed: u64, worker: usize, hot: u64) -> Draw {
        let seed = seed ^ (worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Draw {
            rng: fastrand::Rng::with_seed(seed),
            hot: hot.max(1),
        }
    }

    /// An account and a signed amount (never zero).
    fn payment(&mut self) -> (i64, i64) {
        let account = self.rng.u64(1..=self.hot) as i64;
        let amount = self.rng.i64(1..=MAX_AMOUNT);
        (account, if self.rng.bool() { amount } else { -amount })
    }
}

/// Runs every worker of a cell until the clock is up; the tallies merged. `meet` is the test
/// hook: each worker makes one transaction, held between its unlocked read and its write until
/// every worker has read.
pub async fn drive(
    workers: Vec<Worker>,
    mut locks: Vec<RedisLock>,
    shape: &Shape,
    clock: Clock,
    mut draws: Vec<Draw>,
    meet: bool,
) -> Result<Tally, EngineError> {
    let meet = meet.then(|| Rc::new(Barrier::new(draws.len())));
    let tallies =
        match shape {
            Shape::Partitioned(owner) => partitioned(workers, owner, clock, draws).await?,
            _ => {
                let mut locks = locks
                    .iter_mut()
                    .map(Some)
                    .chain(std::iter::repeat_with(|| None));
                let loops = workers.iter().zip(draws.iter_mut()).enumerate().map(
                    |(index, (worker, draw))| {
                        let lock = locks.next().flatten();
                        work(worker, lock, shape, clock, draw, index, meet.clone())
                    },
                );
                futures_util::future::try_join_all(loops.collect::<Vec<_>>()).await?
            }
        };
    let mut total = Tally::default();
    for tally in tallies {
        total.merge(tally);
    }
    Ok(total)
}

async fn work(
    worker: &Worker,
    mut lock: Option<&mut RedisLock>,
    shape: &Shape,
    clock: Clock,
    draw: &mut Draw,
    index: usize,
    mut meet: Option<Rc<Barrier>>,
) -> Result<Tally, EngineError> {
    let mut tally = Tally::default();
    // Under the test hook each worker makes one payment (or claims one job), and stops.
    let once = meet.is_some();
    let mut made = 0;
    while !(clock.up() || once && made > 0) {
        made += 1;
        let (account, amount) = draw.payment();
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let attempt = match shape {
                Shape::OneShot { sql } => one_shot(worker, sql, account, amount).await?,
                Shape::RedisLock(rw) => {
                    let Some(lock) = lock.as_deref_mut() else {
                        return Err(EngineError::Setup(
                            "redis-lock without a lock client".into(),
                        ));
                    };
                    redis_locked(worker, lock, rw, account, amount).await?
                }
                Shape::ReadWrite(rw) | Shape::Partitioned(rw) => {
                    let meet = if rw.unlocked_read { meet.take() } else { None };
                    read_write(worker, rw, account, amount, meet).await?
                }
                Shape::Claim {
                    claim,
                    finish,
                    abort,
                } => {
                    let me = index as i64 + 1;
                    let sql = (claim.as_str(), finish.as_str(), abort.as_deref());
                    claim_job(worker, sql, me, meet.take()).await?
                }
            };
            match attempt {
                Attempt::Committed => {
                    if clock.counts(started) {
                        tally.commit(attempts, started.elapsed());
                    }
                    break;
                }
                Attempt::Refused => {
                    if clock.counts(started) {
                        tally.refused += 1;
                    }
                    break;
                }
                Attempt::Drained => return Ok(tally),
                Attempt::Retry(kind) => {
                    if clock.counts(started) {
                        tally.abort(kind);
                    }
                    if clock.up() {
                        tally.gave_up += 1;
                        break;
                    }
                }
            }
        }
    }
    Ok(tally)
}

/// How long a worker's Redis lock lasts: far longer than a payment takes, so that only a worker
/// stalled that long (which the invariants would show) outlives it.
const LEASE_MS: u64 = 5_000;
/// How long a worker refused the lock waits before it asks again, as a lock client backs off.
const RETRY_AFTER: Duration = Duration::from_millis(1);

/// One attempt under a Redis lock: refused while another worker holds the account's lock.
async fn redis_locked(
    worker: &Worker,
    lock: &mut RedisLock,
    rw: &ReadWrite,
    account: i64,
    amount: i64,
) -> Result<Attempt, EngineError> {
    let name = account.to_string();
    if !lock.acquire(&name, LEASE_MS).await? {
        tokio::time::sleep(RETRY_AFTER).await;
        return Ok(Attempt::Retry("lock-held"));
    }
    let attempt = read_write(worker, rw, account, amount, None).await;
    lock.release(&name).await?;
    attempt
}

/// The answer a transaction's round trip got: rows, or a failure the strategy handles.
enum Reply {
    Rows(ResultSet),
    Command,
    Failed(ErrorKind),
}

async fn send(worker: &Worker, sql: &str) -> Result<Reply, EngineError> {
    match worker.execute(sql).await? {
        StepResult::Rows(rows) => Ok(Reply::Rows(rows)),
        StepResult::Command { .. } => Ok(Reply::Command),
        StepResult::Failed(e) if e.kind.is_mechanism() => Ok(Reply::Failed(e.kind)),
        StepResult::Failed(e) => Err(EngineError::Setup(format!(
            "a bench statement failed ({}): {}; the statement: {sql}",
            e.code, e.message
        ))),
        // A database connection answers no Redis reply.
        StepResult::Reply(reply) => Ok(Reply::Rows(reply.rows())),
    }
}

/// A failed attempt: ends what it opened, and says what to do next.
async fn failed(
    worker: &Worker,
    kind: ErrorKind,
    abort: Option<&str>,
) -> Result<Attempt, EngineError> {
    let _ = worker.execute(abort.unwrap_or("ROLLBACK")).await?;
    Ok(match kind {
        ErrorKind::Constraint => Attempt::Refused,
        ErrorKind::SerializationFailure => Attempt::Retry("serialization-failure"),
        ErrorKind::Deadlock => Attempt::Retry("deadlock"),
        ErrorKind::LockNotAvailable => Attempt::Retry("lock-not-available"),
        ErrorKind::Busy => Attempt::Retry("busy"),
        _ => Attempt::Retry("locked"),
    })
}

/// The first value of the first row, as a number.
fn number(rows: &ResultSet, column: usize) -> Option<i64> {
    let text = rows.rows.first()?.get(column)?.as_deref()?;
    text.split('.').next()?.parse().ok()
}

fn done(worker_sql: &str, rows: &ResultSet) -> Result<bool, EngineError> {
    number(rows, 0).map(|n| n > 0).ok_or_else(|| {
        EngineError::Setup(format!("a bench statement answered no count: {worker_sql}"))
    })
}

async fn one_shot(
    worker: &Worker,
    sql: &str,
    account: i64,
    amount: i64,
) -> Result<Attempt, EngineError> {
    let sql = fill(sql, &[("a", account), ("d", amount)]);
    match send(worker, &sql).await? {
        Reply::Rows(rows) if done(&sql, &rows)? => Ok(Attempt::Committed),
        Reply::Rows(_) => Ok(Attempt::Refused),
        Reply::Command => Err(EngineError::Setup(format!("no count from {sql}"))),
        Reply::Failed(kind) => failed(worker, kind, None).await,
    }
}

async fn read_write(
    worker: &Worker,
    rw: &ReadWrite,
    account: i64,
    amount: i64,
    meet: Option<Rc<Barrier>>,
) -> Result<Attempt, EngineError> {
    let read = fill(&rw.read, &[("a", account)]);
    let rows = match send(worker, &read).await? {
        Reply::Rows(rows) => rows,
        Reply::Command => return Err(EngineError::Setup(format!("no row from {read}"))),
        Reply::Failed(kind) => return failed(worker, kind, rw.abort.as_deref()).await,
    };
    let (Some(balance), Some(limit), Some(version)) =
        (number(&rows, 0), number(&rows, 1), number(&rows, 2))
    else {
        return Err(EngineError::Setup(format!("no account from {read}")));
    };
    if let Some(meet) = meet {
        meet.wait().await;
    }
    let new = balance + amount;
    let abort = rw.abort.as_ref().map(|a| fill(a, &[("a", account)]));
    if new < -limit {
        if let Some(abort) = &abort {
            let _ = worker.execute(abort).await?;
        }
        return Ok(Attempt::Refused);
    }
    let holes = [
        ("a", account),
        ("d", amount),
        ("new", new),
        ("old", balance),
        ("version", version),
    ];
    let write = fill(&rw.write, &holes);
    match send(worker, &write).await? {
        Reply::Rows(rows) if done(&write, &rows)? => Ok(Attempt::Committed),
        Reply::Rows(_) if rw.retry_stale => Ok(Attempt::Retry("stale-write")),
        Reply::Rows(_) | Reply::Command => Err(EngineError::Setup(format!(
            "the write wrote nothing: {write}"
        ))),
        Reply::Failed(kind) => failed(worker, kind, abort.as_deref()).await,
    }
}

async fn claim_job(
    worker: &Worker,
    (claim, finish, abort): (&str, &str, Option<&str>),
    me: i64,
    meet: Option<Rc<Barrier>>,
) -> Result<Attempt, EngineError> {
    let rows = match send(worker, claim).await? {
        Reply::Rows(rows) => rows,
        Reply::Command => return Err(EngineError::Setup(format!("no rows from {claim}"))),
        Reply::Failed(kind) => return failed(worker, kind, abort).await,
    };
    let Some(job) = number(&rows, 0) else {
        if let Some(abort) = abort {
            let _ = worker.execute(abort).await?;
        }
        // Another worker took the last free job between the read and the lock, or none is
        // left: only an empty queue ends the worker.
        let left = send(worker, "SELECT COUNT(*) FROM jobs WHERE state = 0").await?;
        return Ok(match left {
            Reply::Rows(rows) if number(&rows, 0) == Some(0) => Attempt::Drained,
            _ => Attempt::Retry("no-job"),
        });
    };
    if let Some(meet) = meet {
        if abort.is_none() {
            meet.wait().await;
        }
    }
    let finish = fill(finish, &[("job", job), ("w", me)]);
    match send(worker, &finish).await? {
        Reply::Failed(kind) => failed(worker, kind, abort).await,
        _ => Ok(Attempt::Committed),
    }
}

/// A payment sent to its account's owner, and where the owner answers.
type Forwarded = ((i64, i64), oneshot::Sender<Result<bool, String>>);

/// The single writer per key: each owner task has a connection and serves its accounts'
/// payments one at a time; the workers draw payments and forward each to its owner.
async fn partitioned(
    owners: Vec<Worker>,
    rw: &ReadWrite,
    clock: Clock,
    draws: Vec<Draw>,
) -> Result<Vec<Tally>, EngineError> {
    let mut inboxes = Vec::new();
    let mut serving = Vec::new();
    for owner in &owners {
        let (tx, mut rx) = mpsc::unbounded_channel::<Forwarded>();
        inboxes.push(tx);
        serving.push(async move {
            while let Some(((account, amount), reply)) = rx.recv().await {
                let answer = match read_write(owner, rw, account, amount, None).await {
                    Ok(Attempt::Committed) => Ok(true),
                    Ok(Attempt::Refused) => Ok(false),
                    Ok(_) => Err("an owner's write was refused".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(answer);
            }
        });
    }
    let n_owners = inboxes.len() as i64;
    let inboxes = Rc::new(inboxes);
    let senders: Vec<_> = draws
        .into_iter()
        .map(|mut draw| {
            let inboxes = inboxes.clone();
            async move {
                let mut tally = Tally::default();
                while !clock.up() {
                    let payment = draw.payment();
                    let started = Instant::now();
                    let (reply, answer) = oneshot::channel();
                    let owner = ((payment.0 - 1) % n_owners) as usize;
                    let _ = inboxes[owner].send((payment, reply));
                    let answer = answer
                        .await
                        .map_err(|_| EngineError::Setup("an owner stopped".into()))?;
                    let committed = answer.map_err(EngineError::Setup)?;
                    if clock.counts(started) {
                        match committed {
                            true => tally.commit(1, started.elapsed()),
                            false => tally.refused += 1,
                        }
                    }
                }
                Ok::<_, EngineError>(tally)
            }
        })
        .collect();
    let senders = async {
        let tallies = futures_util::future::try_join_all(senders).await;
        // The owners stop once every inbox is closed.
        drop(inboxes);
        tallies
    };
    let (tallies, _) = tokio::join!(senders, futures_util::future::join_all(serving));
    tallies
}

/// How long a cell's workers ran, measured.
pub fn measured(clock: &Clock) -> Duration {
    clock.until.saturating_duration_since(clock.measured_from)
}
