//! The SVG keeps every word: SQL and narration wrap onto as many lines as they need, every
//! text is at least 14 px in the 1000 px picture, every colour of text reads against white
//! (WCAG's 4.5:1), and no text line is empty (the banner's included).

use crate::support::{anomalies, stderr, stdout};

fn run(args: &[&str], format: &str) -> String {
    let output = anomalies()
        .args(["run"])
        .args(args)
        .args(["--engine", "sqlite", "--format", format])
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

/// Each `<text>` element: its attributes and its content, unescaped. (The renderer writes one
/// element a line; the picture as a whole is checked as XML in pictures.rs.)
fn texts(svg: &str) -> Vec<(Vec<(String, String)>, String)> {
    let unescape = |t: &str| {
        t.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    };
    svg.lines()
        .filter_map(|line| line.strip_prefix("<text "))
        .map(|rest| {
            let (head, tail) = rest.split_once('>').expect("a text element");
            let content = tail.strip_suffix("</text>").expect("on one line");
            let attributes = head
                .split("\" ")
                .filter_map(|pair| pair.trim().split_once("=\""))
                .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
                .collect();
            (attributes, unescape(content))
        })
        .collect()
}

fn attribute<'a>(attributes: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// WCAG's contrast ratio of `#rrggbb` against white.
fn contrast_with_white(color: &str) -> f64 {
    let hex = color.trim_start_matches('#');
    let channel = |i: usize| {
        let c = u8::from_str_radix(&hex[i..i + 2], 16).unwrap() as f64 / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4);
    1.05 / (luminance + 0.05)
}

const PICTURES: [&[&str]; 3] = [
    &["write-skew", "--level", "repeatable-read"],
    &[
        "lost-update",
        "--fix",
        "serializable-retry",
        "--level",
        "serializable",
    ],
    &["job-queue", "--level", "read-committed"],
];

#[test]
fn svg_keeps_every_word_of_the_sql_and_the_narration() {
    for args in PICTURES {
        let svg = run(args, "svg");
        let json: serde_json::Value = serde_json::from_str(&run(args, "json")).unwrap();
        let drawn: Vec<String> = texts(&svg).into_iter().map(|(_, t)| t).collect();
        let words: Vec<&str> = drawn.iter().flat_map(|t| t.split_whitespace()).collect();
        assert!(!drawn.iter().any(|t| t.contains('…')), "{args:?} cut short");
        let scenario = anomalies::scenario::Scenario::load(args[0]).unwrap();
        for event in json["timeline"].as_array().unwrap() {
            let sql = event["sql"].as_str().unwrap_or_default();
            for word in sql.split_whitespace() {
                assert!(
                    words.contains(&word),
                    "{args:?}: {word:?} of {sql:?} missing"
                );
            }
            let session = scenario
                .sessions
                .iter()
                .find(|s| s.name == event["session"].as_str().unwrap())
                .unwrap();
            if let Some(step) = session
                .steps
                .iter()
                .find(|s| s.name == event["step"].as_str().unwrap())
            {
                for word in step.say.split_whitespace() {
                    assert!(
                        words.contains(&word),
                        "{args:?}: {word:?} of the narration missing"
                    );
                }
            }
        }
        let summary = json["summary"].as_str().unwrap();
        for word in summary.split_whitespace() {
            assert!(
                words.contains(&word),
                "{args:?}: {word:?} of the verdict missing"
            );
        }
    }
}

#[test]
fn svg_text_is_at_least_14_px_readable_and_never_an_empty_line() {
    for args in PICTURES {
        let svg = run(args, "svg");
        assert!(svg.contains(r#"width="1000""#), "{args:?}");
        let texts = texts(&svg);
        assert!(texts.len() > 20, "{args:?}");
        for (attributes, content) in &texts {
            let size: f64 = attribute(attributes, "font-size").unwrap().parse().unwrap();
            assert!(size >= 14.0, "{args:?}: {size} px: {content}");
            let fill = attribute(attributes, "fill").unwrap();
            let ratio = contrast_with_white(fill);
            assert!(ratio >= 4.5, "{args:?}: {fill} is {ratio:.1}:1: {content}");
            assert!(!content.trim().is_empty(), "{args:?}: an empty text line");
        }
    }
}
