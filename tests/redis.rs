//! Redis steps end to end: the throwaway redis-server dies with a killed run and leaves no
//! socket; on a user's Redis (one this test starts) a run leaves no key of its own, a killed
//! run's keys are swept by the next run, and keys that are not the tool's are never touched;
//! the timeline's JSON carries Redis's replies; an unreachable Redis fails fast, without its
//! password.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr, stdout};

/// A scenario whose John waits, with `until`, for a lease of Alice's that lasts a minute: a run
/// that stays midway until it is killed.
const SLOW: &str = r#"id = "slow-lease"
title = "A lease that outlasts the test"
anomaly = "none"
code = "none"
story = "Alice holds a lock for a minute; John waits for it."
setup = "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (0);"

[[session]]
name = "alice"
[[session.step]]
name = "lock"
redis = "SET held-lock alice NX PX 60000"
say = "Alice takes the lock for a minute"

[[session]]
name = "john"
[[session.step]]
name = "wait"
until = "held-lock expired"
say = "John waits for Alice's lease"
[[session.step]]
name = "write"
sql = "UPDATE t SET v = 1"
say = "John writes"

[[interleaving]]
name = "only"
steps = ["alice.lock", "john.wait", "john.write"]

[outcome]
final = "SELECT v FROM t"
anomaly_if = "final.v = 1"
anomaly = "v is {final.v}"
prevented = "v is {final.v}"
"#;

/// Redis's server program: redis-server, or redis-check-rdb run under that name.
fn redis_server() -> Command {
    for path in ["/usr/bin/redis-server", "/usr/bin/redis-check-rdb"] {
        if Path::new(path).exists() {
            let mut command = Command::new(path);
            std::os::unix::process::CommandExt::arg0(&mut command, "redis-server");
            return command;
        }
    }
    panic!("no redis-server nor redis-check-rdb in /usr/bin: scripts/test installs redis-tools");
}

