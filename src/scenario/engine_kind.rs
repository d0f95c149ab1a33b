//! The engines a scenario names: in `[expect.…]`, `sql_on`, `setup_on` and `unavailable`.

use std::fmt;

/// The engines a scenario can expect outcomes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Postgres,
    Mariadb,
    Sqlite,
}

impl EngineKind {
    /// Every engine, in the order grids and tables show them.
    pub const ALL: [EngineKind; 3] = [
        EngineKind::Postgres,
        EngineKind::Mariadb,
        EngineKind::Sqlite,
    ];

    /// The name files and the command line use: `postgres`, `mariadb`, `sqlite`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Postgres => "postgres",
            EngineKind::Mariadb => "mariadb",
            EngineKind::Sqlite => "sqlite",
        }
    }

    /// The product's own spelling: `PostgreSQL`, `MariaDB`, `SQLite`.
    pub fn label(self) -> &'static str {
        match self {
            EngineKind::Postgres => "PostgreSQL",
            EngineKind::Mariadb => "MariaDB",
            EngineKind::Sqlite => "SQLite",
        }
    }

    /// The engine a name means, if any.
    pub fn named(name: &str) -> Option<EngineKind> {
        EngineKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
