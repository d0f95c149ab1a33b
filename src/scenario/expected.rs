//! What a scenario file expects of a run, in its own words: `anomaly` or `prevented by
//! MECHANISM`. The judge (`outcome.rs`) speaks the same vocabulary; both import it from here.

use std::fmt;

use serde::Serialize;

/// What prevented an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// A step waited for another session's lock, then saw a serial outcome.
    Blocking,
    /// A step failed with a concurrency failure (serialization failure, deadlock, lock not
    /// available, busy, locked) and its transaction was rolled back.
    Abort,
    /// A step broke a declared integrity constraint (CHECK, UNIQUE, NOT NULL, a foreign key),
    /// so the database refused the write and the transaction was rolled back.
    Constraint,
    /// Nothing waited, and nothing failed before the reads had settled the outcome: reads
    /// returned committed or snapshot values.
    ConsistentRead,
    /// A session's attempt failed or matched no row, and its application ran the transaction
    /// again on fresh values.
    Retry,
    /// A session's application saw a step match no row (a lock not granted, a stale write
    /// rejected) and stopped instead of acting on what it had read.
    Guard,
    /// A locking read with SKIP LOCKED passed over the rows another open transaction had
    /// locked and took others: nobody waited, and no two sessions got the same row.
    Skip,
}

/// What a scenario expects of a run. A broken run (an *error*) is never expected: it has no
/// verdict to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Anomaly,
    Prevented(Mechanism),
}

impl Mechanism {
    pub const ALL: [Mechanism; 7] = [
        Mechanism::Blocking,
        Mechanism::Abort,
        Mechanism::Constraint,
        Mechanism::ConsistentRead,
        Mechanism::Retry,
        Mechanism::Guard,
        Mechanism::Skip,
    ];

    /// How a grid cell or a sentence says it: `consistent read`.
    pub fn words(self) -> &'static str {
        match self {
            Mechanism::ConsistentRead => "consistent read",
            other => other.id(),
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Mechanism::Blocking => "blocking",
            Mechanism::Abort => "abort",
            Mechanism::Constraint => "constraint",
            Mechanism::ConsistentRead => "consistent-read",
            Mechanism::Retry => "retry",
            Mechanism::Guard => "guard",
            Mechanism::Skip => "skip",
        }
    }
}

impl Expected {
    /// `anomaly`, or `prevented by MECHANISM`.
    pub fn parse(text: &str) -> Result<Expected, String> {
        let text = text.trim();
        if text == "anomaly" {
            return Ok(Expected::Anomaly);
        }
        text.strip_prefix("prevented by ")
            .and_then(|m| Mechanism::ALL.into_iter().find(|x| x.id() == m.trim()))
            .map(Expected::Prevented)
            .ok_or_else(|| {
                let ids: Vec<&str> = Mechanism::ALL.iter().map(|m| m.id()).collect();
                format!(
                    "expected `anomaly` or `prevented by` one of {}; found `{text}`",
                    ids.join(", ")
                )
            })
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Anomaly => f.write_str("anomaly"),
            Expected::Prevented(m) => write!(f, "prevented by {}", m.id()),
        }
    }
}
