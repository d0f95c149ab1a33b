//! `run --format markdown|mermaid|svg`: pictures of a run for notes and slides.

use crate::support::{anomalies, stderr, stdout};

fn picture(id: &str, engine: &str, level: &str, format: &str) -> String {
    picture_with(id, &[], engine, level, format)
}

fn picture_with(id: &str, extra: &[&str], engine: &str, level: &str, format: &str) -> String {
    let output = anomalies()
        .args([
            "run", id, "--engine", engine, "--level", level, "--format", format,
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

/// Every line is a statement of the sequence-diagram grammar this renderer uses, and message
/// text carries no raw `;` (Mermaid would end the statement there) outside its entity codes.
fn check_mermaid(diagram: &str, participants: &[String]) {
    let mut lines = diagram.lines();
    assert_eq!(lines.next(), Some("sequenceDiagram"));
    let mut declared = Vec::new();
    for line in lines {
        let line = line
            .strip_prefix("    ")
            .unwrap_or_else(|| panic!("not indented: {line}"));
        if let Some(title) = line.strip_prefix("title ") {
            assert!(!title.is_empty());
        } else if let Some(participant) = line.strip_prefix("participant ") {
            declared.push(participant.split(" as ").next().unwrap().to_string());
        } else if let Some(note) = line.strip_prefix("Note over ") {
            let (over, text) = note.split_once(": ").unwrap_or_else(|| panic!("{line}"));
            for who in over.split(',') {
                assert!(
                    declared.contains(&who.to_string()),
                    "{who} undeclared: {line}"
                );
            }
            assert!(!raw_semicolon(text), "{line}");
        } else {
            let (arrow, text) = line.split_once(": ").unwrap_or_else(|| panic!("{line}"));
            let (from, to) = ["-->>", "->>", "--x"]
                .iter()
                .find_map(|a| arrow.split_once(a))
                .unwrap_or_else(|| panic!("not a message: {line}"));
            assert!(declared.contains(&from.to_string()), "{line}");
            assert!(declared.contains(&to.to_string()), "{line}");
            assert!(!raw_semicolon(text), "{line}");
        }
    }
    // The database in the middle of the sessions.
    let mut expected: Vec<String> = participants.to_vec();
    expected.insert(participants.len().div_ceil(2), "DB".into());
    assert_eq!(declared, expected);
}

fn raw_semicolon(text: &str) -> bool {
    text.replace("#59;", "").replace("#35;", "").contains(';')
}

/// Well-formed XML with an `<svg>` root, and one box (a rect with rx="6") per timeline event.
fn check_svg(svg: &str, events: usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(svg);
    let (mut root, mut boxes) = (None, 0);
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}"))
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                root.get_or_insert(name.clone());
                let rx = e
                    .try_get_attribute("rx")
                    .unwrap()
                    .map(|a| a.value.into_owned());
                if name == "rect" && rx.as_deref() == Some("6") {
                    boxes += 1;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(root.as_deref(), Some("svg"));
    assert_eq!(boxes, events);
}

#[test]
fn every_builtin_and_fix_has_a_mermaid_diagram_and_an_svg_on_every_engine() {
    use anomalies::scenario::EngineKind;
    for engine in EngineKind::ALL {
        for scenario in anomalies::scenario::Scenario::builtins() {
            if !crate::support::runs_on(&scenario, engine) {
                continue;
            }
            let id = scenario.id.as_str();
            let fixes = scenario
                .fixes
                .iter()
                .filter(|f| f.info.unavailable_on(engine).is_none())
                .map(|f| vec!["--fix", f.info.id.as_str()]);
            for extra in std::iter::once(Vec::new()).chain(fixes) {
                let engine = &engine.to_string();
                let draw = |format| picture_with(id, &extra, engine, "serializable", format);
                let json = draw("json");
                let events = serde_json::from_str::<serde_json::Value>(&json).unwrap()["timeline"]
                    .as_array()
                    .unwrap()
                    .len();
                let sessions: Vec<String> = scenario
                    .sessions
                    .iter()
                    .map(|s| anomalies::scenario::display_name(&s.name))
                    .collect();
                check_mermaid(&draw("mermaid"), &sessions);
                check_svg(&draw("svg"), events);
            }
        }
    }
}

/// `--level all --format mermaid` is Markdown: a heading and a fenced diagram per level, each
/// a whole sequenceDiagram (one document cannot hold four).
#[test]
fn mermaid_for_every_level_is_one_fenced_diagram_per_level() {
    let text = picture("write-skew", "sqlite", "all", "mermaid");
    let blocks: Vec<&str> = text
        .split("```mermaid\n")
        .skip(1)
        .map(|block| block.split_once("```\n").expect("a closed fence").0)
        .collect();
    assert_eq!(blocks.len(), 4, "{text}");
    let sessions = ["Alice".to_string(), "John".to_string()];
    for block in &blocks {
        check_mermaid(block, &sessions);
    }
    assert_eq!(text.matches("sequenceDiagram").count(), 4);
    assert!(
        text.starts_with("## write-skew at read uncommitted"),
        "{text}"
    );
    assert!(text.contains("\n## write-skew at serializable\n"), "{text}");
}

#[test]
fn a_retry_in_markdown() {
    let text = picture_with(
        "write-skew",
        &["--fix", "serializable-retry"],
        "sqlite",
        "serializable",
        "markdown",
    );
    insta::assert_snapshot!(redact(&text));
}

#[test]
fn svg_draws_one_run() {
    let output = anomalies()
        .args([
            "run",
            "write-skew",
            "--engine",
            "sqlite",
            "--level",
            "all",
            "--format",
            "svg",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "error: --format svg draws one run: choose one --level\n"
    );
}

fn redact(text: &str) -> String {
    text.replace(rusqlite_version().as_str(), "<version>")
}

fn rusqlite_version() -> String {
    let json = picture("write-skew", "sqlite", "serializable", "json");
    serde_json::from_str::<serde_json::Value>(&json).unwrap()["engine"]["version"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn write_skew_pictures() {
    for format in ["markdown", "mermaid", "svg"] {
        let text = redact(&picture("write-skew", "sqlite", "serializable", format));
        insta::assert_snapshot!(format!("write_skew_{format}"), text);
    }
}

#[test]
fn the_matrix_as_a_picture_has_a_cell_per_run_and_marks_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lost-update.toml");
    let text = std::fs::read_to_string("scenarios/lost-update.toml").unwrap();
    let edited = text.replacen(
        "serializable = \"prevented by abort\"",
        "serializable = \"anomaly\"",
        1,
    );
    std::fs::write(&file, edited).unwrap();
    let output = anomalies()
        .args([
            "matrix",
            file.to_str().unwrap(),
            "--engine",
            "all",
            "--format",
            "svg",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let svg = stdout(&output);
    // Four levels on each of the three engines.
    check_svg(&svg, 12);
    assert_eq!(svg.matches("✗ expected anomaly").count(), 1, "{svg}");
    assert_eq!(
        svg.matches(r##"stroke="#c62828" stroke-width="3""##)
            .count(),
        1
    );
}

#[test]
fn a_deferred_step_shows_how_it_ended() {
    // Bob's second step is scheduled while his first waits for Alice; once sent, it waits for
    // Carol. The note says so, and that it was deferred.
    let mermaid = picture(
        "tests/fixtures/deferred-wait.toml",
        "postgres",
        "read-committed",
        "mermaid",
    );
    let notes: Vec<&str> = mermaid
        .lines()
        .filter(|l| l.contains("Note over Bob,DB:"))
        .collect();
    assert_eq!(
        notes,
        [
            "    Note over Bob,DB: waits for Alice",
            "    Note over Bob,DB: ▶ UPDATE resumes after #35;4 (Alice's COMMIT)",
            "    Note over Bob,DB: waits for Carol (deferred: sent once its earlier wait ended)",
            "    Note over Bob,DB: ▶ UPDATE resumes after #35;7 (Carol's COMMIT)",
        ]
    );
    // On SQLite, John's credit is deferred behind his wait for Alice and then succeeds: its box
    // shows the result, with the deferral after it.
    let svg = picture(
        "tests/fixtures/deadlock.toml",
        "sqlite",
        "serializable",
        "svg",
    );
    assert_eq!(svg.matches(">→ 1 row updated<").count(), 3, "{svg}");
    assert_eq!(
        svg.matches(">→ 1 row updated (deferred)<").count(),
        1,
        "{svg}"
    );
}
