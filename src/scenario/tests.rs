use super::*;
use crate::scenario::expected::{Expected, Mechanism};

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
        Some(&Expected::Prevented(
            crate::scenario::expected::Mechanism::Abort
        ))
    );
    assert_eq!(
        scenario.expected(EngineKind::Sqlite, Level::Serializable),
        None
    );
}

#[test]
fn every_builtin_is_valid_and_expects_every_level_on_both_engines() {
    for scenario in Scenario::builtins() {
        assert!(
            !scenario.plain.is_empty(),
            "{} has no plain words",
            scenario.id
        );
        assert!(
            !scenario.formal.is_empty(),
            "{} has no formal names",
            scenario.id
        );
        let variants = std::iter::once(&scenario).chain(scenario.fixes.iter().map(|f| &*f.variant));
        for variant in variants {
            // A multi-master scenario runs on a Galera cluster: MariaDB's expectations.
            if let crate::scenario::Topology::MultiMaster(_) = variant.topology {
                for level in Level::ALL {
                    assert!(
                        variant.expected(EngineKind::Mariadb, level).is_some(),
                        "{} has no expectation for mariadb {level}",
                        variant.label()
                    );
                }
            }
            for engine in [EngineKind::Postgres, EngineKind::Sqlite] {
                // A scenario of several nodes runs where the engine can give them: PostgreSQL.
                let unavailable = variant
                    .applied
                    .as_ref()
                    .is_some_and(|fix| fix.unavailable_on(engine).is_some())
                    || match variant.topology {
                        crate::scenario::Topology::Single => false,
                        crate::scenario::Topology::PrimaryStandby => engine != EngineKind::Postgres,
                        crate::scenario::Topology::MultiMaster(_) => true,
                    };
                for level in Level::ALL {
                    assert!(
                        unavailable || variant.expected(engine, level).is_some(),
                        "{} has no expectation for {engine} {level}",
                        variant.label()
                    );
                }
            }
        }
    }
}

const FIXED: &str = r#"
id = "tiny"
title = "t"
anomaly = "a"
code = "c"
story = "s"
setup = "CREATE TABLE t (v INTEGER)"

[[session]]
name = "alice"
[[session.step]]
name = "begin"
sql = "BEGIN"
say = "."
[[session.step]]
name = "read"
sql = "SELECT v FROM t"
say = "."
[[session.step]]
name = "write"
sql = "UPDATE t SET v = ${read.v} + 1"
say = "."
[[session.step]]
name = "commit"
sql = "COMMIT"
say = "."

[[interleaving]]
name = "only"
steps = ["alice.begin", "alice.read", "alice.write", "alice.commit"]

[outcome]
anomaly_if = "alice.read.v = 1"
anomaly = "a"
prevented = "p"

[expect.postgres]
serializable = "anomaly"

[[fix]]
id = "cas"
title = "compare and swap"
how = "h"
prefer = "p"
level = "serializable"
setup = "CREATE TABLE u (v INTEGER)"
unavailable.sqlite = "no"

[[fix.step]]
step = "alice.write"
sql = "UPDATE t SET v = ${read.v} + 1 WHERE v = ${read.v}"
no_rows = "retry"

[[fix.step]]
step = "alice.begin"
remove = true

[[fix.session]]
name = "alice"
retry_on = ["serialization-failure"]
attempts = 5

[fix.expect.postgres]
serializable = "prevented by retry"
"#;

/// A fix may tell its own story: the variant's title and story replace the scenario's, which
/// tell of the anomaly the fix prevents; without them the scenario's stay.
#[test]
fn a_fix_may_carry_its_own_title_and_story() {
    let base = Scenario::parse(FIXED, "tiny.toml").unwrap();
    let own = FIXED.replacen(
        "title = \"compare and swap\"\n",
        "title = \"compare and swap\"\nstory_title = \"A write that checks\"\nstory = \"Alice writes only if nothing changed.\"\n",
        1,
    );
    let fixed = Scenario::parse(&own, "tiny.toml")
        .unwrap()
        .with_fix("cas")
        .unwrap();
    assert_eq!(fixed.title, "A write that checks");
    assert_eq!(fixed.story, "Alice writes only if nothing changed.");
    assert_eq!(fixed.applied.as_ref().unwrap().title, "compare and swap");
    let plain = base.with_fix("cas").unwrap();
    assert_eq!((plain.title, plain.story), (base.title, base.story));
}

