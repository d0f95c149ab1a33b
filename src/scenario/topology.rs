//! The database nodes a scenario needs, and the steps that act on a replica.
//!
//! A scenario says `topology = "primary-standby"` to run on a primary with a streaming hot
//! standby; its sessions, and single steps, then name the node they go to (`node = "standby"`).
//! A lag is a step of the scenario, never luck: `replica = "pause"` stops the standby's replay,
//! `replica = "resume"` lets it replay everything the primary has written, and
//! `replica = "wait ${lsn.lsn}"` is an application that waits until the standby has replayed a
//! position of the primary's WAL (read-your-writes).

use std::fmt;

/// The nodes a run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One server: every scenario that names no topology.
    #[default]
    Single,
    /// A primary and a hot standby that streams its WAL (PostgreSQL).
    PrimaryStandby,
    /// This many nodes that each take writes (MariaDB Galera), named `1`, `2`, `3`.
    MultiMaster(u8),
}

/// The node a session or a step goes to: an index into [`Topology::nodes`].
pub type Node = usize;

/// The primary, and the only node of a single server.
pub const PRIMARY: Node = 0;

impl Topology {
    /// The names a file uses after `topology =`.
    pub const NAMES: [&'static str; 2] = ["primary-standby", "multi-master"];

    /// The most nodes a multi-master cluster has here.
    pub const MAX_NODES: u8 = 3;

    /// The topology a file names; a multi-master cluster as large as it can be, until the
    /// sessions say how many nodes it needs ([`Topology::sized`]).
    pub fn named(name: &str) -> Option<Topology> {
        match name {
            "primary-standby" => Some(Topology::PrimaryStandby),
            "multi-master" => Some(Topology::MultiMaster(Topology::MAX_NODES)),
            _ => None,
        }
    }

    /// A multi-master cluster of as many nodes as the highest one `used` (two at least).
    pub fn sized(self, used: impl IntoIterator<Item = Node>) -> Topology {
        match self {
            Topology::MultiMaster(_) => {
                let highest = used.into_iter().max().unwrap_or(0) as u8 + 1;
                Topology::MultiMaster(highest.max(2))
            }
            other => other,
        }
    }

    /// The names of its nodes, in index order.
    pub fn nodes(self) -> &'static [&'static str] {
        match self {
            Topology::Single => &["primary"],
            Topology::PrimaryStandby => &["primary", "standby"],
            Topology::MultiMaster(n) => &["1", "2", "3"][..usize::from(n).min(3)],
        }
    }

    pub fn node_named(self, name: &str) -> Option<Node> {
        self.nodes().iter().position(|n| *n == name)
    }

    /// `standby`; empty for the one node of a single server, which no one needs to see.
    pub fn node_name(self, node: Node) -> &'static str {
        match self {
            Topology::Single => "",
            _ => self.nodes().get(node).copied().unwrap_or("?"),
        }
    }

    /// Whether `node` replays another's WAL (takes no writes, runs no serializable
    /// transaction, can be paused).
    pub fn is_standby(self, node: Node) -> bool {
        self == Topology::PrimaryStandby && node == 1
    }

    /// What the header says of it: `a primary and a hot standby`.
    pub fn describe(self) -> &'static str {
        match self {
            Topology::Single => "one server",
            Topology::PrimaryStandby => "a primary and a streaming hot standby",
            Topology::MultiMaster(_) => "a multi-master cluster (MariaDB Galera)",
        }
    }
}

/// As a file names it: `primary-standby`, `multi-master`.
impl serde::Serialize for Topology {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Topology::Single => "single",
            Topology::PrimaryStandby => "primary-standby",
            Topology::MultiMaster(_) => "multi-master",
        })
    }
}

/// What a `replica = "…"` step does on its standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaAction<'a> {
    /// Stops replaying the primary's WAL: from here on the standby falls behind.
    Pause,
    /// Replays again, and returns once the standby has replayed all the primary had written.
    Resume,
    /// Waits until the standby has replayed this position of the primary's WAL (`0/3000148`).
    Wait(&'a str),
}