/// A Redis of the test's own, standing in for a user's: a Unix socket, no TCP, no persistence.
struct UsersRedis {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl UsersRedis {
    fn start() -> UsersRedis {
        let dir = open_tempdir();
        let socket = dir.path().join("redis.sock");
        let child = redis_server()
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocket",
            ])
            .arg(&socket)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = UsersRedis {
            child,
            socket,
            _dir: dir,
        };
        wait_until("the test's Redis answers", || {
            redis.cli(&["PING"]) == "PONG"
        });
        redis
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("redis-cli runs (scripts/test installs redis-tools)");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Every key, sorted.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cli(&["--scan"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for UsersRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` (asking, never guessing a sleep) for up to 30 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the Redis at `socket` has a key whose name contains `part`.
fn has_key(socket: &Path, part: &str) -> bool {
    socket.exists()
        && Command::new("redis-cli")
            .arg("-s")
            .arg(socket)
            .arg("--scan")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(part))
}

/// `anomalies run distributed-lock --fix FIX --engine sqlite --redis-url URL`, which must succeed.
fn run_fix(fix: &str, url: &str) -> String {
    let output = anomalies()
        .args([
            "run",
            "distributed-lock",
            "--fix",
            fix,
            "--engine",
            "sqlite",
        ])
        .args(["--redis-url", url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{fix}: {}", stderr(&output));
    stdout(&output)
}

fn spawn_slow(file: &Path, cache: &Path, redis_url: Option<&str>) -> Child {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("anomalies"));
    command
        .arg("run")
        .arg(file)
        .args(["--engine", "sqlite", "--step-timeout", "90s"])
        .env("ANOMALIES_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = redis_url {
        command.args(["--redis-url", url]);
    }
    command.spawn().expect("the binary runs")
}

fn slow_file(dir: &Path) -> PathBuf {
    let file = dir.join("slow-lease.toml");
    std::fs::write(&file, SLOW).unwrap();
    file
}

#[test]
fn a_killed_run_leaves_no_redis_server_and_no_socket() {
    let dir = open_tempdir();
    let cache = dir.path().join("cache");
    let file = slow_file(dir.path());
    let mut run = spawn_slow(&file, &cache, None);
    let slot = cache.join("redis-7.0").join("slot-0");
    let socket = slot.join("redis.sock");
    // Midway: Alice's key is set, so John waits for it.
    wait_until("Alice's lock is in the throwaway Redis", || {
        has_key(&socket, "held-lock")
    });
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run is still waiting"
    );
    assert!(
        !processes_mentioning(&slot).is_empty(),
        "its redis-server runs"
    );
    run.kill().unwrap();
    run.wait().unwrap();
    wait_until("the throwaway Redis is gone", || {
        processes_mentioning(&slot).is_empty()
    });
    wait_until("its socket is gone", || !socket.exists());
    assert!(!slot.join("redis.pid").exists(), "its pid file is gone");
}

#[test]
fn a_users_redis_keeps_no_key_of_a_run_and_every_key_of_its_own() {
    let redis = UsersRedis::start();
    redis.cli(&["SET", "app:bill-lock", "someone"]);
    redis.cli(&["SET", "anomalies-settings", "theirs"]);
    for fix in ["redis-setnx", "redis-safe-release", "redis-fencing"] {
        let printed = run_fix(fix, &redis.url());
        assert!(
            printed.contains("Redis 7.0"),
            "{fix}: the header names the Redis: {printed}"
        );
        assert_eq!(
            redis.keys(),
            ["anomalies-settings", "app:bill-lock"],
            "after {fix}"
        );
    }
    assert_eq!(redis.cli(&["GET", "app:bill-lock"]), "someone");

    // A run killed midway leaves its key; the next run deletes it, and only it.
    let dir = open_tempdir();
    let file = slow_file(dir.path());
    let cache = dir.path().join("cache");
    let mut killed = spawn_slow(&file, &cache, Some(&redis.url()));
    wait_until("the killed run's key is there", || redis.keys().len() == 3);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let left = redis.keys();
    assert!(
        left.iter()
            .any(|k| k.starts_with("anomalies:") && k.ends_with(":held-lock")),
        "SIGKILL leaves the run's key: {left:?}"
    );
    run_fix("redis-setnx", &redis.url());
    assert_eq!(redis.keys(), ["anomalies-settings", "app:bill-lock"]);
}

#[test]
fn ctrl_c_leaves_no_key_and_no_server() {
    let redis = UsersRedis::start();
    let dir = open_tempdir();
    let file = slow_file(dir.path());
    let cache = dir.path().join("cache");
    for url in [Some(redis.url()), None] {
        let mut run = spawn_slow(&file, &cache, url.as_deref());
        let slot = cache.join("redis-7.0").join("slot-0");
        let socket = slot.join("redis.sock");
        match &url {
            Some(_) => wait_until("the run's key is there", || redis.keys().len() == 1),
            None => wait_until("the throwaway Redis has the key", || {
                has_key(&socket, "held-lock")
            }),
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(run.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = run.wait().unwrap();
        assert_eq!(status.code(), Some(130), "Ctrl-C exits 130");
        assert!(redis.keys().is_empty(), "no key left: {:?}", redis.keys());
        assert!(
            processes_mentioning(&slot).is_empty(),
            "no throwaway Redis left"
        );
        assert!(!socket.exists(), "no socket left");
    }
}

#[test]
fn a_live_runs_keys_are_not_swept() {
    let redis = UsersRedis::start();
    let dir = open_tempdir();
    let file = slow_file(dir.path());
    let mut live = spawn_slow(&file, &dir.path().join("cache"), Some(&redis.url()));
    wait_until("the live run's key is there", || redis.keys().len() == 1);
    run_fix("redis-setnx", &redis.url());
    assert_eq!(redis.keys().len(), 1, "the live run's key stays");
    live.kill().unwrap();
    live.wait().unwrap();
}

#[test]
fn replies_are_in_the_json_timeline() {
    let output = anomalies()
        .args([
            "run",
            "distributed-lock",
            "--fix",
            "redis-setnx",
            "--engine",
            "sqlite",
        ])
        .args(["--level", "read-committed", "--format", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert!(run["engine"]["redis"]
        .as_str()
        .is_some_and(|r| r.starts_with("Redis 7.0") && r.ends_with("(throwaway server)")));
    let events = run["timeline"].as_array().unwrap();
    let event = |session: &str, step: &str| -> &Value {
        events
            .iter()
            .rev()
            .find(|e| e["session"] == session && e["step"] == step)
            .unwrap_or_else(|| panic!("no {session}.{step} in {events:?}"))
    };
    assert_eq!(
        event("alice", "lock")["redis"],
        "SET bill-lock alice NX PX 100"
    );
    assert_eq!(event("alice", "lock")["result"]["value"], "OK");
    let refused = &event("john", "lock")["result"];
    assert_eq!(refused["value"], Value::Null);
    assert_eq!(refused["held"]["by"], "alice");
    assert_eq!(refused["held"]["value"], "alice");
    let ttl = refused["held"]["ttl_ms"].as_i64().unwrap();
    assert!(
        (0..=100).contains(&ttl),
        "{ttl} ms of Alice's 100 ms lease left"
    );
    let wait = event("john", "wait");
    assert_eq!(wait["event"], "resumed");
    assert_eq!(wait["until"], "bill-lock");
    assert_eq!(wait["result"]["value"], -2);
    assert_eq!(event("alice", "unlock")["result"]["value"], 1);
    assert_eq!(event("john", "unlock")["result"]["value"], 0);
    assert_eq!(run["verdict"], "anomaly");
}

#[test]
fn an_unreachable_redis_fails_fast_without_its_password() {
    let started = Instant::now();
    let output = anomalies()
        .args([
            "run",
            "distributed-lock",
            "--fix",
            "redis-setnx",
            "--engine",
            "sqlite",
        ])
        .args(["--redis-url", "redis://:hunter2@127.0.0.1:1/0"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.starts_with("error: cannot connect to Redis at redis://127.0.0.1:1/0: "),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
