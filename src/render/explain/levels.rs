//! The level-dependent part of `explain`, said from the expectations: `at read committed:
//! prevented by blocking; at repeatable read and serializable: prevented by abort`. Free text
//! (a fix's `how` and `prefer`) then need not say it, and cannot contradict it.

use crate::level::Level;
use crate::scenario::expected::Expected;
use crate::scenario::{EngineKind, Scenario};

/// What a variant (the scenario or a fix) does at each level on one engine, levels grouped by
/// outcome in the order they first appear.
pub fn by_level(variant: &Scenario, engine: EngineKind) -> String {
    say(Level::ALL.map(|level| variant.expected(engine, level).copied()))
}

/// The sentence for one engine's four cells, in `Level::ALL` order.
pub fn say(cells: [Option<Expected>; 4]) -> String {
    let mut groups: Vec<(String, Vec<Level>)> = Vec::new();
    for (level, cell) in Level::ALL.into_iter().zip(cells) {
        let word = outcome(cell);
        match groups.iter_mut().find(|(w, _)| *w == word) {
            Some((_, levels)) => levels.push(level),
            None => groups.push((word, vec![level])),
        }
    }
    groups
        .iter()
        .map(|(word, levels)| format!("{}: {word}", at(levels)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn outcome(cell: Option<Expected>) -> String {
    match cell {
        None => "no expectation".to_string(),
        Some(Expected::Anomaly) => "the anomaly happens".to_string(),
        Some(Expected::Prevented(m)) => format!("prevented by {}", m.words()),
    }
}

/// `at every level`, `at read committed`, `at repeatable read and serializable`.
fn at(levels: &[Level]) -> String {
    if levels.len() == Level::ALL.len() {
        return "at every level".to_string();
    }
    let names: Vec<String> = levels.iter().map(|l| l.to_string()).collect();
    match names.as_slice() {
        [init @ .., last] if !init.is_empty() => format!("at {} and {last}", init.join(", ")),
        _ => format!("at {}", names.concat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::expected::Mechanism;

    fn check(cells: [Option<Expected>; 4], expected: &str) {
        assert_eq!(say(cells), expected);
    }

    #[test]
    fn levels_with_one_outcome_are_grouped_in_order() {
        let blocking = Some(Expected::Prevented(Mechanism::Blocking));
        let abort = Some(Expected::Prevented(Mechanism::Abort));
        check(
            [blocking, blocking, abort, abort],
            "at read uncommitted and read committed: prevented by blocking; \
             at repeatable read and serializable: prevented by abort",
        );
        check(
            [abort, Some(Expected::Anomaly), abort, abort],
            "at read uncommitted, repeatable read and serializable: prevented by abort; \
             at read committed: the anomaly happens",
        );
    }

    #[test]
    fn one_outcome_everywhere_is_every_level() {
        let read = Some(Expected::Prevented(Mechanism::ConsistentRead));
        check([read; 4], "at every level: prevented by consistent read");
        check(
            [None, None, None, Some(Expected::Anomaly)],
            "at read uncommitted, read committed and repeatable read: no expectation; \
             at serializable: the anomaly happens",
        );
    }
}
