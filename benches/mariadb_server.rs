//! `cargo bench --bench mariadb_server`: what the throwaway MariaDB server costs. Prints medians
//! and spreads; asserts nothing but that it works.
//!
//! - cold start: an empty cache to a server that accepts connections (`mariadb-install-db`
//!   included), each in a fresh private cache;
//! - install: the `mariadb-install-db` part of it, timed apart from the server's first start;
//! - warm start: a cached slot to a server that accepts connections;
//! - stop: SIGTERM (fast shutdown) until the server has exited;
//! - Galera (alone with `-- galera`): a cold cluster of 2 (the template made and bootstrapped in a fresh cache), warm
//!   starts of 2 and 3 nodes (every node Synced in the whole cluster) and their stops.

use std::path::Path;
use std::time::{Duration, Instant};

use anomalies::engine::mariadb::galera::GaleraCluster;
use anomalies::engine::mariadb::server::MariaServer;

#[path = "support/stats.rs"]
mod stats;
use stats::stats;

const COLD_ROUNDS: usize = 5;
const WARM_ROUNDS: usize = 30;
const GALERA_COLD_ROUNDS: usize = 3;
const GALERA_WARM_ROUNDS: usize = 10;

fn main() {
    // `cargo bench --bench mariadb_server -- galera`: the cluster's figures only.
    if std::env::args().any(|arg| arg == "galera") {
        return galera();
    }
    let mut colds = Vec::new();
    let mut installs = Vec::new();
    for _ in 0..COLD_ROUNDS {
        let cache = open_tempdir();
        let started = Instant::now();
        let server = MariaServer::start_in(None, cache.path()).expect("a cold start");
        colds.push(started.elapsed());
        installs.extend(install_time(server.slot_dir()));
        server.stop().expect("a stop");
    }
    let cache = open_tempdir();
    MariaServer::start_in(None, cache.path())
        .expect("a first start")
        .stop()
        .expect("a stop");
    let mut warms = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..WARM_ROUNDS {
        let started = Instant::now();
        let server = MariaServer::start_in(None, cache.path()).expect("a warm start");
        warms.push(started.elapsed());
        assert!(server.notice().is_none(), "{:?}", server.notice());
        let started = Instant::now();
        server.stop().expect("a stop");
        stops.push(started.elapsed());
    }
    println!("\nthrowaway MariaDB server");
    println!("  cold start (install + start): {}", stats(&mut colds));
    if !installs.is_empty() {
        println!("  of which mariadb-install-db:  {}", stats(&mut installs));
    }
    println!("  warm start:                   {}", stats(&mut warms));
    println!("  stop:                         {}", stats(&mut stops));
    galera();
}

/// The Galera cluster's cold start, warm starts of 2 and 3 nodes, and their stops.
fn galera() {
    let mut colds = Vec::new();
    for _ in 0..GALERA_COLD_ROUNDS {
        let cache = open_tempdir();
        let started = Instant::now();
        let cluster = GaleraCluster::start_in(None, cache.path(), 2).expect("a cold start");
        colds.push(started.elapsed());
        cluster.stop().expect("a stop");
    }
    let cache = open_tempdir();
    GaleraCluster::start_in(None, cache.path(), 2)
        .expect("a first start")
        .stop()
        .expect("a stop");
    println!("\nthrowaway Galera cluster");
    println!("  cold start, 2 nodes:          {}", stats(&mut colds));
    for nodes in [2, 3] {
        let mut warms = Vec::new();
        let mut stops = Vec::new();
        for _ in 0..GALERA_WARM_ROUNDS {
            let started = Instant::now();
            let cluster = GaleraCluster::start_in(None, cache.path(), nodes).expect("a warm start");
            warms.push(started.elapsed());
            assert!(cluster.notice().is_none(), "{:?}", cluster.notice());
            let started = Instant::now();
            cluster.stop().expect("a stop");
            stops.push(started.elapsed());
        }
        println!(
            "  warm start, {nodes} nodes:          {}",
            stats(&mut warms)
        );
        println!(
            "  stop, {nodes} nodes:                {}",
            stats(&mut stops)
        );
    }
}

/// How long `mariadb-install-db` ran: from its log's birth to the manifest written after it
/// (`None` where the file system keeps no birth times).
fn install_time(slot: &Path) -> Option<Duration> {
    let born = std::fs::metadata(slot.join("install.log"))
        .and_then(|meta| meta.created())
        .ok()?;
    let manifest = std::fs::metadata(slot.join("manifest"))
        .and_then(|meta| meta.modified())
        .ok()?;
    manifest.duration_since(born).ok()
}

/// A temporary directory the server's user can traverse when we are root.
fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temporary directory");
    dir
}
