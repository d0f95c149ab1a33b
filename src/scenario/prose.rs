//! A fix's free text (`how`, `prefer`) checked against its own expectations. A clause that
//! names a level and says something the table also says ("waits", "no retry", "refused",
//! `40001`) must agree with the table at that level; an error code named without a level must
//! be one the fix's expectations can produce on that code's engine. A simple check on words,
//! not a reading of the prose: it catches a sentence that goes stale when a table changes.

use super::expected::{Expected, Mechanism};
use super::{EngineKind, Scenario};
use crate::level::Level;

/// Every place where a fix's text contradicts the fix's expectations, one line each.
pub fn contradictions(scenario: &Scenario) -> Vec<String> {
    let mut found = Vec::new();
    for fix in &scenario.fixes {
        let engines: Vec<EngineKind> = [EngineKind::Postgres, EngineKind::Sqlite]
            .into_iter()
            .filter(|e| fix.info.unavailable_on(*e).is_none())
            .collect();
        let table = |engine: EngineKind, level: Level| fix.variant.expected(engine, level).copied();
        for (field, text) in [("how", &fix.info.how), ("prefer", &fix.info.prefer)] {
            for line in check_text(text, &engines, &table) {
                found.push(format!("{}/{} {field}: {line}", scenario.id, fix.info.id));
            }
        }
    }
    found
}

/// What a sentence claims, and the outcomes that agree with it.
#[derive(Debug, Clone, Copy)]
struct Claim {
    says: &'static str,
    agrees: fn(Expected) -> bool,
}

fn refused(e: Expected) -> bool {
    matches!(e, Expected::Prevented(Mechanism::Abort | Mechanism::Retry))
}
fn not_refused(e: Expected) -> bool {
    !refused(e)
}
/// A wait may end in the lock's release or in a refusal after it.
fn waited(e: Expected) -> bool {
    matches!(
        e,
        Expected::Prevented(Mechanism::Blocking | Mechanism::Abort)
    )
}
fn constrained(e: Expected) -> bool {
    e == Expected::Prevented(Mechanism::Constraint)
}

/// Phrases, as lowercase words; the negations come first, so that "nothing is refused" is not
/// also read as "refused".
const PHRASES: [(&str, Claim); 11] = [
    ("no retry", NO_REFUSAL),
    ("nothing is refused", NO_REFUSAL),
    ("never refused", NO_REFUSAL),
    ("never fails", NO_REFUSAL),
    ("retrying changes nothing", NO_REFUSAL),
    ("refused", REFUSAL),
    ("fails", REFUSAL),
    ("serialization failure", REFUSAL),
    ("must retry", REFUSAL),
    ("waits", WAIT),
    ("waited", WAIT),
];
const NO_REFUSAL: Claim = Claim {
    says: "nothing is refused",
    agrees: not_refused,
};
const REFUSAL: Claim = Claim {
    says: "it is refused",
    agrees: refused,
};
const WAIT: Claim = Claim {
    says: "it waits",
    agrees: waited,
};

/// Error codes (a word, or a word's start for `SQLITE_CONSTRAINT_CHECK` and the like), each
/// with its engine and what it means.
const CODES: [(&str, EngineKind, Claim); 5] = [
    ("40001", EngineKind::Postgres, REFUSAL),
    ("40p01", EngineKind::Postgres, REFUSAL),
    ("23514", EngineKind::Postgres, CONSTRAINT),
    ("sqlite_busy", EngineKind::Sqlite, REFUSAL),
    ("sqlite_constraint", EngineKind::Sqlite, CONSTRAINT),
];
const CONSTRAINT: Claim = Claim {
    says: "a constraint refuses it",
    agrees: constrained,
};

