//! A scenario resolved for one engine: each step's SQL and the setup as that engine runs them,
//! so that the runner, the judge and the renderers see one SQL text per step.

use super::{EngineKind, Scenario, Step};

impl Scenario {
    /// The scenario as it runs on `engine`: `setup_on.<engine>` in place of `setup`, and each
    /// step's `sql_on.<engine>` in place of its `sql`; no variants are left. Its fixes' variants
    /// are resolved too.
    pub fn for_engine(&self, engine: EngineKind) -> Scenario {
        let mut resolved = self.clone();
        if let Some(setup) = variant(&self.setup_on, engine) {
            resolved.setup = setup.clone();
        }
        resolved.setup_on.clear();
        for session in &mut resolved.sessions {
            for step in &mut session.steps {
                resolve_step(step, engine);
            }
        }
        for fix in &mut resolved.fixes {
            *fix.variant = fix.variant.for_engine(engine);
        }
        resolved
    }
}

fn resolve_step(step: &mut Step, engine: EngineKind) {
    if let Some(sql) = variant(&step.sql_on, engine) {
        step.sql = sql.clone();
    }
    step.sql_on.clear();
}

fn variant<T>(variants: &[(EngineKind, T)], engine: EngineKind) -> Option<&T> {
    variants
        .iter()
        .find(|(e, _)| *e == engine)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use crate::scenario::{EngineKind, Scenario, StepId};

    const TEXT: &str = r#"id = "locks"
title = "t"
anomaly = "a"
code = "c"
story = "s"
setup = "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);"
setup_on.sqlite = "CREATE TABLE t (id INTEGER PRIMARY KEY, v INT);"

[[session]]
name = "alice"
[[session.step]]
name = "begin"
sql = "BEGIN"
say = "."
[[session.step]]
name = "lock"
sql = "SELECT v FROM t WHERE id = 1 FOR UPDATE"
sql_on.sqlite = "SELECT v FROM t WHERE id = 1"
say = "."
[[session.step]]
name = "write"
sql = "UPDATE t SET v = ${lock.v} + 1"
sql_on.postgres = "UPDATE t SET v = ${lock.v} + 2"
say = "."

[[interleaving]]
name = "only"
steps = ["alice.begin", "alice.lock", "alice.write"]

[outcome]
anomaly_if = "alice.lock.v = 1"
anomaly = "a"
prevented = "p"

[[fix]]
id = "more"
title = "t"
how = "h"
prefer = "p"
setup = "CREATE TABLE u (v INTEGER);"
setup_on.postgres = "CREATE TABLE u (v bigint);"

[[fix.step]]
step = "alice.lock"
sql_on.postgres = "SELECT v FROM t WHERE id = 1 FOR SHARE"

[[fix.step]]
step = "alice.write"
sql = "UPDATE t SET v = 0"
"#;

    fn parsed() -> Scenario {
        Scenario::parse(TEXT, "locks.toml").unwrap()
    }

    fn sql(scenario: &Scenario, step: usize) -> String {
        scenario
            .step(StepId { session: 0, step })
            .sql
            .render(|hole| format!("<{}.{}>", hole.step_name, hole.column))
    }

    /// Parses TEXT with `from` replaced by `to` and checks the error text.
    fn check_error(from: &str, to: &str, expected: &str) {
        assert!(TEXT.contains(from), "TEXT has no `{from}`");
        let error = Scenario::parse(&TEXT.replacen(from, to, 1), "locks.toml").unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn each_engine_runs_its_own_sql_and_setup() {
        let sqlite = parsed().for_engine(EngineKind::Sqlite);
        assert_eq!(sql(&sqlite, 1), "SELECT v FROM t WHERE id = 1");
        assert_eq!(sql(&sqlite, 2), "UPDATE t SET v = <lock.v> + 1");
        assert_eq!(
            sqlite.setup,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INT);"
        );
        let postgres = parsed().for_engine(EngineKind::Postgres);
        assert_eq!(sql(&postgres, 1), "SELECT v FROM t WHERE id = 1 FOR UPDATE");
        assert_eq!(sql(&postgres, 2), "UPDATE t SET v = <lock.v> + 2");
        assert_eq!(
            postgres.setup,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);"
        );
        assert!(postgres.setup_on.is_empty());
        assert!(postgres.sessions[0]
            .steps
            .iter()
            .all(|s| s.sql_on.is_empty()));
    }

    #[test]
    fn a_fix_appends_its_setup_per_engine_and_new_sql_drops_the_old_variants() {
        let fixed = parsed().with_fix("more").unwrap();
        let postgres = fixed.for_engine(EngineKind::Postgres);
        assert_eq!(
            postgres.setup,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);\nCREATE TABLE u (v bigint);"
        );
        assert_eq!(sql(&postgres, 1), "SELECT v FROM t WHERE id = 1 FOR SHARE");
        assert_eq!(sql(&postgres, 2), "UPDATE t SET v = 0");
        let sqlite = fixed.for_engine(EngineKind::Sqlite);
        assert_eq!(
            sqlite.setup,
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v INT);\nCREATE TABLE u (v INTEGER);"
        );
        assert_eq!(sql(&sqlite, 1), "SELECT v FROM t WHERE id = 1");
        assert_eq!(sql(&sqlite, 2), "UPDATE t SET v = 0");
        // Resolving the scenario resolves its fixes too.
        let via_scenario = parsed().for_engine(EngineKind::Sqlite);
        let variant = via_scenario.with_fix("more").unwrap();
        assert_eq!(variant.setup, sqlite.setup);
    }

    #[test]
    fn an_unknown_engine_suggests_the_closest() {
        check_error(
            "sql_on.sqlite =",
            "sql_on.sqlit =",
            "locks.toml:18:8: unknown engine `sqlit`; did you mean `sqlite`?",
        );
        check_error(
            "setup_on.sqlite",
            "setup_on.mysql",
            "locks.toml:7:10: unknown engine `mysql`; did you mean `mariadb`? (it covers MySQL too)",
        );
        check_error(
            "setup_on.postgres",
            "setup_on.postgre",
            "locks.toml:41:10: unknown engine `postgre`; did you mean `postgres`?",
        );
        check_error(
            "sql_on.postgres = \"SELECT v FROM t WHERE id = 1 FOR SHARE\"",
            "sql_on.postgress = \"SELECT v FROM t WHERE id = 1 FOR SHARE\"",
            "locks.toml:45:8: unknown engine `postgress`; did you mean `postgres`?",
        );
    }

    #[test]
    fn holes_in_a_variant_are_checked_like_the_sql() {
        check_error(
            "${lock.v} + 2",
            "${lokc.v} + 2",
            "locks.toml:23:39: session `alice` has no step `lokc`; did you mean `lock`?",
        );
        check_error(
            "WHERE id = 1\"\nsay",
            "WHERE id = ${write.v}\"\nsay",
            "locks.toml:18:47: `write` comes later in session `alice`; a step can use only values read before it",
        );
    }

    #[test]
    fn a_removed_step_takes_no_variant() {
        check_error(
            "step = \"alice.write\"\nsql = \"UPDATE t SET v = 0\"",
            "step = \"alice.write\"\nremove = true\nsql_on.sqlite = \"UPDATE t SET v = 0\"",
            "locks.toml:48:8: `alice.write` is removed; it can't also be changed",
        );
    }
}
