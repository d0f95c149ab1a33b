//! Classroom mode, driven the way a person uses it: the real binary in a pseudo-terminal,
//! Enter to go on, q to quit, as keys (a terminal sends Enter as a carriage return). (rexpect reads the terminal byte by byte as Latin-1, so the
//! expected texts are the ASCII parts of what the screen shows.)

use std::process::Command;

use rexpect::session::{spawn_command, PtySession};

use crate::support::{anomalies, open_tempdir, processes_mentioning, stderr, stdout};

fn spawn(args: &[&str], envs: &[(&str, &std::path::Path)]) -> PtySession {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("anomalies"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL");
    for (key, value) in envs {
        command.env(key, value);
    }
    spawn_command(command, Some(30_000)).expect("the binary starts in a pty")
}

fn enter(session: &mut PtySession) {
    session.send("\r").unwrap();
    session.flush().unwrap();
}

#[test]
fn stepping_through_write_skew_reaches_the_verdict() {
    let mut session = spawn(
        &[
            "run",
            "write-skew",
            "--level",
            "serializable",
            "--step",
            "--engine",
            "postgres",
        ],
        &[],
    );
    // The first screen: the title, the story and the cast.
    session.exp_string("write-skew").unwrap();
    session
        .exp_string("Alice and John each have an account")
        .unwrap();
    session.exp_string("Cast").unwrap();
    session.exp_string("Enter: start").unwrap();
    enter(&mut session);
    let steps = [
        "Next: Alice: Alice opens the app to pay a 100 bill",
        "Next: John: John opens the app to pay a 100 bill",
        "Next: Alice: Alice checks that the two balances together",
        "Next: John: John checks the same rule",
        "Next: Alice: Alice pays 100 from her account",
        "Next: John: John pays 100 from his account",
        "Next: Alice: Alice's payment is done",
        "Next: John: John's payment is done",
    ];
    for (i, step) in steps.iter().enumerate() {
        session
            .exp_string(step)
            .unwrap_or_else(|e| panic!("step {i}: {e}"));
        session.exp_string("Enter: next step").unwrap();
        enter(&mut session);
    }
    session.exp_string("verdict   prevented").unwrap();
    session
        .exp_string("John's COMMIT failed with 40001")
        .unwrap();
    session.exp_string("expected  prevented by abort").unwrap();
    session.exp_string("as expected").unwrap();
    session.exp_eof().unwrap();
}

#[test]
fn quitting_midway_rolls_back_and_leaves_nothing_behind() {
    let cache = open_tempdir();
    let tmp = open_tempdir();
    let mut session = spawn(
        &[
            "run",
            "lost-update",
            "--level",
            "read-committed",
            "--step",
            "--engine",
            "postgres",
        ],
        &[
            ("ANOMALIES_CACHE_DIR", cache.path()),
            ("TMPDIR", tmp.path()),
        ],
    );
    session.exp_string("Enter: start").unwrap();
    enter(&mut session);
    // Up to John's UPDATE, which waits for Alice's row lock; quit while it waits.
    for _ in 0..6 {
        session.exp_string("Enter: next step").unwrap();
        enter(&mut session);
    }
    session.exp_string("waits for Alice").unwrap();
    session
        .exp_string("Next: Alice: Alice's purchase is done")
        .unwrap();
    session.send("q").unwrap();
    session.flush().unwrap();
    session
        .exp_string("quit before the end; cleaned up")
        .unwrap();
    session.exp_eof().unwrap();
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn pace_advances_by_itself_on_sqlite() {
    let mut session = spawn(
        &[
            "run",
            "dirty-read",
            "--level",
            "read-uncommitted",
            "--pace",
            "1ms",
            "--engine",
            "sqlite",
        ],
        &[],
    );
    session.exp_string("next step in 1ms").unwrap();
    session.exp_string("verdict   anomaly").unwrap();
    session.exp_string("John read a balance of 700").unwrap();
    session.exp_eof().unwrap();
}

/// Every step an attempt sends is one keypress, the retried attempt's too, and "Next:" shows
/// the SQL with the values read filled in.
#[test]
fn a_retry_is_stepped_through_one_event_at_a_time() {
    let mut session = spawn(
        &[
            "run",
            "lost-update",
            "--fix",
            "serializable-retry",
            "--step",
            "--engine",
            "postgres",
            "--width",
            "100",
        ],
        &[],
    );
    session.exp_string("Enter: start").unwrap();
    enter(&mut session);
    let mut screens = Vec::new();
    loop {
        let (before, found) = session
            .exp_regex("(Enter: next step|verdict   )")
            .unwrap_or_else(|e| panic!("after {} screens: {e}", screens.len()));
        if found.starts_with("verdict") {
            break;
        }
        screens.push(before);
        enter(&mut session);
    }
    session.exp_eof().unwrap();
    let next = |screen: &str| {
        let at = screen.rfind("Next: ").expect("a Next: line");
        screen[at..].to_string()
    };
    let nexts: Vec<String> = screens.iter().map(|s| next(s)).collect();
    // The retried attempt's steps each get a screen of their own.
    let again: Vec<&String> = nexts.iter().filter(|n| n.contains("(attempt 2)")).collect();
    assert!(again.len() >= 3, "one screen per retried step:\n{nexts:#?}");
    // The SQL as it will be sent: the balance read, not the template's hole.
    assert!(nexts.iter().all(|n| !n.contains("${")), "{nexts:#?}");
    assert!(
        nexts
            .iter()
            .any(|n| n.contains("UPDATE accounts SET balance = 200 - 50")),
        "{nexts:#?}"
    );
}

/// Ctrl-C while step mode waits for a key: the run is cleaned up and the exit code is 130.
#[test]
fn ctrl_c_in_step_mode_exits_130_after_cleanup() {
    let cache = open_tempdir();
    let mut session = spawn(
        &[
            "run",
            "lost-update",
            "--level",
            "read-committed",
            "--step",
            "--engine",
            "postgres",
        ],
        &[("ANOMALIES_CACHE_DIR", cache.path())],
    );
    session.exp_string("Enter: start").unwrap();
    enter(&mut session);
    for _ in 0..3 {
        session.exp_string("Enter: next step").unwrap();
        enter(&mut session);
    }
    session.exp_string("Enter: next step").unwrap();
    session.send_control('c').unwrap();
    session.exp_string("interrupted; cleaned up").unwrap();
    session.exp_eof().unwrap();
    // rexpect's WaitStatus is of its own nix version: compared by its Debug form.
    let status = format!("{:?}", session.process().wait().unwrap());
    assert!(
        status.starts_with("Exited(") && status.ends_with(", 130)"),
        "{status}"
    );
    assert_eq!(processes_mentioning(cache.path()), Vec::<String>::new());
}

#[test]
fn step_with_pace_is_a_usage_error() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--step",
            "--pace",
            "1ms",
            "--engine",
            "sqlite",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot be used with"),
        "{}",
        stderr(&output)
    );
}

/// Into a pipe, `--pace` prints plain frames: the first screen, one per step, then the run,
/// and not one escape sequence.
#[test]
fn pace_into_a_pipe_prints_plain_frames() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--pace",
            "1ms",
            "--engine",
            "sqlite",
            "--level",
            "serializable",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.contains("Cast\n  Alice"), "{text}");
    assert_eq!(text.matches("\nNext: ").count(), 8, "{text}");
    assert!(text.contains("expected  prevented by abort"), "{text}");
}
