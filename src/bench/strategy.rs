//! The strategies, as data: for each engine, the SQL of each round trip and the shape of the
//! transaction that sends it (what the application decides between round trips), or why the
//! engine cannot run it. A new strategy (a `redis-lock`, say) is one more entry in [`ALL`]:
//! its SQL here and, if its lock lives outside the database, one more [`Shape`].
//!
//! Every template's holes: `{a}` the account, `{d}` the signed amount, `{new}` the balance the
//! application computed, `{old}` the balance it read, `{version}` the version it read, `{job}`
//! the claimed job, `{w}` the worker.

use crate::level::Level;
use crate::scenario::EngineKind;

use EngineKind::{Mariadb, Postgres, Sqlite};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Payments on a bank's accounts.
    Payments,
    /// Workers claiming jobs from one table.
    Queue,
}

pub struct Strategy {
    pub name: &'static str,
    pub workload: Workload,
    /// One line for `--help` and the README.
    pub about: &'static str,
    /// How it runs on an engine, or why it cannot.
    pub plan: fn(EngineKind) -> Result<Plan, &'static str>,
}

/// A strategy on one engine.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The level its connections run at.
    pub level: Level,
    /// `CHECK (balance >= -lim)` on the accounts.
    pub check: bool,
    /// SQL its setup adds after the tables (a stored procedure).
    pub setup: String,
    pub shape: Shape,
}

#[derive(Debug, Clone)]
pub enum Shape {
    /// One round trip that answers a row `done`: 1 committed, 0 refused; a constraint that
    /// refuses the write is a refusal too.
    OneShot { sql: String },
    /// Read `balance, lim, version`; the application checks the limit; write. `abort` ends
    /// what the read opened when the payment is refused or fails.
    ReadWrite(ReadWrite),
    /// The single writer per key: accounts hashed onto owners, each a connection that runs
    /// the read-compute-write with no lock; the other workers send it their payments.
    Partitioned(ReadWrite),
    /// A lock per account on Redis, outside the database (`SET NX PX`, retried while another
    /// worker holds it), around the read-compute-write; released only if still the worker's.
    RedisLock(ReadWrite),
    /// Claim a job (a row `id`, or none), then mark it done.
    Claim {
        claim: String,
        finish: String,
        abort: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct ReadWrite {
    pub read: String,
    /// Answers a row `done`: 1 written, 0 stale (someone else wrote first).
    pub write: String,
    pub abort: Option<String>,
    /// A stale write is retried from the read (optimistic, compare-and-swap).
    pub retry_stale: bool,
    /// The read takes no lock, so the test hook may hold workers between read and write.
    pub unlocked_read: bool,
}

/// Every strategy, payments first, in the order tables show them.
pub const ALL: &[Strategy] = &[
    Strategy {
        name: "naive",
        workload: Workload::Payments,
        about: "read, compute in the application, write back: unsafe",
        plan: naive,
    },
    Strategy {
        name: "atomic",
        workload: Workload::Payments,
        about: "one guarded UPDATE … WHERE balance + d >= -lim",
        plan: atomic,
    },
    Strategy {
        name: "for-update",
        workload: Workload::Payments,
        about: "SELECT … FOR UPDATE, then UPDATE (SQLite: BEGIN IMMEDIATE)",
        plan: for_update,
    },
    Strategy {
        name: "optimistic",
        workload: Workload::Payments,
        about: "a version column; a stale write is retried",
        plan: optimistic,
    },
    Strategy {
        name: "compare-and-swap",
        workload: Workload::Payments,
        about: "UPDATE … WHERE balance = <read>; retried when stale",
        plan: compare_and_swap,
    },
    Strategy {
        name: "serializable-retry",
        workload: Workload::Payments,
        about: "read-check-write at SERIALIZABLE, retried on a serialization failure or deadlock",
        plan: serializable,
    },
    Strategy {
        name: "repeatable-read-retry",
        workload: Workload::Payments,
        about:
            "read-check-write at REPEATABLE READ, retried on a serialization failure or deadlock",
        plan: repeatable_read,
    },
    Strategy {
        name: "procedure",
        workload: Workload::Payments,
        about: "one call of a stored procedure that locks, checks and writes",
        plan: procedure,
    },
    Strategy {
        name: "advisory",
        workload: Workload::Payments,
        about: "a lock per account (pg_advisory_xact_lock, GET_LOCK), then read-check-write",
        plan: advisory,
    },
    Strategy {
        name: "redis-lock",
        workload: Workload::Payments,
        about: "a lock per account on Redis (SET NX PX, retried every 1 ms), then read-check-write",
        plan: redis_lock,
    },
    Strategy {
        name: "constraint",
        workload: Workload::Payments,
        about: "CHECK (balance >= -lim) plus an unguarded atomic update",
        plan: constraint,
    },
    Strategy {
        name: "partitioned",
        workload: Workload::Payments,
        about: "a single writer per account: owners without locks, payments forwarded to them",
        plan: partitioned,
    },
    Strategy {
        name: "naive",
        workload: Workload::Queue,
        about: "SELECT a pending job, then UPDATE it: unsafe",
        plan: queue_naive,
    },
    Strategy {
        name: "for-update",
        workload: Workload::Queue,
        about: "SELECT … FOR UPDATE the first pending job (SQLite: BEGIN IMMEDIATE)",
        plan: queue_for_update,
    },
    Strategy {
        name: "skip-locked",
        workload: Workload::Queue,
        about: "SELECT … FOR UPDATE SKIP LOCKED the first pending job",
        plan: queue_skip_locked,
    },
];

/// The strategies of a workload.
pub fn of(workload: Workload) -> impl Iterator<Item = &'static Strategy> {
    ALL.iter().filter(move |s| s.workload == workload)
}

/// The workload that reproduces a built-in scenario's anomaly, where the bench has one: for
/// `anomalies explain`, which points to the cost side of the scenario's fixes.
pub fn workload_of(scenario: &str) -> Option<Workload> {
    match scenario {
        "lost-update" => Some(Workload::Payments),
        "job-queue" => Some(Workload::Queue),
        _ => None,
    }
}

/// The workload's strategy that measures a scenario's fix, by the fix's id.
pub fn measuring(workload: Workload, fix: &str) -> Option<&'static Strategy> {
    let name = match fix {
        "atomic-update" => "atomic",
        "check-constraint" => "constraint",
        other => other,
    };
    of(workload).find(|s| s.name == name)
}

