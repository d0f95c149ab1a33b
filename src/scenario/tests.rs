use super::*;

const BASE: &str = r#"id = "tiny"
title = "Tiny"
anomaly = "lost update"
code = "P4"
story = "Alice and John."
setup = "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);"

[[session]]
name = "alice"
[[session.step]]
name = "begin"
sql = "BEGIN"
say = "Alice begins"
[[session.step]]
name = "read"
sql = "SELECT v FROM t"
say = "Alice reads"
[[session.step]]
name = "write"
sql = "UPDATE t SET v = ${read.v} + 1"
say = "Alice writes"

[[session]]
name = "john"
[[session.step]]
name = "read"
sql = "SELECT v FROM t"
say = "John reads"

[[interleaving]]
name = "one"
steps = ["alice.begin", "alice.read", "john.read", "alice.write"]

[outcome]
final = "SELECT v FROM t"
anomaly_if = "final.v != alice.read.v + 1"
anomaly = "v is {final.v}"
prevented = "v is {final.v}"

[expect.postgres]
read-committed = "anomaly"
serializable = "prevented by abort"
"#;

/// Parses BASE with `from` replaced by `to` and checks the error text.
fn check_error(from: &str, to: &str, expected: &str) {
    assert!(BASE.contains(from), "BASE has no `{from}`");
    let text = BASE.replacen(from, to, 1);
    let error = Scenario::parse(&text, "tiny.toml").expect_err("should not parse");
    assert_eq!(error.to_string(), expected);
}

#[test]
fn parses_a_valid_scenario() {
    let scenario = Scenario::parse(BASE, "tiny.toml").unwrap();
    assert_eq!(scenario.sessions.len(), 2);
    assert_eq!(scenario.interleavings[0].steps.len(), 4);
    let write = scenario.step(StepId {
        session: 0,
        step: 2,
    });
    assert_eq!(write.sql.holes().next().unwrap().step, 1);
    assert_eq!(
        scenario.expected(EngineKind::Postgres, Level::Serializable),
        Some(&Expected::Prevented(crate::outcome::Mechanism::Abort))
    );
    assert_eq!(
        scenario.expected(EngineKind::Sqlite, Level::Serializable),
        None
    );
}

#[test]
fn every_builtin_is_valid_and_expects_every_level_on_both_engines() {
    for scenario in Scenario::builtins() {
        for engine in [EngineKind::Postgres, EngineKind::Sqlite] {
            for level in Level::ALL {
                assert!(
                    scenario.expected(engine, level).is_some(),
                    "{} has no expectation for {engine} {level}",
                    scenario.id
                );
            }
        }
    }
}

#[test]
fn unknown_step_in_interleaving_suggests_the_closest() {
    check_error(
        r#""john.read", "alice.write"]"#,
        r#""john.raed", "alice.write"]"#,
        "tiny.toml:32:39: session `john` has no step `raed`; did you mean `read`?",
    );
}

#[test]
fn unknown_session_in_interleaving() {
    check_error(
        r#"steps = ["alice.begin""#,
        r#"steps = ["alicia.begin""#,
        "tiny.toml:32:10: no session `alicia`; did you mean `alice`?",
    );
}

#[test]
fn steps_out_of_their_session_order() {
    check_error(
        r#"["alice.begin", "alice.read","#,
        r#"["alice.read", "alice.begin","#,
        "tiny.toml:32:10: `alice.read` comes before `alice.begin`: steps must keep their session's order",
    );
}

#[test]
fn a_step_left_out_of_the_interleaving() {
    check_error(
        r#", "alice.write"]"#,
        "]",
        "tiny.toml:31:8: interleaving `one` leaves out `alice.write`: it must run every step once",
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_place() {
    let error = Scenario::parse(
        &BASE.replacen("say = \"John reads\"", "said = \"x\"", 1),
        "t.toml",
    )
    .unwrap_err();
    assert_eq!((error.line, error.column), (28, 1), "{error}");
    assert!(error.message.contains("unknown field `said`"), "{error}");
}

#[test]
fn malformed_toml_names_line_and_column() {
    let error = Scenario::parse(
        &BASE.replacen("title = \"Tiny\"", "title = Tiny", 1),
        "t.toml",
    )
    .unwrap_err();
    assert_eq!((error.line, error.column), (2, 9), "{error}");
}

#[test]
fn sql_holes_must_name_an_earlier_step() {
    check_error(
        "${read.v} + 1",
        "${write.v} + 1",
        "tiny.toml:20:27: `write` comes later in session `alice`; a step can use only values read before it",
    );
}

#[test]
fn conditions_are_parsed_and_resolved() {
    check_error(
        "final.v != alice.read.v + 1",
        "final.v != alice.red.v + 1",
        "tiny.toml:36:14: `alice.red.v`: session `alice` has no step `red`; did you mean `read`?",
    );
    check_error(
        "final.v != alice.read.v + 1",
        "final.v !! 1",
        "tiny.toml:36:23: unexpected character `!`",
    );
}

#[test]
fn bad_expectations() {
    check_error(
        "read-committed = \"anomaly\"",
        "read-comitted = \"anomaly\"",
        "tiny.toml:41:1: unknown level `read-comitted`; did you mean `read-committed`?",
    );
    check_error(
        "serializable = \"prevented by abort\"",
        "serializable = \"prevented by luck\"",
        "tiny.toml:42:16: expected `anomaly` or `prevented by` one of blocking, abort, consistent-read, retry, guard; found `prevented by luck`",
    );
}

#[test]
fn unknown_builtin_suggests_the_closest() {
    let error = Scenario::load("writeskew").unwrap_err();
    assert_eq!(
        error.to_string(),
        "no scenario named `writeskew`; did you mean `write-skew`?; `anomalies list` shows them all"
    );
}
