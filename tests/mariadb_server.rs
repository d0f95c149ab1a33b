//! The throwaway MariaDB server: it starts, answers on its socket as configured, stops and
//! leaves nothing running; two at once take two slots; as root it runs as an unprivileged user;
//! a killed run's server dies with it; missing or failing binaries are one line. The damage
//! cases are in `mariadb_heal.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anomalies::engine::mariadb::server::{MariaServer, LOCK_WAIT_TIMEOUT};
use anomalies::engine::EngineError;

use crate::support::{open_tempdir, processes_mentioning, spawn_holder};

/// Starts a server, in `cache` or else the tool's cache; fails (never skips) when MariaDB is
/// not installed.
pub fn start(cache: Option<&Path>) -> MariaServer {
    let started = match cache {
        Some(cache) => MariaServer::start_in(None, cache),
        None => MariaServer::start(None),
    };
    started.unwrap_or_else(|err| panic!("{err} (scripts/test installs MariaDB)"))
}

/// What the `mariadb` client prints for `sql` on the server at `socket`: tab-separated
/// values, one row a line, no header.
pub fn query(socket: &Path, sql: &str) -> String {
    let output = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args(["--batch", "--skip-column-names", "-e", sql])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run the mariadb client ({err}): install it (apt-get install \
                 mariadb-client-core; scripts/test does)"
            )
        });
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string()
}

/// Creates, calls and drops a stored procedure: the system tables a scenario's fixes need are
/// whole (`mysql.proc` is read only then, not when the server starts).
pub fn procedures_work(socket: &Path) {
    let answer = query(
        socket,
        "CREATE DATABASE anomalies_probe; \
         CREATE PROCEDURE anomalies_probe.p() SELECT 41 + 1; \
         CALL anomalies_probe.p(); \
         DROP DATABASE anomalies_probe",
    );
    assert_eq!(answer, "42");
}

