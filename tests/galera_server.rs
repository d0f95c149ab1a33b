//! The throwaway Galera cluster: it starts synced and replicates, the two cross-node cases of
//! issue 17 reproduce (the later of two overlapping committers fails with 1213; `FOR UPDATE`
//! on two nodes is granted on both at once), it stops leaving only its slot, two at once get
//! their own slots and ports, as root its nodes run as an unprivileged user, a killed run's
//! nodes die with it, and a node's appliers can be held and released (and are released when
//! the holder's connection ends); a template whose bootstrap was cut short heals, with a notice.

use std::path::Path;
use std::time::{Duration, Instant};

use anomalies::engine::mariadb::galera::{self, GaleraCluster};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::mariadb_server::{is_running, query};
use crate::support::{open_tempdir, processes_mentioning, spawn_holder};

/// Starts a cluster of `nodes`, in `cache` or else the tool's cache; fails (never skips)
/// when MariaDB or Galera is not installed.
pub(crate) fn start(cache: Option<&Path>, nodes: usize) -> GaleraCluster {
    let started = match cache {
        Some(cache) => GaleraCluster::start_in(None, cache, nodes),
        None => GaleraCluster::start(None, nodes),
    };
    started.unwrap_or_else(|err| panic!("{err} (scripts/test installs MariaDB and galera-4)"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(cluster: &GaleraCluster, node: usize) -> Conn {
    Conn::new(cluster.opts(node).unwrap()).await.unwrap()
}

async fn value(conn: &mut Conn, sql: &str) -> String {
    let row: Option<String> = conn.query_first(sql).await.unwrap();
    row.unwrap_or_default()
}

/// Sets up `galera_test.t` with row (1, 0) on node 1, seen on every node.
async fn one_row(cluster: &GaleraCluster) -> Vec<Conn> {
    let mut conns = Vec::new();
    for node in 1..=cluster.nodes() {
        conns.push(connect(cluster, node).await);
    }
    conns[0]
        .query_drop(
            "CREATE DATABASE galera_test; \
             CREATE TABLE galera_test.t (id INT PRIMARY KEY, v INT); \
             INSERT INTO galera_test.t VALUES (1, 0)",
        )
        .await
        .unwrap();
    for conn in conns.iter_mut() {
        conn.query_drop("SET SESSION wsrep_sync_wait = 1")
            .await
            .unwrap();
        assert_eq!(
            value(conn, "SELECT v FROM galera_test.t WHERE id = 1").await,
            "0"
        );
    }
    conns
}

/// What a slot holds once its cluster has stopped.
fn slot_entries(slot: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(slot)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for entry in std::fs::read_dir(slot.join("run")).unwrap() {
        names.push(format!(
            "run/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    names
}

#[test]
fn a_cluster_starts_synced_replicates_and_stops_leaving_only_its_slot() {
    let cache = open_tempdir();
    let cluster = start(Some(cache.path()), 2);
    assert_eq!(cluster.nodes(), 2);
    assert!(
        cluster.version().contains("MariaDB"),
        "{}",
        cluster.version()
    );
    assert_eq!(cluster.notice(), None);
    for node in 1..=2 {
        let socket = cluster.socket(node).unwrap();
        let settings = query(
            &socket,
            "SELECT @@wsrep_on, @@binlog_format, @@innodb_autoinc_lock_mode, \
             @@skip_networking, @@wsrep_sst_method, @@wsrep_node_name",
        );
        assert_eq!(settings, format!("1\tROW\t2\t1\tanomalies\tnode-{node}"));
        let status = query(
            &socket,
            "SHOW STATUS WHERE Variable_name IN ('wsrep_cluster_size', \
             'wsrep_local_state_comment')",
        );
        assert_eq!(
            status,
            "wsrep_local_state_comment\tSynced\nwsrep_cluster_size\t2"
        );
    }
    query(
        &cluster.socket(1).unwrap(),
        "CREATE DATABASE galera_test; CREATE TABLE galera_test.t (id INT PRIMARY KEY); \
         INSERT INTO galera_test.t VALUES (7)",
    );
    let seen = query(
        &cluster.socket(2).unwrap(),
        "SET SESSION wsrep_sync_wait = 1; SELECT id FROM galera_test.t",
    );
    assert_eq!(seen, "7", "node 2 sees node 1's commit after a sync wait");
    let pids = [cluster.pid(1).unwrap(), cluster.pid(2).unwrap()];
    let slot = cluster.slot_dir().to_path_buf();
    assert!(slot.ends_with("mariadb-10.11/galera/slot-0") || slot.ends_with("slot-0"));
    cluster.stop().unwrap();
    for pid in pids {
        assert!(!is_running(pid), "a node still runs after stop");
        // Nor the joiner's SST watchdog, which watches its server's pid.
        let watchdog = format!("--pid={pid} ");
        let left: Vec<String> = processes_mentioning(Path::new("/dev/null"))
            .into_iter()
            .filter(|process| process.contains(&watchdog))
            .collect();
        assert_eq!(left, Vec::<String>::new());
    }
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
    assert_eq!(
        slot_entries(&slot),
        ["bin", "data", "install.log", "lock", "manifest", "run"]
    );
    // The next start finds the template whole.
    let again = start(Some(cache.path()), 3);
    assert_eq!(again.notice(), None);
    assert_eq!(
        query(&again.socket(3).unwrap(), "SHOW DATABASES LIKE 'galera%'"),
        ""
    );
    drop(again);
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn overlapping_writes_from_two_nodes_fail_the_later_committer_with_1213() {
    let cluster = start(None, 2);
    runtime().block_on(async {
        let mut conns = one_row(&cluster).await;
        let (first, second) = conns.split_at_mut(1);
        let (one, two) = (&mut first[0], &mut second[0]);
        one.query_drop("BEGIN").await.unwrap();
        two.query_drop("BEGIN").await.unwrap();
        // No lock crosses nodes: both updates return at once.
        one.query_drop("UPDATE galera_test.t SET v = 1 WHERE id = 1")
            .await
            .unwrap();
        two.query_drop("UPDATE galera_test.t SET v = 2 WHERE id = 1")
            .await
            .unwrap();
        one.query_drop("COMMIT").await.unwrap();
        let err = two
            .query_drop("COMMIT")
            .await
            .expect_err("the later commit fails");
        match err {
            mysql_async::Error::Server(err) => assert_eq!(err.code, 1213, "{}", err.message),
            other => panic!("not a server error: {other}"),
        }
        assert_eq!(
            value(two, "SELECT v FROM galera_test.t WHERE id = 1").await,
            "1"
        );
    });
}

#[test]
fn for_update_on_two_nodes_is_granted_on_both_at_once() {
    let cluster = start(None, 2);
    runtime().block_on(async {
        let mut conns = one_row(&cluster).await;
        for conn in conns.iter_mut() {
            conn.query_drop("BEGIN").await.unwrap();
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                conn.query_first::<i32, _>("SELECT v FROM galera_test.t WHERE id = 1 FOR UPDATE"),
            )
            .await
            .expect("a FOR UPDATE on the other node does not wait for the first");
            assert_eq!(read.unwrap(), Some(0));
        }
        for conn in conns.iter_mut() {
            conn.query_drop("COMMIT").await.unwrap();
        }
    });
}

#[test]
fn two_clusters_at_once_get_their_own_slots_and_ports() {
    let cache = open_tempdir();
    let first = start(Some(cache.path()), 2);
    let second = start(Some(cache.path()), 2);
    assert_ne!(first.slot_dir(), second.slot_dir());
    let addresses = |cluster: &GaleraCluster| -> Vec<String> {
        (1..=2)
            .map(|node| {
                query(
                    &cluster.socket(node).unwrap(),
                    "SELECT @@wsrep_node_address",
                )
            })
            .collect()
    };
    let mut all = addresses(&first);
    all.extend(addresses(&second));
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{all:?}");
    for cluster in [&first, &second] {
        let size = query(
            &cluster.socket(1).unwrap(),
            "SHOW STATUS LIKE 'wsrep_cluster_size'",
        );
        assert_eq!(size, "wsrep_cluster_size\t2", "the clusters stay apart");
    }
    first.stop().unwrap();
    second.stop().unwrap();
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn as_root_the_nodes_run_as_an_unprivileged_user() {
    let cluster = start(None, 2);
    let ours = nix::unistd::Uid::effective();
    for node in 1..=2 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", cluster.pid(node).unwrap()))
                .unwrap();
        let uid: u32 = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|uid| uid.parse().ok())
            .expect("a Uid line");
        if ours.is_root() {
            let mysql = nix::unistd::User::from_name("mysql").unwrap();
            let nobody = nix::unistd::User::from_name("nobody").unwrap();
            let expected = mysql.or(nobody).expect("a mysql or nobody user").uid;
            assert_eq!(uid, expected.as_raw(), "node {node} runs as mysql");
        } else {
            assert_eq!(uid, ours.as_raw());
        }
    }
}

/// When set, `a_killed_run_leaves_no_node_running` is the run that is killed.
const HOLDER: &str = "ANOMALIES_TEST_GALERA_HOLDER";

#[test]
fn a_killed_run_leaves_no_node_running() {
    if let Some(cache) = std::env::var_os(HOLDER) {
        let cluster = start(Some(Path::new(&cache)), 2);
        println!(
            "holder-pids {} {}",
            cluster.pid(1).unwrap(),
            cluster.pid(2).unwrap()
        );
        let _ = std::io::stdin().read_line(&mut String::new());
        panic!("the holder was not killed");
    }
    let cache = open_tempdir();
    let (mut holder, line) = spawn_holder(
        "galera_server::a_killed_run_leaves_no_node_running",
        HOLDER,
        cache.path(),
        "holder-pids ",
    );
    let pids: Vec<u32> = line
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert_eq!(pids.len(), 2);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|pid| is_running(*pid)) {
        assert!(Instant::now() < deadline, "a node outlived its killed run");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
    let next = start(Some(cache.path()), 2);
    assert_eq!(next.notice(), None);
    assert!(next.slot_dir().ends_with("slot-0"));
    next.stop().unwrap();
}

/// Asks `conn`'s node its state until it says `Synced`, for at most 10 s.
async fn until_synced(conn: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = galera::state_of(conn).await.unwrap().state;
        if state == "Synced" {
            return;
        }
        assert!(Instant::now() < deadline, "the node stays {state}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// How many times the held node is asked for the row.
const HELD_ROUNDS: usize = 20;

#[test]
fn a_held_node_applies_nothing_until_released() {
    let cluster = start(None, 2);
    runtime().block_on(async {
        let mut conns = one_row(&cluster).await;
        let mut holder = connect(&cluster, 2).await;
        let mut reader = conns.pop().unwrap();
        let mut writer = conns.pop().unwrap();
        reader
            .query_drop("SET SESSION wsrep_sync_wait = 0")
            .await
            .unwrap();
        let (applied_before, _) = galera::applied(&mut reader).await.unwrap();
        galera::hold_appliers(&mut holder).await.unwrap();
        let mut stale = 0;
        for round in 1..=HELD_ROUNDS {
            let commit =
                writer.query_drop(format!("UPDATE galera_test.t SET v = {round} WHERE id = 1"));
            tokio::time::timeout(Duration::from_secs(5), commit)
                .await
                .expect("a commit on node 1 returns while node 2 is held")
                .unwrap();
            if value(&mut reader, "SELECT v FROM galera_test.t WHERE id = 1").await == "0" {
                stale += 1;
            }
        }
        assert_eq!(stale, HELD_ROUNDS, "every read on the held node is stale");
        let (applied_held, queued) = galera::applied(&mut reader).await.unwrap();
        assert_eq!(
            applied_held, applied_before,
            "the held node applied nothing"
        );
        assert!(
            queued >= 1,
            "what it received waits in its queue ({queued})"
        );
        let state = galera::state_of(&mut reader).await.unwrap().state;
        println!("held: {state:?}, {queued} write sets queued");

        // A read that waits for the node to catch up gives up after the provider's causal
        // read timeout, with 1205.
        let short = "SET GLOBAL wsrep_provider_options = 'repl.causal_read_timeout=PT0.3S'";
        reader.query_drop(short).await.unwrap();
        let mut impatient = connect(&cluster, 2).await;
        impatient
            .query_drop("SET SESSION wsrep_sync_wait = 1")
            .await
            .unwrap();
        let started = Instant::now();
        let given_up = impatient
            .query_drop("SELECT v FROM galera_test.t WHERE id = 1")
            .await
            .expect_err("a sync-wait read on a held node times out");
        match given_up {
            mysql_async::Error::Server(err) => assert_eq!(err.code, 1205, "{}", err.message),
            other => panic!("not a server error: {other}"),
        }
        let waited_for = started.elapsed();
        assert!(
            waited_for >= Duration::from_millis(300),
            "gave up after {waited_for:?}"
        );
        let long = "SET GLOBAL wsrep_provider_options = 'repl.causal_read_timeout=PT30S'";
        reader.query_drop(long).await.unwrap();

        // Else it waits for the release.
        const WAITING: &str = "SELECT v FROM galera_test.t WHERE id = 1 /* sync wait */";
        let mut waiter = connect(&cluster, 2).await;
        waiter
            .query_drop("SET SESSION wsrep_sync_wait = 1")
            .await
            .unwrap();
        let waited = tokio::spawn(async move {
            let read: Result<Option<i32>, _> = waiter.query_first(WAITING).await;
            read
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ids = galera::sync_waiting(&mut reader, WAITING).await.unwrap();
            if !ids.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "the sync-wait read never showed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !waited.is_finished(),
            "a sync-wait read on a held node returned"
        );
        galera::release_appliers(&mut holder).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(10), waited)
            .await
            .expect("the sync-wait read returns after the release")
            .unwrap()
            .unwrap();
        assert_eq!(read, Some(HELD_ROUNDS as i32));
        reader
            .query_drop("SET SESSION wsrep_sync_wait = 1")
            .await
            .unwrap();
        let fresh = value(&mut reader, "SELECT v FROM galera_test.t WHERE id = 1").await;
        assert_eq!(fresh, HELD_ROUNDS.to_string());
        let (applied_after, _) = galera::applied(&mut reader).await.unwrap();
        assert!(
            applied_after >= applied_before + HELD_ROUNDS as u64,
            "applied {applied_before} before the hold, {applied_after} after it"
        );
        // The node says `Synced` once it has caught up, which may be a moment after the read
        // that waited for it returned (it says `Joined` in between).
        until_synced(&mut reader).await;
    });
}

#[test]
fn a_hold_ends_with_its_connection() {
    let cluster = start(None, 2);
    runtime().block_on(async {
        let mut conns = one_row(&cluster).await;
        let mut holder = connect(&cluster, 2).await;
        galera::hold_appliers(&mut holder).await.unwrap();
        conns[0]
            .query_drop("UPDATE galera_test.t SET v = 5 WHERE id = 1")
            .await
            .unwrap();
        // Closed without UNLOCK TABLES, as by a holder that forgot or died.
        drop(holder);
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            value(&mut conns[1], "SELECT v FROM galera_test.t WHERE id = 1"),
        )
        .await
        .expect("the node applies again once its holder has gone");
        assert_eq!(read, "5");
        until_synced(&mut conns[1]).await;
        assert_eq!(value(&mut conns[1], "SELECT @@wsrep_desync").await, "0");
    });
}

#[test]
fn a_template_whose_bootstrap_was_cut_short_heals_with_a_notice() {
    let cache = open_tempdir();
    let first = start(Some(cache.path()), 2);
    let slot = first.slot_dir().to_path_buf();
    first.stop().unwrap();
    // What a run killed during the template's bootstrap leaves: a state that is not a stop.
    let grastate = slot.join("data").join("grastate.dat");
    let text = std::fs::read_to_string(&grastate).unwrap();
    let cut = text
        .lines()
        .map(|line| match line.starts_with("seqno:") {
            true => "seqno:   -1".to_string(),
            false => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&grastate, cut).unwrap();
    let healed = start(Some(cache.path()), 2);
    let notice = healed.notice().expect("a notice of the repair");
    assert!(
        notice.contains("was damaged (its Galera state is not a clean stop (seqno \"-1\""),
        "{notice}"
    );
    assert_eq!(notice.lines().count(), 1);
    let status = query(
        &healed.socket(2).unwrap(),
        "SHOW STATUS LIKE 'wsrep_cluster_size'",
    );
    assert_eq!(status, "wsrep_cluster_size\t2");
    healed.stop().unwrap();
    let again = start(Some(cache.path()), 2);
    assert_eq!(again.notice(), None, "healed once, whole since");
    again.stop().unwrap();
}
