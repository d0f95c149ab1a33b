//! A scenario reaches only its own data: on a user's server, each run's setup, steps and final
//! query run as a login role of the run's own, which owns the run's schema and nothing else.
//! Its attempts on the user's data fail with the `privilege` kind, the user's data is as it
//! was, and the role is gone when the run ends, is interrupted or (after the next run) killed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{anomalies, open_tempdir, stderr, stdout};
use crate::user_server::UserServer;

/// The run's roles and schemas left on the server (the cluster's own user is `anomalies`).
pub(crate) const OUR_ROLES: &str =
    "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'anomalies\\_%' ORDER BY 1";
pub(crate) const OUR_SCHEMAS: &str =
    "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%' ORDER BY 1";
const BILLING: &str =
    "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM billing.invoices";

/// A scenario of one single-step session per attempt on the user's data, with `setup` and a
/// final query `final_sql`, and its own table `mine`.
fn intruder(setup: &str, attempts: &[(&str, &str)], final_sql: &str) -> String {
    let mut text = format!(
        "id = \"intruder\"\ntitle = \"A scenario that reaches outside its schema\"\n\
         anomaly = \"none\"\ncode = \"-\"\nstory = \"Each session reaches for the user's data.\"\n\
         setup = \"\"\"\nCREATE TABLE mine (id INTEGER PRIMARY KEY, n INTEGER);\n\
         INSERT INTO mine VALUES (1, 0);\n{setup}\n\"\"\"\n"
    );
    for (name, sql) in attempts {
        text.push_str(&format!(
            "\n[[session]]\nname = \"{name}\"\n[[session.step]]\nname = \"try\"\n\
             sql = \"{sql}\"\nsay = \"\"\n"
        ));
    }
    let steps: Vec<String> = attempts
        .iter()
        .map(|(name, _)| format!("\"{name}.try\""))
        .collect();
    text.push_str(&format!(
        "\n[[interleaving]]\nname = \"each\"\nsteps = [{}]\n\n[outcome]\n\
         final = \"{final_sql}\"\nanomaly_if = \"final.n != 0\"\n\
         anomaly = \"{{final.n}}\"\nprevented = \"{{final.n}}\"\n",
        steps.join(", ")
    ));
    text
}

/// Each session's attempt on the user's data.
const ATTEMPTS: &[(&str, &str)] = &[
    ("reader", "SELECT * FROM billing.invoices"),
    ("writer", "UPDATE billing.invoices SET amount = 0"),
    ("dropper", "DROP SCHEMA billing CASCADE"),
    ("planter", "CREATE TABLE public.planted (a INTEGER)"),
    ("promoter", "ALTER ROLE CURRENT_USER SUPERUSER"),
    ("creator", "CREATE ROLE intruder LOGIN"),
    ("snoop", "SELECT pg_catalog.pg_read_file('PG_VERSION')"),
];

/// The user's data: `billing.invoices`, made afresh, and a role `keeper` that may create roles
/// and may do anything to billing, but is no superuser.
fn users_data(server: &UserServer) {
    server.execute("DROP SCHEMA IF EXISTS billing CASCADE");
    server.execute("CREATE SCHEMA billing");
    server.execute("CREATE TABLE billing.invoices (id INTEGER PRIMARY KEY, amount INTEGER)");
    server.execute("INSERT INTO billing.invoices VALUES (1, 100), (2, 250)");
    drop_user(server, "keeper");
    server.execute("CREATE ROLE keeper LOGIN CREATEROLE");
    server.execute("GRANT CREATE ON DATABASE postgres TO keeper");
    server.execute("GRANT ALL ON SCHEMA billing TO keeper");
    server.execute("GRANT ALL ON billing.invoices TO keeper");
}

/// Drops a login role the test made; the server's data directory is a cached one.
pub(crate) fn drop_user(server: &UserServer, name: &str) {
    server.execute(&format!(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN \
         DROP OWNED BY {name}; DROP ROLE {name}; END IF; END $$"
    ));
}

/// `anomalies run FILE --url URL` (JSON): exit code, stdout, stderr.
fn run_file(text: &str, url: &str) -> (Option<i32>, String, String) {
    let dir = open_tempdir();
    let path = dir.path().join("intruder.toml");
    std::fs::write(&path, text).unwrap();
    let output = anomalies()
        .arg("run")
        .arg(&path)
        .args(["--url", url, "--format", "json"])
        .output()
        .unwrap();
    (output.status.code(), stdout(&output), stderr(&output))
}