/// The contradictions in one text. `engines` are those the fix runs on; a sentence that names
/// an engine (PostgreSQL, SQLite, or one of its error codes) is about that engine only.
fn check_text(
    text: &str,
    engines: &[EngineKind],
    table: &dyn Fn(EngineKind, Level) -> Option<Expected>,
) -> Vec<String> {
    let mut found = Vec::new();
    for sentence in text.split(". ").flat_map(|s| s.split(".\n")) {
        let named = engines_named(&words(sentence));
        let about: Vec<EngineKind> = engines
            .iter()
            .copied()
            .filter(|e| named.is_empty() || named.contains(e))
            .collect();
        for clause in sentence.split([';', ':']) {
            let words = words(clause);
            let groups = level_groups(&words);
            let mut used = vec![false; words.len()];
            for (phrase, claim) in PHRASES {
                for at in find(&words, phrase, &mut used) {
                    let Some(levels) = nearest(&groups, at) else {
                        continue;
                    };
                    for &engine in &about {
                        disagree(&mut found, clause, claim, engine, levels, table);
                    }
                }
            }
            for (code, engine, claim) in CODES {
                let Some(at) = words.iter().position(|w| w.starts_with(code)) else {
                    continue;
                };
                if !engines.contains(&engine) {
                    continue;
                }
                match nearest(&groups, at) {
                    Some(levels) => disagree(&mut found, clause, claim, engine, levels, table),
                    None if !Level::ALL
                        .into_iter()
                        .any(|l| table(engine, l).is_some_and(claim.agrees)) =>
                    {
                        found.push(format!(
                            "\"{}\" names {} but no level on {engine} expects that",
                            flat(clause),
                            code.to_uppercase()
                        ))
                    }
                    None => {}
                }
            }
        }
    }
    found
}

fn disagree(
    found: &mut Vec<String>,
    clause: &str,
    claim: Claim,
    engine: EngineKind,
    levels: &[Level],
    table: &dyn Fn(EngineKind, Level) -> Option<Expected>,
) {
    for &level in levels {
        if let Some(expected) = table(engine, level).filter(|e| !(claim.agrees)(*e)) {
            let line = format!(
                "\"{}\" says {} at {level}, but {engine} expects {expected} there",
                flat(clause),
                claim.says
            );
            if !found.contains(&line) {
                found.push(line);
            }
        }
    }
}

/// A clause on one line, for a message.
fn flat(clause: &str) -> String {
    let line = clause.split_whitespace().collect::<Vec<_>>().join(" ");
    line.trim_end_matches('.').to_string()
}

/// Lowercase words: letters, digits and `_`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn engines_named(words: &[String]) -> Vec<EngineKind> {
    let mut named = Vec::new();
    for word in words {
        let engine = if word.starts_with("postgres") {
            Some(EngineKind::Postgres)
        } else if word.starts_with("sqlite") {
            Some(EngineKind::Sqlite)
        } else {
            CODES
                .iter()
                .find(|(code, _, _)| word.starts_with(code))
                .map(|(_, e, _)| *e)
        };
        if let Some(engine) = engine.filter(|e| !named.contains(e)) {
            named.push(engine);
        }
    }
    named
}

/// Where `phrase` starts in `words`, each time, on words no earlier phrase took.
fn find(words: &[String], phrase: &str, used: &mut [bool]) -> Vec<usize> {
    let phrase: Vec<&str> = phrase.split(' ').collect();
    let mut starts = Vec::new();
    for start in 0..words.len().saturating_sub(phrase.len() - 1) {
        let range = start..start + phrase.len();
        if used[range.clone()].iter().any(|u| *u) {
            continue;
        }
        if words[range.clone()]
            .iter()
            .zip(&phrase)
            .all(|(w, p)| w == p)
        {
            used[range].iter_mut().for_each(|u| *u = true);
            starts.push(start);
        }
    }
    starts
}

/// The levels a clause names, in groups (`repeatable read and serializable` is one), each with
/// the word position where it starts and ends; `below X` and `above X` stand for the levels
/// beyond X.
fn level_groups(words: &[String]) -> Vec<(usize, usize, Vec<Level>)> {
    let mut groups: Vec<(usize, usize, Vec<Level>)> = Vec::new();
    let mut index = 0;
    while index < words.len() {
        let Some(level) = Level::ALL.into_iter().find(|l| {
            let name: Vec<String> = l.to_string().split(' ').map(String::from).collect();
            words[index..].starts_with(&name)
        }) else {
            index += 1;
            continue;
        };
        let end = index + level.to_string().split(' ').count();
        let before = index.checked_sub(1).map(|i| words[i].as_str());
        let levels: Vec<Level> = match before {
            Some("below") => Level::ALL.into_iter().filter(|l| *l < level).collect(),
            Some("above") => Level::ALL.into_iter().filter(|l| *l > level).collect(),
            _ => vec![level],
        };
        let joined = groups.last().is_some_and(|(_, last_end, _)| {
            words[*last_end..index]
                .iter()
                .all(|w| matches!(w.as_str(), "and" | "or" | "at"))
        });
        match groups.last_mut() {
            Some((_, last_end, last)) if joined => {
                *last_end = end;
                last.extend(levels);
            }
            _ => groups.push((index, end, levels)),
        }
        index = end;
    }
    groups
}

