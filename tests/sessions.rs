//! Many sessions: the throwaway cluster takes what a scenario needs, and a user's server that
//! runs out of connections says how many the scenario needs and how many it allows.

use serde_json::Value;

use crate::confine::OUR_ROLES;
use crate::support::{anomalies, interrupted_after, open_tempdir, stderr, stdout};
use crate::user_server::UserServer;

/// A scenario of `n` sessions, each inserting its own row, all begun before any inserts.
fn many(n: usize) -> String {
    let mut text = String::from(
        "id = \"many\"\ntitle = \"Many visitors\"\nanomaly = \"none\"\ncode = \"-\"\n\
         story = \"Everyone signs the guest book.\"\n\
         setup = \"CREATE TABLE visits (who INTEGER PRIMARY KEY);\"\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "\n[[session]]\nname = \"s{i}\"\n\
             [[session.step]]\nname = \"begin\"\nsql = \"BEGIN\"\nsay = \"\"\n\
             [[session.step]]\nname = \"sign\"\nsql = \"INSERT INTO visits VALUES ({i})\"\nsay = \"\"\n\
             [[session.step]]\nname = \"commit\"\nsql = \"COMMIT\"\nsay = \"\"\n"
        ));
    }
    let steps: Vec<String> = ["begin", "sign", "commit"]
        .iter()
        .flat_map(|step| (0..n).map(move |i| format!("\"s{i}.{step}\"")))
        .collect();
    text.push_str(&format!(
        "\n[[interleaving]]\nname = \"all\"\nsteps = [{}]\n\n[outcome]\n\
         final = \"SELECT count(*) AS n FROM visits\"\nanomaly_if = \"final.n != {n}\"\n\
         anomaly = \"{{final.n}} signed\"\nprevented = \"{{final.n}} signed\"\n",
        steps.join(", ")
    ));
    text
}

#[test]
fn two_hundred_sessions_run_on_the_throwaway_cluster_and_on_sqlite() {
    let dir = open_tempdir();
    let path = dir.path().join("many.toml");
    std::fs::write(&path, many(200)).unwrap();
    for engine in ["postgres", "sqlite"] {
        let output = anomalies()
            .arg("run")
            .arg(&path)
            .args(["--engine", engine, "--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{engine}: {}", stderr(&output));
        let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
        assert_eq!(run["witness"], "200 signed", "{engine}");
    }
}

#[test]
fn a_server_out_of_connections_says_how_many_the_scenario_needs() {
    let server = UserServer::start();
    // A role allowed three connections at once: the scenario's five sessions need six.
    // The server's data directory is a cached one: a role, which outlives the database's
    // schemas, is dropped before and after.
    let drop_role = "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'few') THEN \
                     REVOKE ALL ON DATABASE postgres FROM few; DROP ROLE few; END IF; END $$";
    server.execute(drop_role);
    server.execute("CREATE ROLE few LOGIN CONNECTION LIMIT 3");
    server.execute("GRANT CREATE ON DATABASE postgres TO few");
    let dir = open_tempdir();
    let path = dir.path().join("five.toml");
    std::fs::write(&path, many(5)).unwrap();
    let url = server.url.replace("user=anomalies", "user=few");
    let output = anomalies()
        .arg("run")
        .arg(&path)
        .args(["--url", &url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // After the notice that a file runs with the user's privileges (few may not create roles),
    // the error.
    let all = stderr(&output);
    let err = all.lines().last().unwrap_or_default().to_string();
    assert!(all.starts_with("notice: "), "{all}");
    assert!(
        err.starts_with("error: the scenario's 5 sessions need 6 connections to"),
        "{err}"
    );
    assert!(err.contains("max_connections = 250"), "{err}");
    assert!(
        err.contains("too many connections for role \"few\""),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    server.execute(drop_role);
    // Nothing is left behind on the server.
    assert!(server
        .query("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%'")
        .is_empty());
    assert_eq!(server.query(OUR_ROLES), Vec::<String>::new());
}

/// The `anomalies-sqlite-*` folders in `dir` that hold a lock file.
fn sqlite_folders(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("anomalies-sqlite-"))
        })
        .collect()
}

/// A paced SQLite run in `tmp`, waiting a minute before its first step, once it has made its
/// folder; and that folder.
fn paced_run(tmp: &std::path::Path) -> (std::process::Child, std::path::PathBuf) {
    use std::time::{Duration, Instant};
    let before = sqlite_folders(tmp);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
        .args(["run", "lost-update", "--engine", "sqlite", "--pace", "60s"])
        .env("TMPDIR", tmp)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let made = sqlite_folders(tmp)
            .into_iter()
            .find(|p| !before.contains(p) && p.join("owner.lock").exists());
        if let Some(folder) = made {
            return (child, folder);
        }
        assert!(Instant::now() < deadline, "the run never made its folder");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
    }
}

