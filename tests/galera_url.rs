//! A user's own Galera cluster, a URL per node (`--url 1=URL --url 2=URL`): here a cluster the
//! test starts, reached through its nodes' sockets as any user's cluster would be. The two
//! orders of the lost update end as on the tool's own cluster, and leave nothing on either
//! node; nodes that are not one synced cluster are refused with the reason; a killed run's
//! database is dropped only once its lock is free on every node.

use anomalies::engine::mariadb::galera::{GaleraCluster, HOLD_APPLIERS};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::Value;

use crate::galera_server::{runtime, start};
use crate::support::{anomalies, stderr, stdout};

/// A cluster of the test's own, with a connection per node that reads what the cluster
/// committed (`wsrep_sync_wait = 1`).
struct UserCluster {
    cluster: GaleraCluster,
    runtime: tokio::runtime::Runtime,
    conns: std::cell::RefCell<Vec<Conn>>,
}

impl UserCluster {
    fn start() -> UserCluster {
        let cluster = start(None, 2);
        let runtime = runtime();
        let conns = runtime.block_on(async {
            let mut conns = Vec::new();
            for node in 1..=2 {
                let mut conn = Conn::new(cluster.opts(node).unwrap()).await.unwrap();
                conn.query_drop("SET SESSION wsrep_sync_wait = 1")
                    .await
                    .unwrap();
                conns.push(conn);
            }
            conns
        });
        UserCluster {
            cluster,
            runtime,
            conns: std::cell::RefCell::new(conns),
        }
    }

    /// `--url K=URL` for each of `nodes` (from 1).
    fn urls(&self, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .enumerate()
            .flat_map(|(k, &node)| {
                let socket = self.cluster.socket(node).unwrap();
                let url = format!(
                    "{}=mysql://root@localhost/?socket={}",
                    k + 1,
                    socket.display()
                );
                ["--url".to_string(), url]
            })
            .collect()
    }

    fn query(&self, node: usize, sql: &str) -> Vec<String> {
        let mut conns = self.conns.borrow_mut();
        self.runtime
            .block_on(conns[node - 1].query::<Option<String>, _>(sql))
            .unwrap()
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// The tool's databases as node `node` sees them.
    fn ours(&self, node: usize) -> Vec<String> {
        self.query(
            node,
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE 'anomalies%' ORDER BY 1",
        )
    }

    fn state(&self, node: usize) -> Vec<String> {
        self.query(
            node,
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'",
        )
    }
}

fn run_json(cluster: &UserCluster, args: &[&str]) -> Value {
    let output = anomalies()
        .args(["run", "cross-node-lost-update", "--level", "read-committed"])
        .args(["--format", "json"])
        .args(cluster.urls(&[1, 2]))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

#[test]
fn a_users_cluster_shows_both_orders_and_keeps_nothing() {
    let cluster = UserCluster::start();
    // Numbered URLs are a cluster's nodes: no --engine needed.
    let lost = run_json(&cluster, &[]);
    assert_eq!(
        (&lost["verdict"], &lost["prevented_by"]),
        (&Value::from("anomaly"), &Value::Null),
        "{lost}"
    );
    let detail = lost["engine"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("Galera cluster, node 1 (") && detail.contains(", node 2 ("),
        "{detail}"
    );
    let certified = run_json(&cluster, &["--interleaving", "both-read-first"]);
    assert_eq!(
        (&certified["verdict"], &certified["prevented_by"]),
        (&Value::from("prevented"), &Value::from("abort")),
        "{certified}"
    );
    for node in 1..=2 {
        assert_eq!(cluster.ours(node), Vec::<String>::new(), "node {node}");
        // The run held node 2's appliers and let them go.
        assert_eq!(cluster.state(node), ["Synced"], "node {node}");
    }
}

fn refusal(args: &[String]) -> String {
    let output = anomalies()
        .args(["run", "cross-node-for-update"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    stderr(&output)
}

#[test]
fn nodes_that_are_not_one_synced_cluster_are_refused_with_the_reason() {
    let cluster = UserCluster::start();
    let socket = |node: usize| cluster.cluster.socket(node).unwrap().display().to_string();
    let twice = refusal(&cluster.urls(&[1, 1]));
    assert_eq!(
        twice,
        format!(
            "error: node 2 ({}) is the same server as node 1: give each node once\n",
            socket(1)
        )
    );
    // A node whose appliers are held is desynced from its cluster.
    let holder = cluster.runtime.block_on(async {
        let mut conn = Conn::new(cluster.cluster.opts(2).unwrap()).await.unwrap();
        conn.query_drop(HOLD_APPLIERS).await.unwrap();
        conn
    });
    let desynced = refusal(&cluster.urls(&[1, 2]));
    assert_eq!(
        desynced,
        format!(
            "error: node 2 ({}) is Donor/Desynced, not Synced with its cluster: run once it has \
             caught up\n",
            socket(2)
        )
    );
    cluster.runtime.block_on(holder.disconnect()).unwrap();
    let mut args = vec!["--engine".to_string(), "postgres".to_string()];
    args.extend(cluster.urls(&[1, 2]));
    assert_eq!(
        refusal(&args),
        "error: --url 2=URL names a node of a Galera cluster: run it with --engine galera\n"
    );
    let one = format!("mysql://root@localhost/?socket={}", socket(1));
    assert_eq!(
        refusal(&["--engine".into(), "galera".into(), "--url".into(), one]),
        "error: --engine galera on a cluster of yours needs a URL per node: --url 1=URL --url \
         2=URL\n"
    );
}

/// A database of the tool's made on node 1 by a "killed run" whose lock is held on node 2.
fn left_by_a_killed_run(cluster: &UserCluster, name: &str) -> Conn {
    cluster.query(
        1,
        &format!(
            "CREATE DATABASE {name} COMMENT 'anomalies: the private data of one run, dropped \
             when it ends'"
        ),
    );
    cluster.runtime.block_on(async {
        let mut conn = Conn::new(cluster.cluster.opts(2).unwrap()).await.unwrap();
        let got: Option<String> = conn
            .query_first(format!("SELECT GET_LOCK('{name}', 0)"))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("1"));
        conn
    })
}

#[test]
fn a_database_whose_lock_another_node_holds_is_kept() {
    let cluster = UserCluster::start();
    let name = "anomalies_999999_0_cross_node_for_update";
    let holder = left_by_a_killed_run(&cluster, name);
    let run = || {
        let output = anomalies()
            .args(["run", "cross-node-for-update", "--level", "read-committed"])
            .args(cluster.urls(&[1, 2]))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    };
    run();
    assert_eq!(cluster.ours(1), [name], "live on node 2: kept");
    cluster.runtime.block_on(holder.disconnect()).unwrap();
    // The server lets the lock go once it has seen the connection close; the next run sees
    // it free.
    wait_until_free(&cluster, name);
    run();
    assert_eq!(cluster.ours(1), Vec::<String>::new());
    assert_eq!(cluster.ours(2), Vec::<String>::new());
}

/// Asks node 2 until the lock is free (a dropped connection ends on the server shortly after).
fn wait_until_free(cluster: &UserCluster, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cluster.query(2, &format!("SELECT IS_FREE_LOCK('{name}')")) != ["1"] {
        assert!(std::time::Instant::now() < deadline, "the lock stays held");
        std::thread::yield_now();
    }
}
