//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

/// The binary, with color off and no DATABASE_URL from the environment.
pub fn anomalies() -> Command {
    let mut command = Command::cargo_bin("anomalies").expect("the binary builds");
    command
        .env_remove("DATABASE_URL")
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1");
    command
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A temporary directory that an unprivileged server user can traverse (the cluster runs as
/// `postgres` when the tests run as root).
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temporary directory");
    dir
}

/// Processes whose command line mentions `path`.
pub fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

/// Whether `engine` can give the scenario the nodes it needs: a primary and a standby are
/// PostgreSQL's only.
pub fn runs_on(
    scenario: &anomalies::scenario::Scenario,
    engine: anomalies::scenario::EngineKind,
) -> bool {
    // A multi-master cluster is `--engine galera`'s only, which `--engine all` does not start.
    use anomalies::scenario::{EngineKind, Topology};
    match scenario.topology {
        Topology::Single => true,
        Topology::PrimaryStandby => engine == EngineKind::Postgres,
        Topology::MultiMaster(_) => false,
    }
}

/// Runs the test `test` of this binary again as a holder, with `env` set to `cache`, and
/// returns it with what follows `prefix` on the first line of its output that starts so: a
/// holder starts a server, prints its pids and waits until it is killed.
pub fn spawn_holder(
    test: &str,
    env: &str,
    cache: &Path,
    prefix: &str,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(env, cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(holder.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| Some(line.strip_prefix(prefix)?.trim().to_string()))
        .unwrap_or_else(|| panic!("the holder printed no `{prefix}` line"));
    (holder, line)
}

/// How many of the built-in scenarios and their fixes can run on `engine`: a fix that needs
/// what the engine lacks is not run there.
/// A scenario that needs nodes of several servers runs on PostgreSQL only.
pub fn builtin_variants(engine: anomalies::scenario::EngineKind) -> usize {
    anomalies::scenario::Scenario::builtins()
        .iter()
        .filter(|scenario| runs_on(scenario, engine))
        .map(|scenario| {
            1 + scenario
                .fixes
                .iter()
                .filter(|fix| fix.info.unavailable_on(engine).is_none())
                .count()
        })
        .sum()
}

/// `anomalies ARGS`, sent SIGINT `after` it started (stdout dropped); its output once it exits.
pub fn interrupted_after(args: &[&str], after: std::time::Duration) -> Output {
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anomalies"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

/// The runs of a JSON document that holds several (`run --level all`, `check`): its `runs`.
pub fn json_runs(text: &str) -> Vec<serde_json::Value> {
    let document: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    match document.get("runs") {
        Some(serde_json::Value::Array(runs)) => runs.clone(),
        _ => panic!("no runs in {text}"),
    }
}

/// A result set's rows (`{"columns": [...], "rows": [[...]]}`) as objects keyed by column,
/// for tests that look a value up by name.
pub fn records(set: &serde_json::Value) -> Vec<serde_json::Value> {
    let columns = set["columns"].as_array().cloned().unwrap_or_default();
    set["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    let values = row.as_array().cloned().unwrap_or_default();
                    serde_json::Value::Object(
                        columns
                            .iter()
                            .map(|c| c.as_str().unwrap_or_default().to_string())
                            .zip(values)
                            .collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