/// The built-in fixes that prevent what their scenario's title says happened tell their own
/// story; those that still show the anomaly (redis-setnx, redis-safe-release) keep it.
#[test]
fn builtin_fixes_that_prevent_the_anomaly_do_not_keep_a_title_that_says_it_happened() {
    let own = [
        ("job-queue", "for-update"),
        ("job-queue", "skip-locked"),
        ("distributed-lock", "setnx"),
        ("distributed-lock", "advisory"),
        ("distributed-lock", "lease-fencing"),
        ("distributed-lock", "redis-fencing"),
    ];
    for (id, fix) in own {
        let base = Scenario::load(id).unwrap();
        let fixed = base.with_fix(fix).unwrap();
        assert_ne!(fixed.title, base.title, "{id} --fix {fix}");
        assert_ne!(fixed.story, base.story, "{id} --fix {fix}");
        assert!(
            !fixed.story.contains("paid three times"),
            "{id} --fix {fix}"
        );
        assert!(
            !fixed.story.contains("pays the bill again"),
            "{id} --fix {fix}"
        );
    }
    for fix in ["redis-setnx", "redis-safe-release"] {
        let base = Scenario::load("distributed-lock").unwrap();
        assert_eq!(base.with_fix(fix).unwrap().title, base.title);
    }
}

#[test]
fn a_fix_changes_only_what_it_names() {
    let scenario = Scenario::parse(FIXED, "tiny.toml").unwrap();
    let fixed = scenario.with_fix("cas").unwrap();
    assert_eq!(fixed.label(), "tiny --fix cas");
    assert_eq!(
        fixed.setup,
        "CREATE TABLE t (v INTEGER)\nCREATE TABLE u (v INTEGER)"
    );
    let alice = &fixed.sessions[0];
    let names: Vec<&str> = alice.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["read", "write", "commit"]);
    assert_eq!(alice.steps[1].no_rows, Some(NoRows::Retry));
    assert_eq!(alice.steps[1].say, ".");
    assert_eq!(alice.retry.on, [RetryOn::SerializationFailure]);
    assert_eq!(alice.retry.attempts, 5);
    assert_eq!(fixed.interleavings[0].steps.len(), 3);
    assert_eq!(
        fixed.expected(EngineKind::Postgres, Level::Serializable),
        Some(&Expected::Prevented(Mechanism::Retry))
    );
    let info = fixed.applied.as_ref().unwrap();
    assert_eq!(info.level, Some(Level::Serializable));
    assert_eq!(info.unavailable_on(EngineKind::Sqlite), Some("no"));
    // The scenario itself is untouched.
    assert_eq!(scenario.sessions[0].steps.len(), 4);
    assert_eq!(
        scenario.expected(EngineKind::Postgres, Level::Serializable),
        Some(&Expected::Anomaly)
    );
    assert_eq!(
        scenario.with_fix("cass").unwrap_err(),
        "scenario tiny has no fix `cass` (did you mean `cas`?); it offers: cas"
    );
}

