//! `anomalies`: replays scripted interleavings of transactions against real databases and shows
//! which isolation anomalies happen and what prevents them. See ARCHITECTURE.md for the map.

pub mod app;
pub mod bench;
pub mod check;
pub mod classroom;
pub mod engine;
pub mod explore;
pub mod level;
pub mod outcome;
pub mod render;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod timeline;

/// Exit codes, in one place.
pub mod exit {
    /// The command completed (whatever the verdicts).
    pub const OK: i32 = 0;
    /// `check`: a run did not show what its scenario expects, or was broken (a scenario
    /// error), or, with `--strict`, had no expectation.
    pub const EXPECTATION_FAILED: i32 = 1;
    /// A usage, scenario, setup or connection error; for `run`, `matrix` and `explore`, also a
    /// run that was broken (an *error* verdict), after it is printed.
    pub const ERROR: i32 = 2;
    /// Stopped by Ctrl-C or SIGTERM, after cleaning up.
    pub const INTERRUPTED: i32 = 130;
}
