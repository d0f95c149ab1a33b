//! Whose privileges a run's SQL has: a run's role logs in with its password where the server
//! asks for one, a user that may create roles but is no superuser does all the tool does with
//! it, and where a run cannot have a role of its own it has the user's privileges and says why.

use serde_json::Value;

use crate::confine::{drop_user, Database, OUR_ROLES, OUR_SCHEMAS};
use crate::support::{anomalies, stderr, stdout};
use crate::tls::Server;
use crate::user_server::UserServer;

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
             {why}: its SQL can reach whatever that user can, outside the run's own data too\n",
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

#[test]
fn a_createrole_user_that_is_no_superuser_does_all_the_tool_does_with_a_runs_role() {
    let server = UserServer::start();
    drop_user(&server, "keeper");
    server.execute("CREATE ROLE keeper LOGIN CREATEROLE");
    server.execute("GRANT CREATE ON DATABASE postgres TO keeper");
    let url = server.url.replace("user=anomalies", "user=keeper");
    let json = |args: &[&str], code: i32| -> Value {
        let output = anomalies()
            .args(args)
            .args(["--url", &url, "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{args:?}");
        serde_json::from_str(&stdout(&output)).unwrap()
    };
    // The control connection sees the role's sessions wait (John waits for Alice's lock).
    let run = json(&["run", "lost-update", "--level", "repeatable-read"], 0);
    assert_eq!(run["matches_expectation"], true, "{}", run["summary"]);
    assert!(run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["event"] == "waiting"));
    // It cancels a role's step (pg_cancel_backend needs the role's privileges).
    let args = ["run", "tests/fixtures/slow.toml", "--step-timeout", "300ms"];
    let run = json(&args, 2);
    assert_eq!(run["cause"]["kind"], "timed-out");
    // The data is saved and put back between orders, as the role.
    let explored = json(&["explore", "lost-update", "--level", "read-committed"], 0);
    assert_eq!(explored["levels"][0]["counts"]["anomaly"], 40);
    assert_eq!(explored["levels"][0]["counts"]["error"], 0);
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
    assert_eq!(server.query(OUR_SCHEMAS), Vec::<String>::new());
    drop_user(&server, "keeper");
}
