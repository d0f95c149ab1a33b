//! `--format html` in a real browser: headless Chromium (Debian's package), driven over the
//! DevTools protocol by tests/browser/step.mjs (Node, no npm package). It clicks Next to the
//! end and reads the DOM; the screenshot is left in target/ to look at.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{anomalies, stderr, stdout};

fn chromium() -> String {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is installed (scripts/test installs it)")
        .to_string()
}

/// The page for `args`, written to target/, stepped through in the browser.
fn step_through(name: &str, args: &[&str], tab: Option<&str>) -> serde_json::Value {
    let output = anomalies()
        .arg("run")
        .args(args)
        .args(["--format", "html"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no network"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("{name}.html"));
    std::fs::write(&file, &page).unwrap();
    let shot = dir.join(format!("{name}.png"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/step.mjs");
    // The browser's profile is made under TMPDIR: one of the test's own, which must be empty
    // again once the script has ended.
    let tmp = tempfile::tempdir().unwrap();
    let mut command = Command::new("node");
    command.env("TMPDIR", tmp.path());
    command.arg(script).arg(chromium()).arg(&file).arg(&shot);
    if let Some(tab) = tab {
        command.arg(tab);
    }
    let driven = command.output().expect("node runs");
    assert!(
        driven.status.success(),
        "{}{}",
        String::from_utf8_lossy(&driven.stdout),
        String::from_utf8_lossy(&driven.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the browser's profile was left: {left:?}");
    serde_json::from_slice(&driven.stdout).unwrap()
}

#[test]
fn next_steps_through_every_event_to_the_verdict_in_a_browser() {
    let state = step_through(
        "lost-update",
        &[
            "lost-update",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ],
        None,
    );
    let events = state["events"].as_u64().unwrap();
    assert!(events >= 8, "{state}");
    assert_eq!(state["before"], "Press Next (or →) to send the first step.");
    assert_eq!(state["clicks"], events, "one click per event: {state}");
    assert_eq!(state["shown"], events, "{state}");
    assert_eq!(state["count"], format!("{events} / {events}"));
    assert_eq!(
        state["afterLeft"],
        format!("{} / {events}", events - 1),
        "← goes back"
    );
    assert_eq!(state["verdictHidden"], false, "{state}");
    assert!(
        state["summary"]
            .as_str()
            .unwrap()
            .starts_with("prevented — "),
        "{state}"
    );
    assert_eq!(
        state["now"], state["summary"],
        "the verdict, large, at the end"
    );
    assert_eq!(state["external"], 0, "self-contained: {state}");
    assert_eq!(state["tabs"], 0);
}

#[test]
fn every_level_is_a_tab_of_one_page() {
    let state = step_through(
        "write-skew-all",
        &["write-skew", "--engine", "sqlite", "--level", "all"],
        Some("3"),
    );
    assert_eq!(state["tabs"], 4, "{state}");
    assert_eq!(state["visibleRuns"], 1, "only the chosen tab: {state}");
    assert_eq!(state["shown"], state["events"], "{state}");
    assert!(
        state["summary"].as_str().unwrap().contains("200 floor"),
        "{state}"
    );
}
