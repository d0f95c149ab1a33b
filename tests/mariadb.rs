//! MariaDB on real servers: the wait probe is never stale, a step of several statements, a
//! user's server (`--url`) left as it was found after SIGINT and SIGKILL, and a server that
//! never answers.

use std::time::Duration;

use anomalies::engine::mariadb::server::MariaServer;
use anomalies::engine::{Choice, ConnectOptions, Engine, Settled};
use anomalies::level::Level;
use anomalies::scenario::{EngineKind, Scenario};
use anomalies::timeline::{ErrorKind, StepResult};
use mysql_async::prelude::Queryable;

use crate::support::{anomalies, interrupted_after, stderr, stdout};

fn throwaway() -> ConnectOptions {
    ConnectOptions {
        choice: Choice::Only(EngineKind::Mariadb),
        url: None,
        standby_url: None,
        node_urls: Vec::new(),
        connect_timeout: Duration::from_secs(5),
        pg_bindir: None,
        mariadb_bindir: None,
        redis_url: None,
        topology: Default::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(10)
}

/// A wait that has ended must never be reported as a wait: InnoDB's `INNODB_TRX` cache, polled
/// tightly, goes on showing `LOCK WAIT` for a while after the lock is granted, and a probe read
/// from it would fail here. Each round: John's UPDATE waits for Alice's row lock; Alice
/// commits; the very next look at John must find his UPDATE done.
#[test]
fn a_wait_that_ended_is_never_reported_as_waiting() {
    runtime().block_on(async {
        let (engine, _) = Engine::connect(&throwaway())
            .await
            .expect("a MariaDB server");
        let scenario = Scenario::load("lost-update").unwrap();
        let mut run = engine
            .prepare(&scenario, Level::ReadCommitted)
            .await
            .unwrap();
        run.save_initial_state().await.unwrap();
        for round in 0..100 {
            for (session, sql) in [
                (0, "BEGIN"),
                (1, "BEGIN"),
                (0, "UPDATE accounts SET balance = balance - 1 WHERE id = 1"),
            ] {
                run.send(session, anomalies::scenario::PRIMARY, sql);
                assert!(matches!(
                    run.settle(session, deadline()).await.unwrap(),
                    Settled::Done(_)
                ));
            }
            run.send(
                1,
                anomalies::scenario::PRIMARY,
                "UPDATE accounts SET balance = balance - 2 WHERE id = 1",
            );
            assert_eq!(
                run.settle(1, deadline()).await.unwrap(),
                Settled::Waiting(vec![0]),
                "round {round}: John waits for Alice"
            );
            run.send(0, anomalies::scenario::PRIMARY, "COMMIT");
            assert!(matches!(
                run.settle(0, deadline()).await.unwrap(),
                Settled::Done(_)
            ));
            let after = run.recheck(1, deadline()).await.unwrap();
            assert_eq!(
                after,
                Settled::Done(StepResult::Command { rows_affected: 1 }),
                "round {round}: the wait ended when Alice committed"
            );
            run.reset().await.unwrap();
        }
        run.finish().await.unwrap();
        engine.close().await.unwrap();
    });
}

/// A step of several statements answers with its last rows; one whose later statement fails is
/// a failed step, and the connection goes on with the next step.
#[test]
fn a_step_of_several_statements_reports_its_last_rows_or_its_failure() {
    runtime().block_on(async {
        let (engine, _) = Engine::connect(&throwaway())
            .await
            .expect("a MariaDB server");
        let scenario = Scenario::load("lost-update").unwrap();
        let mut run = engine
            .prepare(&scenario, Level::ReadCommitted)
            .await
            .unwrap();
        run.send(
            0,
            anomalies::scenario::PRIMARY,
            "UPDATE accounts SET balance = 7 WHERE id = 1; SELECT balance FROM accounts",
        );
        let Settled::Done(StepResult::Rows(rows)) = run.settle(0, deadline()).await.unwrap() else {
            panic!("rows");
        };
        assert_eq!(rows.rows, vec![vec![Some("7".to_string())]]);
        run.send(
            0,
            anomalies::scenario::PRIMARY,
            "SELECT 1; SELECT missing FROM accounts",
        );
        let Settled::Done(StepResult::Failed(error)) = run.settle(0, deadline()).await.unwrap()
        else {
            panic!("the second statement fails");
        };
        assert_eq!(
            (error.kind, error.code.as_str()),
            (ErrorKind::UndefinedObject, "1054")
        );
        run.send(0, anomalies::scenario::PRIMARY, "SELECT 2 AS two");
        let Settled::Done(StepResult::Rows(rows)) = run.settle(0, deadline()).await.unwrap() else {
            panic!("rows");
        };
        assert_eq!(rows.rows, vec![vec![Some("2".to_string())]]);
        run.finish().await.unwrap();
        engine.close().await.unwrap();
    });
}

/// A MariaDB server of the test's own, reached as a user's server through `--url`.
struct UserServer {
    server: Option<MariaServer>,
    url: String,
    runtime: tokio::runtime::Runtime,
    conn: std::cell::RefCell<mysql_async::Conn>,
}

impl UserServer {
    fn start() -> UserServer {
        let server = MariaServer::start(None).expect("a MariaDB server starts");
        let socket = server.socket().display().to_string();
        let url = format!("mysql://root@localhost/?socket={socket}");
        let runtime = runtime();
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(socket))
            .user(Some("root"));
        let conn = runtime.block_on(mysql_async::Conn::new(opts)).unwrap();
        UserServer {
            server: Some(server),
            url,
            runtime,
            conn: std::cell::RefCell::new(conn),
        }
    }

    fn query(&self, sql: &str) -> Vec<String> {
        let mut conn = self.conn.borrow_mut();
        self.runtime
            .block_on(conn.query::<Option<String>, _>(sql))
            .unwrap()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    fn ours(&self) -> Vec<String> {
        self.query(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'anomalies%' ORDER BY 1",
        )
    }
}

impl Drop for UserServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop();
        }
    }
}