#[test]
fn a_scenario_file_reaches_only_its_own_schema_as_a_superuser_or_a_createrole_user() {
    let server = UserServer::start();
    users_data(&server);
    // Left by an earlier run of this test that failed, if any.
    drop_user(&server, "intruder");
    server.execute("DROP TABLE IF EXISTS public.planted");
    let keeper = server.url.replace("user=anomalies", "user=keeper");
    for url in [server.url.as_str(), keeper.as_str()] {
        // The steps: each attempt fails for want of a privilege, and the run is an error.
        let (code, out, err) = run_file(&intruder("", ATTEMPTS, "SELECT n FROM mine"), url);
        assert_eq!(code, Some(2), "{url}: {err}");
        // Runs with a role of their own: no notice of the user's privileges.
        assert_eq!(err, "", "{url}");
        let run: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(run["verdict"], "error", "{url}");
        let timeline = run["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), ATTEMPTS.len(), "{url}: {timeline:?}");
        for event in timeline {
            let result = &event["result"];
            assert_eq!(result["type"], "error", "{url}: {event}");
            assert_eq!(result["kind"], "privilege", "{url}: {event}");
            assert_eq!(result["code"], "42501", "{url}: {event}");
        }
        let cause = run["summary"].as_str().unwrap();
        assert!(
            cause.contains("failed with 42501 (permission denied for schema billing)"),
            "{url}: {cause}"
        );

        // The setup: one line, exit 2, saying why.
        let setup = intruder(
            "DROP SCHEMA billing CASCADE;",
            &ATTEMPTS[..1],
            "SELECT n FROM mine",
        );
        let (code, _, err) = run_file(&setup, url);
        assert_eq!(code, Some(2), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "{url}: {err}");
        assert!(
            err.contains(
                "the setup SQL failed on PostgreSQL: must be owner of schema billing (42501); \
                 the scenario runs as a role of its own, which may reach only the run's schema"
            ),
            "{url}: {err}"
        );

        // The final query.
        let final_sql = "SELECT count(*) AS n FROM billing.invoices";
        let reads = intruder("", &[("reader", "SELECT 1")], final_sql);
        let (code, _, err) = run_file(&reads, url);
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(
            err.contains(
                "the final check query failed: permission denied for schema billing (42501); \
                 the scenario runs as a role of its own"
            ),
            "{url}: {err}"
        );

        assert_eq!(server.query(BILLING), ["1:100,2:250"], "{url}");
        assert_eq!(
            server.query("SELECT count(*)::text FROM pg_class WHERE relname = 'planted'"),
            ["0"]
        );
        assert_eq!(server.query(OUR_ROLES), Vec::<String>::new(), "{url}");
        assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new(), "{url}");
    }
    server.execute("DROP SCHEMA billing CASCADE");
    drop_user(&server, "keeper");
}

/// A database of the test's own, `name`, dropped (with what the test made in it) on drop.
pub(crate) struct Database<'a> {
    server: &'a UserServer,
    name: String,
}