#[test]
fn errors_in_fixes_name_their_place() {
    let error = |from: &str, to: &str| {
        Scenario::parse(&FIXED.replace(from, to), "tiny.toml")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("step = \"alice.write\"", "step = \"alice.wirte\""),
        "tiny.toml:50:8: session `alice` has no step `wirte`; did you mean `write`?"
    );
    assert_eq!(
        error("no_rows = \"retry\"", "no_rows = \"again\""),
        "tiny.toml:52:11: no_rows must be `retry`, `give-up` or `go-on`, found `again`; known: retry, give-up, go-on"
    );
    assert_eq!(
        error("[\"serialization-failure\"]", "[\"serialisation-failure\"]"),
        "tiny.toml:60:13: cannot retry on `serialisation-failure`; did you mean `serialization-failure`?"
    );
    assert_eq!(
        error("[fix.expect.postgres]", "[fix.expect.sqlite]"),
        "tiny.toml:41:6: fix `cas` is unavailable on sqlite yet expects an outcome there"
    );
    assert_eq!(
        error("WHERE v = ${read.v}", "WHERE v = ${raed.v}"),
        "tiny.toml:51:51: session `alice` has no step `raed`; did you mean `read`?"
    );
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
        "tiny.toml:36:26: `alice.red`: session `alice` has no step `red`; did you mean `read`?",
    );
    check_error(
        "final.v != alice.read.v + 1",
        "final.v !! 1",
        "tiny.toml:36:23: unexpected character `!`",
    );
}

#[test]
fn every_name_a_condition_or_witness_uses_is_resolved_where_it_is_written() {
    check_error(
        "final.v != alice.read.v + 1",
        "failed(alice.writ) or committed(jon)",
        "tiny.toml:36:22: `alice.writ`: session `alice` has no step `writ`; did you mean `write`?",
    );
    check_error(
        "final.v != alice.read.v + 1",
        "failed(alice.write) or committed(jon)",
        "tiny.toml:36:48: committed(jon): no session `jon`; did you mean `john`?",
    );
    check_error(
        "v is {final.v}\"\nprevented",
        "v is {final.v}, {count(jon.read)}\"\nprevented",
        "tiny.toml:37:35: `jon.read`: no session `jon`; did you mean `john`?",
    );
    check_error(
        "final.v != alice.read.v + 1",
        "count(alice.read.v) = 1",
        "tiny.toml:36:21: count(...) counts the rows of a whole result, like count(alice.read), \
         but this is `alice.read.v`, one value",
    );
    check_error(
        "final.v != alice.read.v + 1",
        "final.q.v = 1",
        "tiny.toml:36:15: `final.q.v`: the final query is not named (final = \"...\"), so its \
         columns are final.<column>; name queries in [outcome.final] to write \
         final.<query>.<column>",
    );
}

#[test]
fn final_is_a_query_or_a_table_of_them() {
    check_error(
        "final = \"SELECT v FROM t\"",
        "final = 3",
        "tiny.toml:35:9: `final` is a query (final = \"SELECT ...\") or a table of queries by \
         name ([outcome.final])",
    );
}

#[test]
fn final_queries_by_name() {
    let named = "[outcome.final]\nvalues = \"SELECT v FROM t\"\ntotal = \"SELECT sum(v) AS sum FROM t\"\n\n[outcome]";
    let text = BASE
        .replacen("[outcome]\nfinal = \"SELECT v FROM t\"", named, 1)
        .replacen(
            "final.v != alice.read.v + 1",
            "final.values = rows(2) and final.total.sum = 2",
            1,
        )
        .replace("{final.v}", "{final.values}");
    let scenario = Scenario::parse(&text, "tiny.toml").unwrap();
    assert_eq!(scenario.decision.final_query, None);
    let names: Vec<&str> = scenario
        .decision
        .named_finals
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["values", "total"]);
    let error = Scenario::parse(
        &text.replacen("final.total.sum", "final.totl.sum", 1),
        "t.toml",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.toml:39:42: `final.totl.sum`: [outcome.final] has no query `totl`; did you mean `total`?"
    );
    let error =
        Scenario::parse(&text.replacen("final.values =", "final =", 1), "t.toml").unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.toml:39:15: `final` names no query: [outcome.final] has values, total; write final.values"
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
        "tiny.toml:42:16: expected `anomaly` or `prevented by` one of blocking, abort, constraint, consistent-read, retry, guard, skip; found `prevented by luck`",
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
