//! The workloads' data: the tables each cell starts from, the query that counts the money (or
//! the jobs) at the end, and the pure judgement of that count.

use serde::Serialize;

use super::strategy::{Plan, Workload};
use crate::scenario::EngineKind;
use crate::timeline::ResultSet;

/// Every account starts with this balance, and may go this far below zero.
pub const INITIAL_BALANCE: i64 = 1_000;
pub const LIMIT: i64 = 500;
/// A payment moves 1 to this many, in or out.
pub const MAX_AMOUNT: i64 = 100;
/// The jobs a queue cell starts with; a queue that drains stops the cell early.
pub const JOBS: i64 = 50_000;

/// The tables a cell starts from: `hot` accounts, or the queue's jobs.
pub fn setup(engine: EngineKind, workload: Workload, hot: u64, plan: &Plan) -> String {
    let serial = match engine {
        EngineKind::Postgres => "bigserial PRIMARY KEY",
        EngineKind::Mariadb => "BIGINT AUTO_INCREMENT PRIMARY KEY",
        EngineKind::Sqlite => "INTEGER PRIMARY KEY",
    };
    let series = |n: i64, select: &str| match engine {
        EngineKind::Postgres => format!("{select} FROM generate_series(1, {n}) AS g(n)"),
        EngineKind::Mariadb => format!("{select} FROM (SELECT seq AS n FROM seq_1_to_{n}) AS g"),
        EngineKind::Sqlite => format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {n}) \
             {select} FROM g"
        ),
    };
    let tables = match workload {
        Workload::Payments => {
            let check = if plan.check {
                ", CHECK (balance >= -lim)"
            } else {
                ""
            };
            format!(
                "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL, \
                 lim BIGINT NOT NULL, version BIGINT NOT NULL DEFAULT 0{check});\n\
                 CREATE TABLE ledger (id {serial}, account INTEGER NOT NULL, \
                 amount BIGINT NOT NULL);\n\
                 INSERT INTO accounts (id, balance, lim) {};\n",
                series(hot as i64, &format!("SELECT n, {INITIAL_BALANCE}, {LIMIT}"))
            )
        }
        Workload::Queue => format!(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state INTEGER NOT NULL);\n\
             CREATE TABLE done (id {serial}, job INTEGER NOT NULL, worker INTEGER NOT NULL);\n\
             INSERT INTO jobs (id, state) {};\n",
            series(JOBS, "SELECT n, 0")
        ),
    };
    format!("{tables}{}", plan.setup)
}

/// The query that counts, from the database, at the end.
pub fn count_sql(workload: Workload) -> &'static str {
    match workload {
        Workload::Payments => {
            "SELECT (SELECT SUM(balance) FROM accounts) AS total, \
             (SELECT COALESCE(SUM(amount), 0) FROM ledger) AS moved, \
             (SELECT COUNT(*) FROM ledger) AS payments, \
             (SELECT COUNT(*) FROM accounts WHERE balance < -lim) AS below"
        }
        Workload::Queue => {
            "SELECT (SELECT COUNT(*) FROM done) AS done, \
             (SELECT COUNT(DISTINCT job) FROM done) AS jobs"
        }
    }
}

/// What the count says: whether the cell kept its invariants, and what it broke.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Judgement {
    pub safe: bool,
    /// Money that vanished (negative: appeared): the initial sum plus the ledger, less the
    /// balances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<i64>,
    /// Payments the ledger holds (warm-up included), or jobs done.
    pub ledger: u64,
    /// Accounts below their limit.
    pub below_limit: u64,
    /// Jobs done more than once (counted once per extra time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_twice: Option<u64>,
}

/// Judges the count of a cell with `hot` accounts.
pub fn judge(workload: Workload, hot: u64, count: &ResultSet) -> Result<Judgement, String> {
    let row = count.rows.first().ok_or("the count returned no row")?;
    let value = |i: usize| -> Result<i64, String> {
        let text = row.get(i).cloned().flatten().unwrap_or_else(|| "0".into());
        // SUM is a numeric on PostgreSQL and a decimal on MariaDB.
        let whole = text.split('.').next().unwrap_or_default();
        whole
            .parse()
            .map_err(|_| format!("the count returned `{text}`, not a number"))
    };
    Ok(match workload {
        Workload::Payments => {
            let (total, moved) = (value(0)?, value(1)?);
            let expected = hot as i64 * INITIAL_BALANCE + moved;
            let lost = expected - total;
            let below = value(3)? as u64;
            Judgement {
                safe: lost == 0 && below == 0,
                lost: (lost != 0).then_some(lost),
                ledger: value(2)? as u64,
                below_limit: below,
                done_twice: None,
            }
        }
        Workload::Queue => {
            let (done, jobs) = (value(0)? as u64, value(1)? as u64);
            Judgement {
                safe: done == jobs,
                lost: None,
                ledger: done,
                below_limit: 0,
                done_twice: Some(done - jobs),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(values: &[&str]) -> ResultSet {
        ResultSet {
            columns: Vec::new(),
            rows: vec![values.iter().map(|v| Some(v.to_string())).collect()],
            earlier: Vec::new(),
        }
    }

    #[test]
    fn money_that_vanished_is_counted() {
        let judged = judge(Workload::Payments, 2, &count(&["1950", "-30", "7", "0"])).unwrap();
        assert_eq!(judged.lost, Some(20));
        assert!(!judged.safe);
        let kept = judge(Workload::Payments, 2, &count(&["1970.00", "-30", "7", "0"])).unwrap();
        assert!(kept.safe, "{kept:?}");
        let below = judge(Workload::Payments, 1, &count(&["1000", "0", "0", "1"])).unwrap();
        assert!(!below.safe);
    }

    #[test]
    fn a_job_done_twice_is_unsafe() {
        let judged = judge(Workload::Queue, 1, &count(&["10", "9"])).unwrap();
        assert_eq!(judged.done_twice, Some(1));
        assert!(!judged.safe);
    }
}
