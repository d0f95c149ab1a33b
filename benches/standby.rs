//! The throwaway primary and hot standby, as a user meets them: the whole command
//! `anomalies run stale-replica-read`, cold (a new cache: initdb, then `pg_basebackup` for the
//! standby) and warm (the cached pair started, the run, both stopped), beside the same command
//! on one throwaway server (`lost-update`), the two alternating round by round so both see
//! the same machine. Each figure is the median of its rounds (p90 and minimum beside it).
//!
//! `cargo bench --bench standby`

use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/stats.rs"]
mod support;
use support::stats;

const WARM_ROUNDS: usize = 20;
const COLD_ROUNDS: usize = 3;

fn main() {
    let binary = env!("CARGO_BIN_EXE_anomalies");
    let run = |args: &[&str], cache: Option<&std::path::Path>| {
        let mut command = Command::new(binary);
        command.args(args).args(["--format", "json"]);
        if let Some(cache) = cache {
            command.env("ANOMALIES_CACHE_DIR", cache);
        }
        let started = Instant::now();
        let output = command.output().expect("the binary runs");
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        took
    };
    let pair = ["run", "stale-replica-read", "--level", "read-committed"];
    let fix = [
        "run",
        "stale-replica-read",
        "--fix",
        "read-your-writes",
        "--level",
        "read-committed",
    ];
    let all = ["run", "stale-replica-read", "--level", "all"];
    let single = ["run", "lost-update", "--level", "read-committed"];

    println!("cold: a new cache each round ({COLD_ROUNDS} rounds, alternating)");
    let (mut cold_pair, mut cold_single) = (Vec::new(), Vec::new());
    for _ in 0..COLD_ROUNDS {
        let cache = tempfile::tempdir().expect("a cache directory");
        open(cache.path());
        cold_pair.push(run(&pair, Some(cache.path())));
        let cache = tempfile::tempdir().expect("a cache directory");
        open(cache.path());
        cold_single.push(run(&single, Some(cache.path())));
    }
    println!("  {}: {}", pair.join(" "), stats(&mut cold_pair));
    println!("  {}: {}", single.join(" "), stats(&mut cold_single));

    // Fill the default cache's slots first.
    run(&pair, None);
    run(&single, None);
    println!("\nwarm: the cached servers started and stopped ({WARM_ROUNDS} rounds, alternating)");
    let mut times: [Vec<Duration>; 4] = Default::default();
    for _ in 0..WARM_ROUNDS {
        for (i, args) in [&pair[..], &fix[..], &all[..], &single[..]]
            .iter()
            .enumerate()
        {
            times[i].push(run(args, None));
        }
    }
    for (args, samples) in [&pair[..], &fix[..], &all[..], &single[..]]
        .iter()
        .zip(times.iter_mut())
    {
        println!("  {}: {}", args.join(" "), stats(samples));
    }
}

/// As root the servers run as an unprivileged user, who must reach the cache.
fn open(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}