impl<'a> Database<'a> {
    pub(crate) fn create(server: &'a UserServer, name: &str) -> Database<'a> {
        server.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        server.execute(&format!("CREATE DATABASE {name}"));
        Database {
            server,
            name: name.to_string(),
        }
    }

    pub(crate) fn url(&self) -> String {
        self.server
            .url
            .replace("dbname=postgres", &format!("dbname={}", self.name))
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        let name = &self.name;
        self.server
            .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// Runs `sql` in `database` on a connection of its own.
fn in_database(server: &UserServer, database: &Database, sql: &str) -> Vec<String> {
    server.query_in(&database.name, sql)
}

#[test]
fn what_the_role_made_in_public_where_public_may_create_is_dropped_with_it_even_after_sigkill() {
    let server = UserServer::start();
    // As on PostgreSQL 14 and older (and databases upgraded from them): PUBLIC may create in
    // `public`, so a run's role can make a table there, outside its schema.
    let database = Database::create(&server, "confine_public");
    in_database(
        &server,
        &database,
        "GRANT CREATE ON SCHEMA public TO PUBLIC",
    );
    let planted = "SELECT relname::text FROM pg_class WHERE relname LIKE 'planted%'";
    let plants = intruder(
        "CREATE TABLE public.planted_by_setup (a INTEGER); SELECT lo_create(0);",
        &[("planter", "CREATE TABLE public.planted (a INTEGER)")],
        "SELECT n FROM mine",
    );
    let (code, _, err) = run_file(&plants, &database.url());
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        in_database(&server, &database, planted),
        Vec::<String>::new()
    );
    let objects = "SELECT count(*)::text FROM pg_largeobject_metadata";
    assert_eq!(in_database(&server, &database, objects), ["0"]);
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());

    // Killed while its sessions wait to start: the role, its schema and its table in public
    // stay, until the next run in that database sweeps them.
    let dir = open_tempdir();
    let path = dir.path().join("plants.toml");
    std::fs::write(&path, &plants).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
        .arg("run")
        .arg(&path)
        .args(["--url", &database.url(), "--pace", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_database(&server, &database, planted).is_empty() {
        assert!(Instant::now() < deadline, "the run never made its table");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(server.query(OUR_ROLES).len(), 1);
    // A run in another database does not sweep it: its lock is in confine_public.
    let output = anomalies()
        .args(["run", "lost-update", "--url", &server.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.query(OUR_ROLES).len(), 1);
    let output = anomalies()
        .args(["run", "lost-update", "--url", &database.url()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(
        in_database(&server, &database, planted),
        Vec::<String>::new()
    );
    assert_eq!(
        in_database(&server, &database, OUR_SCHEMAS),
        Vec::<String>::new()
    );
}

#[test]
fn a_live_runs_role_is_not_swept_by_another_run() {
    let server = UserServer::start();
    let mut live = std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
        .args(["run", "lost-update", "--url", &server.url, "--pace", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Its sessions are connected once they show in pg_stat_activity under the role's name.
    let sessions = "SELECT application_name FROM pg_stat_activity \
                    WHERE application_name = 'anomalies john' AND usename LIKE 'anomalies\\_%'";
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.query(sessions).is_empty() {
        assert!(Instant::now() < deadline, "the live run never connected");
        assert!(live.try_wait().unwrap().is_none(), "the run ended early");
    }
    let roles = server.query(OUR_ROLES);
    assert_eq!(roles.len(), 1);
    for _ in 0..3 {
        let output = anomalies()
            .args(["run", "lost-update", "--url", &server.url])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(server.query(OUR_ROLES), roles);
    assert_eq!(server.query(OUR_SCHEMAS), roles);
    live.kill().unwrap();
    live.wait().unwrap();
    let output = anomalies()
        .args(["run", "lost-update", "--url", &server.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new());
}

#[test]
fn an_operator_the_role_plants_in_public_never_runs_in_the_tools_own_queries() {
    let server = UserServer::start();
    let database = Database::create(&server, "confine_operator");
    in_database(
        &server,
        &database,
        "GRANT CREATE ON SCHEMA public TO PUBLIC",
    );
    // An exact-typed `||` for integer arrays in public would win over the catalog's
    // polymorphic one in the query that asks whom a waiting session waits for, if the control
    // connection searched public, and its function would run with the user's privileges.
    let trap = "CREATE FUNCTION public.cat_pids(a INTEGER[], b INTEGER[]) RETURNS INTEGER[]\n\
                LANGUAGE plpgsql AS $$ BEGIN\n\
                CREATE TABLE IF NOT EXISTS public.escalated (who TEXT);\n\
                INSERT INTO public.escalated VALUES (current_user);\n\
                RETURN pg_catalog.array_cat(a, b); END $$;\n\
                CREATE OPERATOR public.|| (LEFTARG = INTEGER[], RIGHTARG = INTEGER[], \
                FUNCTION = public.cat_pids);\n";
    let builtin = include_str!("../scenarios/lost-update.toml");
    let marker = "INSERT INTO accounts VALUES (1, 'alice and john', 200);\n";
    let text = builtin.replacen(marker, &format!("{marker}{trap}"), 1);
    assert_ne!(text, builtin);
    let dir = open_tempdir();
    let path = dir.path().join("trap.toml");
    std::fs::write(&path, text).unwrap();
    // At repeatable read, John's UPDATE waits for Alice: the control connection asks whom for.
    let output = anomalies()
        .arg("run")
        .arg(&path)
        .args(["--url", &database.url(), "--level", "repeatable-read"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["event"] == "waiting"));
    let escalated = "SELECT count(*)::text FROM pg_class WHERE relname = 'escalated'";
    assert_eq!(in_database(&server, &database, escalated), ["0"]);
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
}
