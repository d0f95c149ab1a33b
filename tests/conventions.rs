//! The conventions a CLI user expects: completions, a manual page, short level names, help
//! that shows no empty environment value, and one mention of a missing file.

use crate::support::{anomalies, stderr, stdout};

#[test]
fn completions_for_every_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let output = anomalies().args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let text = stdout(&output);
        for word in ["explore", "matrix", "level", "width", "completions"] {
            assert!(text.contains(word), "{shell}: no {word} in\n{text}");
        }
    }
}

/// bash itself reads the script and completes `anomalies mat` to `matrix`.
#[test]
fn bash_completes_a_subcommand() {
    let script = stdout(&anomalies().args(["completions", "bash"]).output().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("anomalies.bash");
    std::fs::write(&file, script).unwrap();
    let probe = format!(
        "source {}; COMP_WORDS=(anomalies mat); COMP_CWORD=1; COMP_LINE='anomalies mat'; \
         COMP_POINT=13; _anomalies anomalies mat anomalies; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let output = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "matrix",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_manual_page_is_roff_with_every_subcommand() {
    let output = anomalies().arg("man").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie") || page.contains(".TH anomalies 1"),
        "{page}"
    );
    for sub in [
        "list", "run", "matrix", "check", "explore", "bench", "explain",
    ] {
        assert!(
            page.contains(&format!("anomalies\\-{sub}(1)")),
            "{sub}:\n{page}"
        );
    }
    let run = stdout(&anomalies().args(["man", "run"]).output().unwrap());
    assert!(run.contains(".TH anomalies-run 1"), "{run}");
    assert!(run.contains("\\-\\-width"), "{run}");
    let missing = anomalies().args(["man", "nope"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        stderr(&missing),
        "error: no subcommand nope: `anomalies --help` lists them\n"
    );
}

/// `ru`, `rc`, `rr` (and `si`, snapshot isolation), `ser` are the long names' short forms.
#[test]
fn short_level_names_mean_the_long_ones() {
    for (short, long) in [
        ("ru", "read uncommitted"),
        ("rc", "read committed"),
        ("rr", "repeatable read"),
        ("si", "repeatable read"),
        ("ser", "serializable"),
    ] {
        let output = anomalies()
            .args(["run", "write-skew", "--engine", "sqlite", "--level", short])
            .output()
            .unwrap();
        assert!(output.status.success(), "{short}: {}", stderr(&output));
        let level = stdout(&output)
            .lines()
            .find_map(|l| l.strip_prefix("level     ").map(str::to_string))
            .unwrap();
        assert!(level.starts_with(long), "{short}: {level}");
    }
    let bad = anomalies()
        .args(["run", "write-skew", "--level", "snap"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn help_shows_no_empty_environment_value() {
    let output = anomalies()
        .args(["run", "--help"])
        .env("ANOMALIES_PG_BINDIR", "")
        .env("ANOMALIES_MARIADB_BINDIR", "")
        .output()
        .unwrap();
    let help = stdout(&output);
    assert!(help.contains("[env: ANOMALIES_PG_BINDIR]"), "{help}");
    assert!(!help.contains("BINDIR="), "{help}");
}

#[test]
fn a_missing_file_is_reported_once() {
    for args in [["run", "missing.toml"], ["check", "missing.toml"]] {
        let output = anomalies().args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        assert_eq!(
            stderr(&output),
            "error: cannot read missing.toml: No such file or directory (os error 2)\n"
        );
    }
}

/// The release profile keeps no debug info and no symbols (the binary was 53 MB with them);
/// benches have a profile of their own.
#[test]
fn the_release_profile_has_no_debug_info() {
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let release = &manifest["profile"]["release"];
    assert_eq!(release.get("debug"), Some(&toml::Value::Boolean(false)));
    assert_eq!(release.get("strip"), Some(&toml::Value::Boolean(true)));
    assert!(manifest["profile"].get("bench").is_some());
}