const READ: &str = "SELECT balance, lim, version FROM accounts WHERE id = {a}";
const WRITE_NEW: &str = "UPDATE accounts SET balance = {new} WHERE id = {a}";

fn begin(engine: EngineKind) -> &'static str {
    match engine {
        Postgres => "BEGIN",
        Mariadb => "START TRANSACTION",
        Sqlite => "BEGIN IMMEDIATE",
    }
}

/// `update`, and the ledger row only if it matched, answering `done` (1 or 0); in a
/// transaction of its own, or, when `open`, in the one already open, then COMMIT.
fn conditional(engine: EngineKind, update: &str, open: bool) -> String {
    let body = match engine {
        Postgres => format!(
            "WITH u AS ({update} RETURNING 1), l AS (INSERT INTO ledger (account, amount) \
             SELECT {{a}}, {{d}} FROM u RETURNING 1) SELECT count(*) AS done FROM l"
        ),
        Mariadb => format!(
            "{update}; INSERT INTO ledger (account, amount) SELECT {{a}}, {{d}} FROM DUAL \
             WHERE ROW_COUNT() = 1; SELECT ROW_COUNT() AS done"
        ),
        Sqlite => format!(
            "{update}; INSERT INTO ledger (account, amount) SELECT {{a}}, {{d}} \
             WHERE changes() = 1; SELECT changes() AS done"
        ),
    };
    match (engine, open) {
        (_, true) => format!("{body}; COMMIT"),
        // One statement, atomic by itself.
        (Postgres, false) => body,
        (_, false) => format!("{}; {body}; COMMIT", begin(engine)),
    }
}

fn plan(level: Level, shape: Shape) -> Result<Plan, &'static str> {
    Ok(Plan {
        level,
        check: false,
        setup: String::new(),
        shape,
    })
}

fn read_then_write(engine: EngineKind) -> ReadWrite {
    ReadWrite {
        read: READ.into(),
        write: conditional(engine, WRITE_NEW, false),
        abort: None,
        retry_stale: false,
        unlocked_read: true,
    }
}

