//! What a step sends and where: its kind (SQL, a Redis command, an `until`, a replica step)
//! and the node it goes to.

use toml::Spanned;

use super::{suggestion, Locator, RawNode, RawStep};
use crate::scenario::{until_key, Node, ReplicaAction, ScenarioError, StepKind, Topology};

/// Where a step goes, and its text: exactly one of `sql`, `redis`, `until` and `replica`.
/// `until` reads `KEY expired`; its text is the key. `replica` reads `pause`, `resume` or
/// `wait LSN`.
pub(super) fn step_kind<'a>(
    raw: &'a RawStep,
    session: &str,
    at: &Locator,
) -> Result<(StepKind, &'a Spanned<String>), ScenarioError> {
    let name = format!("{session}.{}", raw.name.get_ref());
    let given: Vec<(StepKind, &Spanned<String>)> = [
        (StepKind::Sql, &raw.sql),
        (StepKind::Redis, &raw.redis),
        (StepKind::Until, &raw.until),
        (StepKind::Replica, &raw.replica),
    ]
    .into_iter()
    .filter_map(|(kind, text)| text.as_ref().map(|t| (kind, t)))
    .collect();
    let (kind, text) = match given.as_slice() {
        [one] => *one,
        [] => {
            return Err(at.error(
                raw.name.span(),
                format!(
                    "step `{name}` sends nothing: give it `sql`, `redis`, `until` or `replica`"
                ),
            ))
        }
        [_, (_, second), ..] => {
            return Err(at.error(
                second.span(),
                format!(
                "step `{name}` has more than one of `sql`, `redis`, `until` and `replica`; a step \
                     goes to one place"
            ),
            ))
        }
    };
    if kind != StepKind::Sql {
        if let Some((engine, _)) = raw.sql_on.first() {
            return Err(at.error(
                engine.span(),
                format!("step `{name}` sends no SQL, so it has no `sql_on`"),
            ));
        }
    }
    if kind == StepKind::Redis && text.get_ref().split_whitespace().next().is_none() {
        return Err(at.error(
            text.span(),
            format!("step `{name}` has an empty Redis command"),
        ));
    }
    if kind == StepKind::Until && until_key(text.get_ref()).is_none() {
        return Err(at.error(
            text.span(),
            format!(
                "`until` reads `KEY expired` (the step waits until Redis has no KEY), found `{}`",
                text.get_ref()
            ),
        ));
    }
    if kind == StepKind::Replica && ReplicaAction::parse(text.get_ref()).is_none() {
        return Err(at.error(
            text.span(),
            format!(
                "`replica` is `pause`, `resume` or `wait LSN` (the step waits until the standby \
                 has replayed the primary's WAL up to LSN), found `{}`",
                text.get_ref()
            ),
        ));
    }
    Ok((kind, text))
}

/// The node a session or step names, among the topology's.
pub(super) fn node_named(
    node: &Spanned<RawNode>,
    topology: Topology,
    at: &Locator,
) -> Result<Node, ScenarioError> {
    let name = node.get_ref().text();
    if topology == Topology::Single {
        return Err(at.error(
            node.span(),
            format!(
                "node `{name}` needs a topology of several nodes: add topology = \"{}\" or \
                 \"{}\"",
                Topology::NAMES[0],
                Topology::NAMES[1]
            ),
        ));
    }
    topology.node_named(&name).ok_or_else(|| {
        at.error(
            node.span(),
            format!(
                "topology {topology} has no node `{name}`{}",
                suggestion(&name, topology.nodes())
            ),
        )
    })
}
