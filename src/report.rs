//! The result of one run: everything a renderer needs, as plain data.

use crate::engine::EngineInfo;
use crate::level::{Level, SessionLevel};
use crate::outcome::Verdict;
use crate::scenario::expected::Expected;
use crate::scenario::{display_name, Scenario};
use crate::timeline::Timeline;

#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: Scenario,
    pub engine: EngineInfo,
    /// The run's level: that of every session that does not pin its own.
    pub requested: Level,
    pub effective: Level,
    /// Each session's level, in the scenario's order.
    pub sessions: Vec<SessionLevel>,
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

    /// Whether a session pins its own level or characteristics: then headers show each.
    pub fn any_pinned(&self) -> bool {
        self.scenario.sessions.iter().any(|s| s.pinned.any())
    }

    /// The header's level: [`Report::level_text`], then each session that pins its own:
    /// `read committed; Alice serializable, read only, deferrable`.
    pub fn levels_text(&self) -> String {
        let mut text = self.level_text();
        for (session, level) in self.scenario.sessions.iter().zip(&self.sessions) {
            if session.pinned.any() {
                text.push_str(&format!(
                    "; {} {}",
                    display_name(&session.name),
                    level.text()
                ));
            }
        }
        text
    }

    pub fn matches_expectation(&self) -> Option<bool> {
        self.expected.map(|e| self.verdict.matches(&e))
    }

    /// `prevented by abort`, `anomaly`: the verdict in the words expectations use.
    pub fn outcome_text(&self) -> String {
        self.verdict.finding.to_string()
    }
}

/// A fix's run that the engine cannot do, and why (`check` names it; JUnit skips it).
#[derive(Debug, Clone)]
pub struct NotRun {
    /// `lost-update --fix for-update`.
    pub label: String,
    /// The engine as the reports name it: `sqlite 3.46.0`.
    pub engine: String,
    pub why: String,
}

impl std::fmt::Display for NotRun {
    /// `lost-update --fix for-update on sqlite`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.engine.split(' ').next().unwrap_or(&self.engine);
        write!(f, "{} on {name}", self.label)
    }
}
