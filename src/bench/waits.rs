//! The share of the workers' time spent waiting for locks, where the engine can tell: sampled
//! every few milliseconds, during the measured time, from a connection of the run's own that
//! runs no payment. PostgreSQL says it in `pg_stat_activity` (a `Lock` wait: a row, a
//! transaction, an advisory lock); MariaDB in `SHOW ENGINE INNODB STATUS` (rebuilt on every
//! call, so never stale) and, for `GET_LOCK`, the PROCESSLIST state; SQLite waits inside its
//! busy handler, which no other connection can see.

use std::time::{Duration, Instant};

use super::drive::Clock;
use crate::engine::bench::Worker;
use crate::engine::EngineError;
use crate::scenario::EngineKind;
use crate::timeline::{ResultSet, StepResult};

/// Between two samples; a sample costs the server a query, so not tighter.
const EVERY: Duration = Duration::from_millis(5);

/// The queries that count the run's waiting connections, or `None` where the engine cannot tell.
pub fn probes(engine: EngineKind) -> Option<&'static [&'static str]> {
    match engine {
        // The workers log in as the run's role (or the user) and name themselves `anomalies wN`.
        EngineKind::Postgres => Some(&[
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND usename = current_user AND datname = current_database() \
             AND application_name ~ '^anomalies w[0-9]+$'",
        ]),
        EngineKind::Mariadb => Some(&[
            "SHOW ENGINE INNODB STATUS",
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND STATE = 'User lock'",
        ]),
        EngineKind::Sqlite => None,
    }
}

/// How many connections wait, by what one probe answered.
fn waiting(rows: &ResultSet) -> u64 {
    let Some(row) = rows.rows.first() else {
        return 0;
    };
    match row.as_slice() {
        // SHOW ENGINE INNODB STATUS: Type, Name, Status; a waiting transaction's block in the
        // TRANSACTIONS section has a `LOCK WAIT` line (the LATEST DETECTED DEADLOCK section has
        // such lines too, from the past, for the server's life).
        [_, _, Some(status)] => status
            .split("\nTRANSACTIONS\n")
            .nth(1)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("LOCK WAIT"))
            .count() as u64,
        [Some(count), ..] => count.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Samples until the clock is up: the share of `connections` × samples that were waiting.
pub async fn sample(
    probe: &Worker,
    queries: &[&str],
    connections: u64,
    clock: Clock,
) -> Result<Option<f64>, EngineError> {
    let (mut waited, mut seen) = (0u64, 0u64);
    tokio::time::sleep_until(clock.measured_from.into()).await;
    while Instant::now() < clock.until {
        let mut now_waiting = 0;
        for sql in queries {
            if let StepResult::Rows(rows) = probe.execute(sql).await? {
                now_waiting += waiting(&rows);
            }
        }
        waited += now_waiting.min(connections);
        seen += connections;
        tokio::time::sleep(EVERY).await;
    }
    Ok((seen > 0).then(|| waited as f64 / seen as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_counted_from_either_answer() {
        let count = ResultSet {
            columns: vec!["count".into()],
            rows: vec![vec![Some("3".into())]],
            earlier: Vec::new(),
        };
        assert_eq!(waiting(&count), 3);
        let status = "LATEST DETECTED DEADLOCK\n*** (1) TRANSACTION:\nLOCK WAIT 4 lock struct(s)\n\
                      ------------\nTRANSACTIONS\n------------\n\
                      ---TRANSACTION 1, ACTIVE 0 sec\nLOCK WAIT 2 lock struct(s)\n\
                      ---TRANSACTION 2, ACTIVE 0 sec\nLOCK WAIT 2 lock struct(s)\n";
        let innodb = ResultSet {
            columns: vec!["Type".into(), "Name".into(), "Status".into()],
            rows: vec![vec![
                Some("InnoDB".into()),
                Some(String::new()),
                Some(status.into()),
            ]],
            earlier: Vec::new(),
        };
        assert_eq!(waiting(&innodb), 2);
    }
}