fn naive(engine: EngineKind) -> Result<Plan, &'static str> {
    plan(
        Level::ReadCommitted,
        Shape::ReadWrite(read_then_write(engine)),
    )
}

fn atomic(engine: EngineKind) -> Result<Plan, &'static str> {
    let update =
        "UPDATE accounts SET balance = balance + {d} WHERE id = {a} AND balance + {d} >= -lim";
    let sql = conditional(engine, update, false);
    plan(Level::ReadCommitted, Shape::OneShot { sql })
}

/// Read in a transaction (`lock` after the read, or before it), check, write, commit.
fn in_transaction(engine: EngineKind, before: &str, after: &str) -> ReadWrite {
    ReadWrite {
        read: format!("{before}{READ}{after}"),
        write: conditional(engine, WRITE_NEW, true),
        abort: Some("ROLLBACK".into()),
        retry_stale: false,
        unlocked_read: false,
    }
}

fn for_update(engine: EngineKind) -> Result<Plan, &'static str> {
    let shape = match engine {
        Sqlite => in_transaction(engine, "BEGIN IMMEDIATE; ", ""),
        _ => in_transaction(engine, &format!("{}; ", begin(engine)), " FOR UPDATE"),
    };
    plan(Level::ReadCommitted, Shape::ReadWrite(shape))
}

fn stale_checked(engine: EngineKind, update: &str) -> Result<Plan, &'static str> {
    let shape = ReadWrite {
        write: conditional(engine, update, false),
        retry_stale: true,
        ..read_then_write(engine)
    };
    plan(Level::ReadCommitted, Shape::ReadWrite(shape))
}

fn optimistic(engine: EngineKind) -> Result<Plan, &'static str> {
    let update = "UPDATE accounts SET balance = {new}, version = version + 1 \
                  WHERE id = {a} AND version = {version}";
    stale_checked(engine, update)
}

fn compare_and_swap(engine: EngineKind) -> Result<Plan, &'static str> {
    stale_checked(
        engine,
        "UPDATE accounts SET balance = {new} WHERE id = {a} AND balance = {old}",
    )
}

/// The read-check-write in one transaction at `level`, retried when the database refuses it.
fn at_level(engine: EngineKind, level: Level) -> Result<Plan, &'static str> {
    let begin = match engine {
        // A deferred transaction: the read takes no lock, the write finds out.
        Sqlite => "BEGIN",
        _ => begin(engine),
    };
    let shape = in_transaction(engine, &format!("{begin}; "), "");
    plan(level, Shape::ReadWrite(shape))
}

fn serializable(engine: EngineKind) -> Result<Plan, &'static str> {
    at_level(engine, Level::Serializable)
}

fn repeatable_read(engine: EngineKind) -> Result<Plan, &'static str> {
    if engine == Sqlite {
        return Err("SQLite runs every writer SERIALIZABLE: see serializable-retry");
    }
    at_level(engine, Level::RepeatableRead)
}

const PG_PROCEDURE: &str = "CREATE FUNCTION pay(a integer, d bigint) RETURNS integer \
LANGUAGE plpgsql AS $$ DECLARE b bigint; l bigint; BEGIN \
SELECT balance, lim INTO b, l FROM accounts WHERE id = a FOR UPDATE; \
IF b + d < -l THEN RETURN 0; END IF; \
UPDATE accounts SET balance = b + d WHERE id = a; \
INSERT INTO ledger (account, amount) VALUES (a, d); RETURN 1; END $$;";

const MARIADB_PROCEDURE: &str = "CREATE PROCEDURE pay(IN a INT, IN d BIGINT) BEGIN \
DECLARE b BIGINT; DECLARE l BIGINT; \
DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END; \
START TRANSACTION; \
SELECT balance, lim INTO b, l FROM accounts WHERE id = a FOR UPDATE; \
IF b + d < -l THEN ROLLBACK; SELECT 0 AS done; \
ELSE UPDATE accounts SET balance = b + d WHERE id = a; \
INSERT INTO ledger (account, amount) VALUES (a, d); COMMIT; SELECT 1 AS done; END IF; END;";

