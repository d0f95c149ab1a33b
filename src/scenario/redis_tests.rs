//! Redis steps in scenario files, and the fix forms the Redis fixes need: new steps, their own
//! interleavings, their own witnesses.

use super::*;

const LOCKED: &str = r#"id = "locked"
title = "t"
anomaly = "a"
code = "c"
story = "s"
setup = "CREATE TABLE t (v INTEGER)"

[[session]]
name = "alice"
[[session.step]]
name = "lock"
redis = "SET lock alice NX PX 50"
say = "Alice locks"
no_rows = "give-up"
[[session.step]]
name = "write"
sql = "UPDATE t SET v = 1"
say = "Alice writes"

[[session]]
name = "john"
[[session.step]]
name = "wait"
until = "lock expired"
say = "John waits"
[[session.step]]
name = "write"
sql = "UPDATE t SET v = 2"
say = "John writes"

[[interleaving]]
name = "one"
steps = ["alice.lock", "john.wait", "alice.write", "john.write"]

[outcome]
final = "SELECT v FROM t"
anomaly_if = "final.v = 1"
anomaly = "v is {final.v}"
prevented = "v is {final.v}"

[[fix]]
id = "token"
title = "t"
how = "h"
prefer = "p"

[[fix.step]]
step = "alice.token"
after = "alice.lock"
redis = "INCR fence"
say = "Alice takes a token"

[[fix.step]]
step = "john.wait"
sql = "SELECT 1"

[[fix.interleaving]]
name = "later"
steps = ["john.wait", "alice.lock", "alice.token", "alice.write", "john.write"]

[fix.outcome]
anomaly = "fenced: {final.v}"
"#;

fn error(from: &str, to: &str) -> String {
    assert!(LOCKED.contains(from), "no `{from}`");
    Scenario::parse(&LOCKED.replacen(from, to, 1), "locked.toml")
        .expect_err("should not parse")
        .to_string()
}

#[test]
fn steps_go_to_the_database_or_to_redis() {
    let scenario = Scenario::parse(LOCKED, "locked.toml").unwrap();
    assert!(scenario.uses_redis());
    let kinds: Vec<StepKind> = scenario
        .sessions
        .iter()
        .flat_map(|s| &s.steps)
        .map(|s| s.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            StepKind::Redis,
            StepKind::Sql,
            StepKind::Until,
            StepKind::Sql
        ]
    );
    assert_eq!(until_key("lock expired"), Some("lock"));
    assert_eq!(until_key("  bill-lock   expired "), Some("bill-lock"));
    assert_eq!(until_key("lock gone"), None);
    assert_eq!(until_key("expired"), None);
    assert!(!Scenario::load("lost-update").unwrap().uses_redis());
}

#[test]
fn a_step_sends_exactly_one_thing() {
    assert_eq!(
        error("redis = \"SET lock alice NX PX 50\"", "sql = \"SELECT 1\"\nredis = \"GET lock\""),
        "locked.toml:13:9: step `alice.lock` has more than one of `sql`, `redis`, `until` and `replica`; a step goes to one place"
    );
    assert_eq!(
        error("redis = \"SET lock alice NX PX 50\"\n", ""),
        "locked.toml:11:8: step `alice.lock` sends nothing: give it `sql`, `redis`, `until` or `replica`"
    );
    assert_eq!(
        error("until = \"lock expired\"", "until = \"lock gone\""),
        "locked.toml:24:9: `until` reads `KEY expired` (the step waits until Redis has no KEY), found `lock gone`"
    );
    assert_eq!(
        error("no_rows = \"give-up\"", "sql_on.sqlite = \"SELECT 1\""),
        "locked.toml:14:8: step `alice.lock` sends no SQL, so it has no `sql_on`"
    );
    assert_eq!(
        error("redis = \"SET lock alice NX PX 50\"", "redis = \"  \""),
        "locked.toml:12:9: step `alice.lock` has an empty Redis command"
    );
}

#[test]
fn a_fix_adds_steps_and_brings_its_own_order_and_witness() {
    let scenario = Scenario::parse(LOCKED, "locked.toml").unwrap();
    let fixed = scenario.with_fix("token").unwrap();
    let alice: Vec<&str> = fixed.sessions[0]
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(alice, ["lock", "token", "write"]);
    assert_eq!(fixed.sessions[0].steps[1].kind, StepKind::Redis);
    assert_eq!(fixed.sessions[1].steps[0].kind, StepKind::Sql);
    let order: Vec<String> = fixed.interleavings[0]
        .steps
        .iter()
        .map(|id| fixed.step_name(*id))
        .collect();
    assert_eq!(fixed.interleavings[0].name, "later");
    assert_eq!(
        order,
        [
            "john.wait",
            "alice.lock",
            "alice.token",
            "alice.write",
            "john.write"
        ]
    );
    // The scenario's own witness for prevention stays; the anomaly's is the fix's.
    let facts = format!("{:?}", fixed.decision.anomaly_witness);
    assert!(facts.contains("fenced"), "{facts}");
}

#[test]
fn a_new_step_joins_the_session_it_follows_and_is_new() {
    assert_eq!(
        error("step = \"alice.token\"", "step = \"john.token\""),
        "locked.toml:48:8: `john.token` is added after `alice.lock`, a step of session `alice`: a new step joins the session it follows"
    );
    assert_eq!(
        error("step = \"alice.token\"", "step = \"alice.write\""),
        "locked.toml:48:8: `alice.write` already exists; without `after` the fix changes it"
    );
    assert_eq!(
        error("say = \"Alice takes a token\"\n", ""),
        "locked.toml:48:8: the new step `alice.token` needs its narration, `say`"
    );
    assert_eq!(
        error("after = \"alice.lock\"", "after = \"alice.lokc\""),
        "locked.toml:49:9: session `alice` has no step `lokc`; did you mean `lock`?"
    );
}
