//! PostgreSQL's isolation tester as `benches/explore.rs` runs it: the orders as one spec, the
//! spec of the first order alone, one run of the tester on a spec, and where the tester is.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anomalies::level::Level;
use anomalies::scenario::{Interleaving, Scenario};

use super::tables;

/// The scenario as an isolation tester spec, with one permutation per order.
pub fn spec(scenario: &Scenario, level: Level, orders: &[Interleaving]) -> String {
    let tables = tables(scenario);
    let mut spec = format!(
        "setup {{ {} }}\nteardown {{ DROP TABLE {}; }}\n",
        scenario.setup.trim(),
        tables.join(", ")
    );
    for session in &scenario.sessions {
        spec.push_str(&format!(
            "session {0}\nsetup {{ SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {1}; }}\n",
            session.name,
            level.sql()
        ));
        for step in &session.steps {
            spec.push_str(&format!(
                "step {}_{} {{ {} }}\n",
                session.name,
                step.name,
                step.sql.render(|_| String::new())
            ));
        }
    }
    for order in orders {
        let steps: Vec<String> = order
            .steps
            .iter()
            .map(|id| {
                format!(
                    "{}_{}",
                    scenario.sessions[id.session].name,
                    scenario.step(*id).name
                )
            })
            .collect();
        spec.push_str(&format!("permutation {}\n", steps.join(" ")));
    }
    spec
}

pub fn spec_first_only(spec: &str) -> String {
    let mut seen = false;
    spec.lines()
        .filter(|line| {
            if !line.starts_with("permutation") {
                return true;
            }
            let keep = !seen;
            seen = true;
            keep
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

pub fn run_tester(tester: &Path, conninfo: &str, spec: &str) -> Duration {
    let started = Instant::now();
    let mut child = Command::new(tester)
        .arg(conninfo)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the isolation tester starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.as_bytes())
        .expect("write the spec");
    let output = child.wait_with_output().expect("the isolation tester ends");
    assert!(
        output.status.success(),
        "isolation tester failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    started.elapsed()
}

/// The isolation tester that ships with the server binaries (postgresql-client-NN on Debian).
pub fn isolation_tester(bindir: &Path) -> PathBuf {
    let real = std::fs::canonicalize(bindir.join("postgres")).expect("postgres binary");
    let tester = real
        .parent()
        .and_then(Path::parent)
        .expect("server directory")
        .join("lib/pgxs/src/test/isolation/isolationtester");
    assert!(
        tester.exists(),
        "no isolation tester at {}",
        tester.display()
    );
    tester
}