fn procedure(engine: EngineKind) -> Result<Plan, &'static str> {
    let (setup, sql) = match engine {
        Postgres => (PG_PROCEDURE, "SELECT pay({a}, {d}) AS done"),
        Mariadb => (MARIADB_PROCEDURE, "CALL pay({a}, {d})"),
        Sqlite => return Err("SQLite has no stored procedures"),
    };
    Ok(Plan {
        setup: setup.into(),
        ..plan(Level::ReadCommitted, Shape::OneShot { sql: sql.into() })?
    })
}

fn advisory(engine: EngineKind) -> Result<Plan, &'static str> {
    let shape = match engine {
        // Keyed by the run's schema too: another run's accounts are other locks.
        Postgres => in_transaction(
            engine,
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext(current_schema()), {a}); ",
            "",
        ),
        // GET_LOCK names are the server's: the run's database is part of the name. The lock
        // is the session's, so it is released after the commit, or the rollback.
        Mariadb => {
            let name = "CONCAT(DATABASE(), ':', {a})";
            ReadWrite {
                read: format!("DO GET_LOCK({name}, 60); {READ}"),
                write: format!(
                    "{}; DO RELEASE_LOCK({name})",
                    conditional(engine, WRITE_NEW, false)
                ),
                abort: Some(format!("ROLLBACK; DO RELEASE_LOCK({name})")),
                retry_stale: false,
                unlocked_read: false,
            }
        }
        Sqlite => return Err("SQLite has no advisory locks; its one writer lock is for-update"),
    };
    plan(Level::ReadCommitted, Shape::ReadWrite(shape))
}

fn constraint(engine: EngineKind) -> Result<Plan, &'static str> {
    let update = "UPDATE accounts SET balance = balance + {d} WHERE id = {a}";
    let sql = conditional(engine, update, false);
    Ok(Plan {
        check: true,
        ..plan(Level::ReadCommitted, Shape::OneShot { sql })?
    })
}

fn partitioned(engine: EngineKind) -> Result<Plan, &'static str> {
    let owner = ReadWrite {
        unlocked_read: false,
        ..read_then_write(engine)
    };
    plan(Level::ReadCommitted, Shape::Partitioned(owner))
}

/// The naive read-compute-write, made safe (while no lease runs out) by a Redis lock taken
/// before it; the database takes no lock of its own.
fn redis_lock(engine: EngineKind) -> Result<Plan, &'static str> {
    let locked = ReadWrite {
        unlocked_read: false,
        ..read_then_write(engine)
    };
    plan(Level::ReadCommitted, Shape::RedisLock(locked))
}

const PENDING: &str = "SELECT id FROM jobs WHERE state = 0 ORDER BY id LIMIT 1";
const FINISH: &str = "UPDATE jobs SET state = 1 WHERE id = {job}; \
                      INSERT INTO done (job, worker) VALUES ({job}, {w})";

fn queue_naive(engine: EngineKind) -> Result<Plan, &'static str> {
    let shape = Shape::Claim {
        claim: PENDING.into(),
        finish: format!("{}; {FINISH}; COMMIT", begin(engine)),
        abort: None,
    };
    plan(Level::ReadCommitted, shape)
}

fn locked_claim(engine: EngineKind, lock: &str) -> Shape {
    let claim = match engine {
        Sqlite => format!("BEGIN IMMEDIATE; {PENDING}"),
        _ => format!("{}; {PENDING} {lock}", begin(engine)),
    };
    Shape::Claim {
        claim,
        finish: format!("{FINISH}; COMMIT"),
        abort: Some("ROLLBACK".into()),
    }
}

fn queue_for_update(engine: EngineKind) -> Result<Plan, &'static str> {
    plan(Level::ReadCommitted, locked_claim(engine, "FOR UPDATE"))
}

fn queue_skip_locked(engine: EngineKind) -> Result<Plan, &'static str> {
    if engine == Sqlite {
        return Err("SQLite has one writer at a time: there is no locked row to skip");
    }
    plan(
        Level::ReadCommitted,
        locked_claim(engine, "FOR UPDATE SKIP LOCKED"),
    )
}

/// Fills a template's holes.
pub fn fill(template: &str, holes: &[(&str, i64)]) -> String {
    let mut sql = template.to_string();
    for (name, value) in holes {
        sql = sql.replace(&format!("{{{name}}}"), &value.to_string());
    }
    sql
}