impl ReplicaAction<'_> {
    /// The action a step's text (its holes filled, or as written) names, if any.
    pub fn parse(text: &str) -> Option<ReplicaAction<'_>> {
        match text.trim() {
            "pause" => Some(ReplicaAction::Pause),
            "resume" => Some(ReplicaAction::Resume),
            other => {
                let lsn = other.strip_prefix("wait")?;
                let lsn = lsn.trim();
                (lsn.len() < other.len() - 4
                    && !lsn.is_empty()
                    && !lsn.contains(char::is_whitespace))
                .then_some(ReplicaAction::Wait(lsn))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_actions_read_as_written() {
        assert_eq!(ReplicaAction::parse("pause"), Some(ReplicaAction::Pause));
        assert_eq!(
            ReplicaAction::parse(" resume "),
            Some(ReplicaAction::Resume)
        );
        assert_eq!(
            ReplicaAction::parse("wait 0/3000148"),
            Some(ReplicaAction::Wait("0/3000148"))
        );
        assert_eq!(
            ReplicaAction::parse("wait ${lsn.lsn}"),
            Some(ReplicaAction::Wait("${lsn.lsn}"))
        );
        for bad in ["", "wait", "wait0/1", "wait 0/1 0/2", "stop", "pause now"] {
            assert_eq!(ReplicaAction::parse(bad), None, "{bad:?}");
        }
    }

    /// A scenario file with `head` at the top and `step` in the one session's one step.
    fn parsed(head: &str, session: &str, step: &str) -> Result<crate::scenario::Scenario, String> {
        let text = format!(
            "id = \"t\"\ntitle = \"t\"\nanomaly = \"a\"\ncode = \"c\"\nstory = \"s\"\n{head}\n\
             setup = \"CREATE TABLE t (id int)\"\n\
             [[session]]\nname = \"john\"\n{session}\n\
             [[session.step]]\nname = \"read\"\nsay = \"x\"\n{step}\n\
             [[interleaving]]\nname = \"i\"\nsteps = [\"john.read\"]\n\
             [outcome]\nfinal = \"SELECT 1 AS one\"\nanomaly_if = \"final.one = 2\"\n\
             anomaly = \"x\"\nprevented = \"y\"\n"
        );
        crate::scenario::Scenario::parse(&text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn sessions_and_steps_name_their_nodes() {
        let pair = "topology = \"primary-standby\"";
        let scenario = parsed(pair, "node = \"standby\"", "sql = \"SELECT 1\"").unwrap();
        assert_eq!(scenario.topology, Topology::PrimaryStandby);
        assert_eq!(
            (
                scenario.sessions[0].node,
                scenario.sessions[0].steps[0].node
            ),
            (1, 1)
        );
        let scenario = parsed(pair, "", "sql = \"SELECT 1\"\nnode = \"standby\"").unwrap();
        assert_eq!(
            (
                scenario.sessions[0].node,
                scenario.sessions[0].steps[0].node
            ),
            (0, 1)
        );
        let scenario = parsed(pair, "node = \"standby\"", "replica = \"wait 0/1\"").unwrap();
        assert!(scenario.uses_replica() && !scenario.uses_redis());
    }

    #[test]
    fn a_bad_topology_node_or_replica_step_is_placed_and_explained() {
        let pair = "topology = \"primary-standby\"";
        let cases = [
            (
                "topology = \"primary-stanby\"",
                "",
                "sql = \"SELECT 1\"",
                "t.toml:6:12: unknown topology `primary-stanby`; did you mean `primary-standby`?",
            ),
            (
                "",
                "node = \"standby\"",
                "sql = \"SELECT 1\"",
                "t.toml:10:8: node `standby` needs a topology of several nodes: add topology = \"primary-standby\" or \"multi-master\"",
            ),
            (
                pair,
                "node = \"stanby\"",
                "sql = \"SELECT 1\"",
                "t.toml:10:8: topology primary-standby has no node `stanby`; did you mean `standby`?",
            ),
            (
                pair,
                "",
                "replica = \"pause\"",
                "t.toml:14:11: step `john.read` acts on a replica, so it must go to a standby (node = \"standby\", with topology = \"primary-standby\")",
            ),
            (
                pair,
                "node = \"standby\"",
                "replica = \"stop\"",
                "t.toml:14:11: `replica` is `pause`, `resume` or `wait LSN` (the step waits until the standby has replayed the primary's WAL up to LSN), found `stop`",
            ),
        ];
        for (head, session, step, error) in cases {
            assert_eq!(parsed(head, session, step).unwrap_err(), error);
        }
    }

    #[test]
    fn nodes_by_name() {
        let pair = Topology::named("primary-standby").unwrap();
        assert_eq!(pair.node_named("standby"), Some(1));
        assert!(pair.is_standby(1) && !pair.is_standby(PRIMARY));
        assert_eq!(Topology::Single.node_named("standby"), None);
        assert_eq!(Topology::Single.node_name(PRIMARY), "");
    }
}
