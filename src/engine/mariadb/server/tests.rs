//! What only the module itself can reach: a server taken out of its MariaServer, as a killed
//! run would leave it.

use std::thread;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_server_left_running_is_stopped_by_the_next_run() {
    let cache = tempfile::tempdir().unwrap();
    open_to_all(cache.path());
    let left = MariaServer::start_in(None, cache.path()).unwrap();
    // Releases the slot and leaves the server running, as a killed run would.
    let MariaServer {
        server: mut orphan,
        _lock,
        ..
    } = left;
    drop(_lock);
    let next = MariaServer::start_in(None, cache.path()).unwrap();
    assert_eq!(next.slot, 0, "the next run takes the orphan's slot");
    // The next run stopped the orphan before its own server started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while orphan.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the orphaned server still runs");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(next.socket().exists());
    next.stop().unwrap();
    orphan.join_drain();
}

#[test]
fn outlives_the_thread_that_started_it() {
    let server = thread::spawn(|| MariaServer::start(None).unwrap())
        .join()
        .unwrap();
    let pid = server.pid().unwrap();
    // Time for a parent-death signal to arrive, were it tied to that thread.
    thread::sleep(Duration::from_millis(300));
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok(),
        "the server died with the thread that started it"
    );
    server.stop().unwrap();
}

#[test]
fn maria_server_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MariaServer>();
}

/// A temporary cache the server's user can reach when the tests run as root.
fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}
