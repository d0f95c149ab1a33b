//! The result of one run: everything a renderer needs, as plain data.

use crate::engine::EngineInfo;
use crate::level::Level;
use crate::outcome::Verdict;
use crate::scenario::expected::Expected;
use crate::scenario::Scenario;
use crate::timeline::Timeline;

#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    pub engine: EngineInfo,
    pub requested: Level,
    pub effective: Level,
    pub interleaving: String,
    pub timeline: Timeline,
    pub verdict: Verdict,
    /// What the scenario file expects of this engine at this level, if it says.
    pub expected: Option<Expected>,
    /// The `[expect.…]` table that says it: `postgres`, `postgres >= 16`.
    pub expected_in: Option<String>,
}

impl Report {
    /// `read uncommitted → read committed`, or just `serializable` when they agree.
    pub fn level_text(&self) -> String {
        if self.requested == self.effective {
            self.requested.to_string()
        } else {
            format!("{} → {}", self.requested, self.effective)
        }
    }

    pub fn matches_expectation(&self) -> Option<bool> {
        self.expected.map(|e| self.verdict.matches(&e))
    }

    /// `prevented by abort`, `anomaly`: the verdict in the words expectations use.
    pub fn outcome_text(&self) -> String {
        self.verdict.finding.to_string()
    }
}
