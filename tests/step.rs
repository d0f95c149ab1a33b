//! Classroom mode, driven the way a person uses it: the real binary in a pseudo-terminal,
//! Enter to go on, q to quit, as keys (a terminal sends Enter as a carriage return). (rexpect reads the terminal byte by byte as Latin-1, so the
//! expected texts are the ASCII parts of what the screen shows.)

use std::process::Command;

use rexpect::session::{spawn_command, PtySession};

use crate::support::{open_tempdir, processes_mentioning};

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
