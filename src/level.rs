//! Isolation levels as a user asks for them.

use std::fmt;

use serde::Serialize;

/// One of the four ANSI isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::ReadUncommitted,
        Level::ReadCommitted,
        Level::RepeatableRead,
        Level::Serializable,
    ];

    /// The name used on the command line and in scenario files: `repeatable-read`.
    pub fn id(self) -> &'static str {
        match self {
            Level::ReadUncommitted => "read-uncommitted",
            Level::ReadCommitted => "read-committed",
            Level::RepeatableRead => "repeatable-read",
            Level::Serializable => "serializable",
        }
    }

    /// The name as SQL spells it: `REPEATABLE READ`.
    pub fn sql(self) -> &'static str {
        match self {
            Level::ReadUncommitted => "READ UNCOMMITTED",
            Level::ReadCommitted => "READ COMMITTED",
            Level::RepeatableRead => "REPEATABLE READ",
            Level::Serializable => "SERIALIZABLE",
        }
    }

    pub fn from_id(id: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.id() == id)
    }
}

impl fmt::Display for Level {
    /// Prose form: `repeatable read`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id().replace('-', " "))
    }
}

/// The level one session of a run asked for and the one the engine runs, with its other
/// transaction characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionLevel {
    pub requested: Level,
    pub effective: Level,
    /// The session chose its level; otherwise it has the run's.
    pub pinned: bool,
    pub read_only: bool,
    pub deferrable: bool,
}

impl SessionLevel {
    /// `serializable, read only, deferrable`, or `read uncommitted → read committed`.
    pub fn text(&self) -> String {
        let mut text = if self.requested == self.effective {
            self.requested.to_string()
        } else {
            format!("{} → {}", self.requested, self.effective)
        };
        if self.read_only {
            text.push_str(", read only");
        }
        if self.deferrable {
            text.push_str(", deferrable");
        }
        text
    }
}