#[test]
fn sigint_at_any_instant_leaves_no_database_on_a_users_server() {
    let server = UserServer::start();
    let mut rng = fastrand::Rng::with_seed(13);
    let mut interrupted = 0;
    for round in 0..60 {
        let after = Duration::from_micros(rng.u64(1_000..25_000));
        let output = interrupted_after(&["run", "lost-update", "--url", &server.url], after);
        use std::os::unix::process::ExitStatusExt;
        match (output.status.code(), output.status.signal()) {
            (Some(130), _) | (None, Some(2)) => interrupted += 1,
            (Some(0), _) => {}
            other => panic!("round {round}: {other:?}: {}", stderr(&output)),
        }
        assert_eq!(server.ours(), Vec::<String>::new(), "round {round}");
    }
    assert!(interrupted > 20, "{interrupted} of 60 interrupted");
}

#[test]
fn a_killed_runs_database_is_dropped_by_the_next_run_and_a_live_ones_is_not() {
    let server = UserServer::start();
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.toml");
    // A scenario whose one step takes a while, so the run can be caught in the middle.
    let text = std::fs::read_to_string("tests/fixtures/per-engine.toml").unwrap();
    std::fs::write(
        &slow,
        text.replacen(
            "sql = \"SELECT balance FROM accounts WHERE id = 1 FOR UPDATE\"",
            "sql = \"SELECT balance FROM accounts WHERE id = 1 FOR UPDATE\"\n\
             sql_on.mariadb = \"SELECT balance, SLEEP(30) AS pause FROM accounts WHERE id = 1\"",
            1,
        ),
    )
    .unwrap();
    let start = |file: &std::path::Path| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
            .args(["run"])
            .arg(file)
            .args(["--url", &server.url, "--step-timeout", "60s"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Polls the server (no guessed sleep) until a database of the tool's not in `known` is
    // there, and returns it; the child's error if it ended first.
    let appears = |child: &mut std::process::Child, known: &[String]| -> String {
        let started = std::time::Instant::now();
        loop {
            if let Some(new) = server.ours().into_iter().find(|name| !known.contains(name)) {
                return new;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut text = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut text)
                    .unwrap();
                panic!("the run ended ({status}) before its database appeared: {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no database appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut killed = start(&slow);
    let killed_database = appears(&mut killed, &[]);
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert_eq!(
        server.ours(),
        std::slice::from_ref(&killed_database),
        "SIGKILL leaves the database"
    );

    // The next run drops it before it makes its own.
    let mut live = start(&slow);
    let live_database = appears(&mut live, std::slice::from_ref(&killed_database));
    assert_eq!(
        server.ours(),
        std::slice::from_ref(&live_database),
        "the killed run's database is gone"
    );
    // A run beside a live one leaves the live one's database alone.
    let output = anomalies()
        .args(["run", "lost-update", "--url", &server.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        server.ours(),
        [live_database],
        "the live run's database stays"
    );
    live.kill().unwrap();
    live.wait().unwrap();
    let output = anomalies()
        .args(["run", "lost-update", "--url", &server.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.ours(), Vec::<String>::new());
}

#[test]
fn a_mariadb_that_never_answers_fails_within_the_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().flatten().collect();
        drop(held);
    });
    let started = std::time::Instant::now();
    let output = anomalies()
        .args(["run", "lost-update", "--connect-timeout", "1s", "--url"])
        .arg(format!("mysql://app:secret@127.0.0.1:{port}/app"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!("error: cannot connect to MariaDB at 127.0.0.1:{port}/app: no answer within 1s\n")
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!stdout(&output).contains("secret"));
}

#[test]
fn a_bad_mariadb_url_is_one_line_without_the_password() {
    let output = anomalies()
        .args([
            "run",
            "lost-update",
            "--url",
            "mysql://app:secret@db:notaport/app",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.starts_with("error: --url is not a MariaDB connection URL"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains("secret"), "{text}");
}
