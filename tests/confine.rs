//! A scenario reaches only its own data: on a user's server, each run's setup, steps and final
//! query run as a login role of the run's own, which owns the run's schema and nothing else.
//! Its attempts on the user's data fail with the `privilege` kind, the user's data is as it
//! was, and the role is gone when the run ends, is interrupted or (after the next run) killed.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::runner::UserServer;
use crate::support::{anomalies, open_tempdir, stderr, stdout};
use crate::tls::Server;

/// The run's roles and schemas left on the server (the cluster's own user is `anomalies`).
pub(crate) const OUR_ROLES: &str =
    "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'anomalies\\_%' ORDER BY 1";
const OUR_SCHEMAS: &str =
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
struct Database<'a> {
    server: &'a UserServer,
    name: String,
}

impl<'a> Database<'a> {
    fn create(server: &'a UserServer, name: &str) -> Database<'a> {
        server.execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        server.execute(&format!("CREATE DATABASE {name}"));
        Database {
            server,
            name: name.to_string(),
        }
    }

    fn url(&self) -> String {
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

/// `anomalies run tests/fixtures/booking.toml --url URL`: it succeeds; its stderr.
fn booking(url: &str) -> String {
    let output = anomalies()
        .args(["run", "tests/fixtures/booking.toml", "--url", url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{url}: {}", stderr(&output));
    stderr(&output)
}

#[test]
fn without_a_role_of_its_own_a_run_has_the_users_privileges_and_says_why() {
    let server = UserServer::start();
    // A user that may not create roles, and one that may but inherits no role's privileges.
    for (user, attributes) in [("plain", ""), ("noinherit", "CREATEROLE NOINHERIT")] {
        drop_user(&server, user);
        server.execute(&format!("CREATE ROLE {user} LOGIN {attributes}"));
        server.execute(&format!("GRANT CREATE ON DATABASE postgres TO {user}"));
    }
    let notice = |user: &str, database: &str, why: &str| {
        format!(
            "notice: tests/fixtures/booking.toml runs with the privileges of user {user} at {}/{database}, \
             {why}: its SQL can reach whatever that user can, outside the run's own schema too\n",
            server.at
        )
    };
    assert_eq!(
        booking(&server.url.replace("user=anomalies", "user=plain")),
        notice("plain", "postgres", "who may not create roles")
    );
    assert_eq!(
        booking(&server.url.replace("user=anomalies", "user=noinherit")),
        notice(
            "noinherit",
            "postgres",
            "who does not inherit its roles' privileges (NOINHERIT), which cleaning up after \
             a role of the run's own needs"
        )
    );
    // A database only its owner and superusers may connect to: the run's role cannot log in.
    let database = Database::create(&server, "confine_closed");
    server.execute("REVOKE CONNECT ON DATABASE confine_closed FROM PUBLIC");
    let err = booking(&database.url());
    let why = "as a role made for the run could not log in (permission denied for database \
               \"confine_closed\" (42501))";
    assert_eq!(err, notice("anomalies", "confine_closed", why));
    // A built-in says nothing either way.
    let output = anomalies()
        .args(["run", "lost-update", "--url", &database.url()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    drop(database);
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new());
    for user in ["plain", "noinherit"] {
        drop_user(&server, user);
    }
}

/// The first column of `sql`'s rows, as user postgres on a test server of its own.
fn query_own(server: &Server, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = server.url("127.0.0.1", "dbname=postgres");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let rows = client.query(sql, &[]).await.unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect()
    })
}

#[test]
fn a_role_logs_in_with_its_password_over_scram_and_where_pg_hba_refuses_it_the_run_falls_back() {
    // The user is trusted; every other role must log in with its password, over SCRAM.
    let scram = "host all postgres 127.0.0.0/8 trust\nhost all all 127.0.0.0/8 scram-sha-256\n";
    let server = Server::start_with(false, Some(scram));
    let url = server.url("127.0.0.1", "dbname=postgres");
    // No notice: the runs had roles of their own, which logged in with their passwords.
    assert_eq!(booking(&url), "");
    assert_eq!(query_own(&server, OUR_ROLES), Vec::<String>::new());
    // Only the user may log in: the run's role is refused, and the run says so.
    server.set_hba("host all postgres 127.0.0.0/8 trust\n");
    let err = booking(&url);
    assert!(
        err.starts_with(&format!(
            "notice: tests/fixtures/booking.toml runs with the privileges of user postgres at \
             127.0.0.1:{}/postgres, as a role made for the run could not log in (no \
             pg_hba.conf entry for host \"127.0.0.1\", user \"anomalies_",
            server.port
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(query_own(&server, OUR_ROLES), Vec::<String>::new());
    server.stop();
}