/// The group that a phrase at `at` speaks of: the last one before it, else the first after.
fn nearest(groups: &[(usize, usize, Vec<Level>)], at: usize) -> Option<&[Level]> {
    groups
        .iter()
        .rev()
        .find(|(_, end, _)| *end <= at)
        .or_else(|| groups.iter().find(|(start, _, _)| *start > at))
        .map(|(_, _, levels)| levels.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCKING: Expected = Expected::Prevented(Mechanism::Blocking);
    const ABORT: Expected = Expected::Prevented(Mechanism::Abort);
    const RETRY: Expected = Expected::Prevented(Mechanism::Retry);

    /// PostgreSQL: `pg` from read uncommitted to serializable; SQLite: abort everywhere.
    fn check(text: &str, pg: [Expected; 4], expected: &[&str]) {
        let table = |engine: EngineKind, level: Level| {
            let index = Level::ALL.iter().position(|l| *l == level).unwrap_or(0);
            Some(match engine {
                EngineKind::Postgres => pg[index],
                _ => ABORT,
            })
        };
        let found = check_text(text, &[EngineKind::Postgres, EngineKind::Sqlite], &table);
        assert_eq!(found, expected, "{text}");
    }

    const ROW_LOCK: [Expected; 4] = [BLOCKING, BLOCKING, ABORT, ABORT];

    #[test]
    fn a_claim_that_agrees_with_its_levels_passes() {
        check(
            "On PostgreSQL at READ COMMITTED the second UPDATE waits, so no retry loop; at \
             REPEATABLE READ and SERIALIZABLE it is refused with 40001.",
            ROW_LOCK,
            &[],
        );
        check(
            "On PostgreSQL nothing is refused below REPEATABLE READ.",
            [Expected::Anomaly, Expected::Anomaly, RETRY, RETRY],
            &[],
        );
    }

    #[test]
    fn a_claim_against_its_level_is_found() {
        check(
            "On PostgreSQL at SERIALIZABLE there is no retry loop.",
            ROW_LOCK,
            &[
                "\"On PostgreSQL at SERIALIZABLE there is no retry loop\" says nothing is \
               refused at serializable, but postgres expects prevented by abort there",
            ],
        );
        check(
            "On PostgreSQL nothing is refused below SERIALIZABLE.",
            ROW_LOCK,
            &[
                "\"On PostgreSQL nothing is refused below SERIALIZABLE\" says nothing is refused \
                 at repeatable read, but postgres expects prevented by abort there",
            ],
        );
    }

    #[test]
    fn the_old_serializable_retry_sentence_is_found_on_sqlite() {
        let found = check_text(
            "Below REPEATABLE READ nothing is refused, so retrying changes nothing.",
            &[EngineKind::Sqlite],
            &|_, level| {
                Some(if level == Level::ReadUncommitted {
                    ABORT
                } else {
                    RETRY
                })
            },
        );
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn a_sentence_that_names_no_engine_is_about_every_engine() {
        check(
            "At READ COMMITTED the second UPDATE waits, with no retry loop.",
            ROW_LOCK,
            &[
                "\"At READ COMMITTED the second UPDATE waits, with no retry loop\" says nothing \
               is refused at read committed, but sqlite expects prevented by abort there",
            ],
        );
    }

    #[test]
    fn a_code_without_a_level_must_be_possible_somewhere() {
        check(
            "It fails with 40001 (a serialization failure).",
            ROW_LOCK,
            &[],
        );
        check(
            "The database refuses it (23514 on PostgreSQL).",
            ROW_LOCK,
            &[
                "\"The database refuses it (23514 on PostgreSQL)\" names 23514 but no level on \
               postgres expects that",
            ],
        );
    }

    #[test]
    fn a_claim_speaks_of_the_levels_nearest_it() {
        check(
            "A worker that waited moves on only at READ COMMITTED, while at REPEATABLE READ it \
             is refused (on PostgreSQL).",
            ROW_LOCK,
            &[],
        );
    }

    #[test]
    fn every_builtin_fix_text_agrees_with_its_expectations() {
        let found: Vec<String> = Scenario::builtins()
            .iter()
            .flat_map(contradictions)
            .collect();
        assert!(found.is_empty(), "{}", found.join("\n"));
    }
}