pub fn is_running(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

/// Waits up to 20 s for `pid` to be gone.
fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_running(pid) {
        assert!(
            Instant::now() < deadline,
            "the server (pid {pid}) still runs"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a slot holds besides its data directory once its server has stopped, and what is in
/// its run directory: nothing temporary may be left.
fn leftovers(slot: &Path) -> Vec<String> {
    let mut left = Vec::new();
    for name in ["data.tmp", "data.damaged", "manifest.tmp"] {
        if slot.join(name).exists() {
            left.push(name.to_string());
        }
    }
    for entry in std::fs::read_dir(slot.join("run")).unwrap() {
        left.push(format!(
            "run/{}",
            entry.unwrap().file_name().to_string_lossy()
        ));
    }
    left
}

#[test]
fn a_server_starts_answers_as_configured_and_stops_leaving_only_its_slot() {
    let server = start(None);
    let pid = server.pid().unwrap();
    let slot = server.slot_dir().to_path_buf();
    assert!(server.version().contains("MariaDB"), "{}", server.version());
    let settings = query(
        server.socket(),
        "SELECT VERSION(), @@max_connections, @@innodb_lock_wait_timeout, @@log_bin, \
         @@skip_networking, @@innodb_fast_shutdown, @@character_set_server",
    );
    let expected = format!(
        "{}\t250\t{}\t0\t1\t2\tutf8mb4",
        server.version(),
        LOCK_WAIT_TIMEOUT.as_secs()
    );
    assert_eq!(settings, expected);
    procedures_work(server.socket());
    let socket = server.socket().to_path_buf();
    server.stop().unwrap();
    assert!(!is_running(pid), "the server still runs after stop");
    assert!(!socket.exists(), "the socket is left");
    assert_eq!(leftovers(&slot), Vec::<String>::new());
    assert!(
        slot.join("data").join("ibdata1").is_file(),
        "the slot stays"
    );
}

#[test]
fn dropping_a_server_stops_it() {
    let server = start(None);
    let pid = server.pid().unwrap();
    drop(server);
    assert!(!is_running(pid), "the server still runs after drop");
}

#[test]
fn two_servers_at_once_take_two_slots() {
    let cache = open_tempdir();
    let first = start(Some(cache.path()));
    let second = start(Some(cache.path()));
    assert_ne!(first.slot_dir(), second.slot_dir());
    assert_ne!(first.socket(), second.socket());
    assert_eq!(query(first.socket(), "SELECT 1"), "1");
    assert_eq!(query(second.socket(), "SELECT 2"), "2");
    assert!(first.notice().is_none() && second.notice().is_none());
    let pids = [first.pid().unwrap(), second.pid().unwrap()];
    first.stop().unwrap();
    second.stop().unwrap();
    for pid in pids {
        assert!(!is_running(pid), "a server still runs");
    }
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn the_server_runs_as_an_unprivileged_user_when_we_are_root() {
    let server = start(None);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid().unwrap()))
        .expect("the server's /proc status");
    let uid: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .expect("a Uid line");
    let ours = nix::unistd::Uid::effective();
    if ours.is_root() {
        let mysql = nix::unistd::User::from_name("mysql").unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap();
        let expected = mysql.or(nobody).expect("a mysql or nobody user").uid;
        assert_eq!(uid, expected.as_raw(), "as root, the server runs as mysql");
        let slot_owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(server.slot_dir().join("data")).unwrap(),
        );
        assert_eq!(
            slot_owner,
            expected.as_raw(),
            "its data directory is its own"
        );
    } else {
        assert_eq!(uid, ours.as_raw(), "the server runs as we do");
    }
    server.stop().unwrap();
}

/// When set, `a_killed_run_leaves_no_server_running` is the run that is killed: it starts a
/// server in this cache, prints its pid, and waits.
const HOLDER: &str = "ANOMALIES_TEST_MARIADB_HOLDER";

#[test]
fn a_killed_run_leaves_no_server_running() {
    if let Some(cache) = std::env::var_os(HOLDER) {
        let server = start(Some(Path::new(&cache)));
        println!("holder-pid {}", server.pid().unwrap());
        // Until killed: stdin stays open.
        let _ = std::io::stdin().read_line(&mut String::new());
        panic!("the holder was not killed");
    }
    let cache = open_tempdir();
    let (mut holder, line) = spawn_holder(
        "mariadb_server::a_killed_run_leaves_no_server_running",
        HOLDER,
        cache.path(),
        "holder-pid ",
    );
    let pid: u32 = line.parse().expect("the holder prints its server's pid");
    assert!(is_running(pid));
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The parent-death signal stops it.
    wait_gone(pid);
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
    // Its slot is whole: the next run takes it with nothing to repair.
    let next = start(Some(cache.path()));
    assert_eq!(next.notice(), None);
    assert!(next.slot_dir().ends_with("slot-0"));
    next.stop().unwrap();
}

/// An executable shell script at `path` with `body`.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The one-line error of a start from `bindir`, as the tool prints it.
fn start_error(bindir: &Path) -> String {
    let cache = open_tempdir();
    let err = MariaServer::start_in(Some(bindir), cache.path())
        .expect_err("a start from broken binaries fails");
    let message = EngineError::from(err).to_string();
    assert_eq!(message.lines().count(), 1, "{message}");
    message
}

#[test]
fn missing_or_wrong_binaries_are_one_line_that_says_how_to_install() {
    let bindir = open_tempdir();
    let message = start_error(bindir.path());
    let looked = format!(
        "no MariaDB server (mariadbd or mysqld) in {}",
        bindir.path().display()
    );
    assert!(message.contains(&looked), "{message}");
    assert!(
        message.contains("apt-get install mariadb-server"),
        "{message}"
    );
    let server: PathBuf = bindir.path().join("mariadbd");
    script(&server, "echo 'mariadbd  Ver 10.11.0-MariaDB for test'");
    let message = start_error(bindir.path());
    assert!(message.contains("has no mariadb-install-db"), "{message}");
    assert!(
        message.contains("apt-get install mariadb-server"),
        "{message}"
    );
    std::fs::remove_file(&server).unwrap();
    script(
        &bindir.path().join("mysqld"),
        "echo 'mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'",
    );
    let message = start_error(bindir.path());
    assert!(
        message.contains("is MySQL 8.0.36, not MariaDB"),
        "{message}"
    );
}

#[test]
fn a_failing_install_is_one_line() {
    let bindir = open_tempdir();
    script(
        &bindir.path().join("mariadbd"),
        "echo 'mariadbd  Ver 10.11.0-MariaDB for test'",
    );
    script(
        &bindir.path().join("mariadb-install-db"),
        "echo 'Installing MariaDB/MySQL system tables'; \
         echo '2026-01-01  0:00:00 0 [ERROR] the disk is made of cheese' >&2; exit 1",
    );
    let message = start_error(bindir.path());
    assert!(
        message.contains("mariadb-install-db failed")
            && message.contains(": the disk is made of cheese (its output is in "),
        "{message}"
    );
}