fn sqlite_run(tmp: &std::path::Path) {
    let output = anomalies()
        .args(["run", "lost-update", "--engine", "sqlite"])
        .env("TMPDIR", tmp)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_killed_sqlite_runs_folder_is_removed_by_the_next_run_and_a_live_ones_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut live, live_folder) = paced_run(tmp.path());
    let (mut killed, killed_folder) = paced_run(tmp.path());
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(killed_folder.exists(), "SIGKILL leaves the folder");
    sqlite_run(tmp.path());
    assert_eq!(sqlite_folders(tmp.path()), vec![live_folder.clone()]);
    live.kill().unwrap();
    live.wait().unwrap();
    sqlite_run(tmp.path());
    assert_eq!(sqlite_folders(tmp.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn sigint_at_any_instant_leaves_no_schema_or_role_on_a_users_server() {
    use std::time::Duration;
    let server = UserServer::start();
    let ours = "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%'";
    // The instants are drawn with a fixed seed, so a failure can be replayed.
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut interrupted, mut finished) = (0, 0);
    for round in 0..100 {
        // 2 to 20 ms in: connecting, making the schema, the setup, the steps (the old code
        // left a schema in about 1 round of 70 here).
        let after = Duration::from_micros(rng.u64(2_000..20_000));
        let output = interrupted_after(&["run", "lost-update", "--url", &server.url], after);
        use std::os::unix::process::ExitStatusExt;
        match (output.status.code(), output.status.signal()) {
            (Some(130), _) => interrupted += 1,
            (Some(0), _) => finished += 1,
            // Before the tool has set up its handler, SIGINT ends it at once: it has made
            // nothing yet.
            (None, Some(2)) => interrupted += 1,
            other => panic!("round {round}: {other:?}: {}", stderr(&output)),
        }
        assert_eq!(server.query(ours), Vec::<String>::new(), "round {round}");
        assert_eq!(
            server.query(OUR_ROLES),
            Vec::<String>::new(),
            "round {round}"
        );
    }
    // Most rounds are interrupted somewhere along the way, not after the run.
    assert!(
        interrupted > 30,
        "{interrupted} interrupted, {finished} finished"
    );
}

#[test]
fn a_killed_runs_schema_and_role_are_swept_by_the_next_run_and_a_live_ones_are_not() {
    let server = UserServer::start();
    // Schemas and roles as killed runs leave them: named and commented as the tool makes them,
    // their advisory lock free. And one a live run holds: its lock taken by this test's
    // connection.
    let comment = "made by anomalies for one run; dropped when the run ends";
    for schema in ["anomalies_1_0_lost_update", "anomalies_2_0_lost_update"] {
        server.execute(&format!("CREATE SCHEMA {schema}"));
        server.execute(&format!("COMMENT ON SCHEMA {schema} IS '{comment}'"));
    }
    let here = "made by anomalies for one run in database postgres; dropped when the run ends";
    let elsewhere = "made by anomalies for one run in database other; dropped when the run ends";
    for (role, comment) in [
        ("anomalies_1_1_lost_update", Some(here)),
        ("anomalies_2_1_lost_update", Some(here)),
        // A run's role in another database: its lock is there, not here.
        ("anomalies_4_0_lost_update", Some(elsewhere)),
        // A user's role that only looks like ours.
        ("anomalies_5_0_mine", None),
    ] {
        server.execute(&format!("CREATE ROLE {role} LOGIN"));
        if let Some(comment) = comment {
            server.execute(&format!("COMMENT ON ROLE {role} IS '{comment}'"));
        }
    }
    // The stale role owns its schema, as a run's role does.
    server
        .execute("CREATE SCHEMA anomalies_1_1_lost_update AUTHORIZATION anomalies_1_1_lost_update");
    for held in ["anomalies_2_0_lost_update", "anomalies_2_1_lost_update"] {
        server.execute(&format!(
            "SELECT pg_advisory_lock(x'616e6f6d'::int, hashtext('{held}'))"
        ));
    }
    // And a user's schema that only looks like ours.
    server.execute("CREATE SCHEMA anomalies_3_0_mine");
    let output = anomalies()
        .args(["run", "lost-update", "--url", &server.url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        server.query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'anomalies%' ORDER BY 1"
        ),
        ["anomalies_2_0_lost_update", "anomalies_3_0_mine"]
    );
    let kept = [
        "anomalies_2_1_lost_update",
        "anomalies_4_0_lost_update",
        "anomalies_5_0_mine",
    ];
    assert_eq!(server.query(OUR_ROLES), kept);
    // The server's data directory is a cached one, which later tests count schemas in.
    server.execute("SELECT pg_advisory_unlock_all()");
    server.execute("DROP SCHEMA anomalies_2_0_lost_update, anomalies_3_0_mine");
    for role in kept {
        server.execute(&format!("DROP ROLE {role}"));
    }
}

#[test]
fn a_setup_that_moves_the_search_path_cannot_change_the_verdict() {
    let server = UserServer::start();
    // The user's own table of the same name, with other data, in public.
    server.execute("DROP TABLE IF EXISTS public.accounts");
    server.execute(
        "CREATE TABLE public.accounts (id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER)",
    );
    server.execute("INSERT INTO public.accounts VALUES (1, 'someone', 30)");
    let dir = open_tempdir();
    let path = dir.path().join("moved.toml");
    let text = include_str!("../scenarios/lost-update.toml").replacen(
        "INSERT INTO accounts VALUES (1, 'alice and john', 200);\n",
        "INSERT INTO accounts VALUES (1, 'alice and john', 200);\nSET search_path TO public;\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let output = anomalies()
        .arg("run")
        .arg(&path)
        .args([
            "--url",
            &server.url,
            "--level",
            "read-committed",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    // The run's own balance (80: Alice's debit lost), not public.accounts' 30.
    assert_eq!(
        run["final_state"],
        serde_json::json!({"columns": ["balance"], "rows": [[80]]})
    );
    assert_eq!(run["verdict"], "anomaly");
    assert_eq!(
        server.query("SELECT balance::text FROM public.accounts"),
        ["30"]
    );
    server.execute("DROP TABLE public.accounts");
}

#[test]
fn a_final_query_that_moves_the_search_path_cannot_change_the_next_orders_verdict() {
    let server = UserServer::start();
    // The user's table of the same name, which everyone may read and change.
    server.execute("DROP TABLE IF EXISTS public.accounts");
    server.execute(
        "CREATE TABLE public.accounts (id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER)",
    );
    server.execute("INSERT INTO public.accounts VALUES (1, 'someone', 30)");
    server.execute("GRANT ALL ON public.accounts TO PUBLIC");
    let dir = open_tempdir();
    let path = dir.path().join("moves.toml");
    let builtin = include_str!("../scenarios/lost-update.toml");
    let text = builtin.replacen(
        "final = \"SELECT balance FROM accounts WHERE id = 1\"",
        "final = \"SELECT balance FROM accounts WHERE id = 1; SET search_path TO public\"",
        1,
    );
    assert_ne!(text, builtin);
    std::fs::write(&path, text).unwrap();
    let explore = |target: &std::path::Path| {
        let output = anomalies()
            .arg("explore")
            .arg(target)
            .args(["--url", &server.url, "--level", "read-committed"])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let explored: Value = serde_json::from_str(&stdout(&output)).unwrap();
        explored["levels"][0]["counts"].clone()
    };
    // Every order reads the run's balance, and the data is put back in the run's schema.
    assert_eq!(
        explore(&path),
        explore(std::path::Path::new("scenarios/lost-update.toml"))
    );
    assert_eq!(
        server.query("SELECT balance::text FROM public.accounts"),
        ["30"]
    );
    server.execute("DROP TABLE public.accounts");
}
