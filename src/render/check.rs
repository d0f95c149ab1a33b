//! `anomalies check` output: plain lines, JUnit XML, JSON, Markdown.

use serde_json::{json as value, Value};

use super::svg::escape;
use super::table::Paint;
use super::Style;
use crate::check::{line, status, subject, Status};
use crate::report::Report;

/// Every run that did not match (and every run without an expectation), then a count.
pub fn text(reports: &[Report], style: Style) -> String {
    let paint = Paint(style.color);
    let mut out = String::new();
    for report in reports {
        match status(report) {
            Status::AsExpected => {}
            Status::Mismatch => out.push_str(&format!("{}\n", paint.red(&line(report)))),
            Status::NoExpectation => out.push_str(&format!("{}\n", paint.yellow(&line(report)))),
            Status::Error => out.push_str(&format!("{}\n", paint.red(&line(report)))),
        }
    }
    out.push_str(&count(reports));
    out.push('\n');
    out
}

/// `20 runs: 19 as expected, 1 mismatch, 0 without an expectation`, and `, 1 error` when a
/// run was broken.
pub fn count(reports: &[Report]) -> String {
    let n = |wanted: Status| reports.iter().filter(|r| status(r) == wanted).count();
    let mismatches = n(Status::Mismatch);
    let errors = match n(Status::Error) {
        0 => String::new(),
        1 => ", 1 error".to_string(),
        errors => format!(", {errors} errors"),
    };
    format!(
        "{} runs: {} as expected, {mismatches} {}, {} without an expectation{errors}",
        reports.len(),
        n(Status::AsExpected),
        if mismatches == 1 {
            "mismatch"
        } else {
            "mismatches"
        },
        n(Status::NoExpectation)
    )
}

/// JUnit XML: a test suite per engine, a test case per scenario and level; a mismatch is a
/// failure carrying its line. A run without an expectation is a skipped test case.
pub fn junit(reports: &[Report]) -> String {
    let mut suites: Vec<(String, Vec<&Report>)> = Vec::new();
    for report in reports {
        let name = format!("{} {}", report.engine.name, report.engine.version);
        match suites.last_mut() {
            Some((suite, members)) if *suite == name => members.push(report),
            _ => suites.push((name, vec![report])),
        }
    }
    let failures = |members: &[&Report]| {
        members
            .iter()
            .filter(|r| status(r) == Status::Mismatch)
            .count()
    };
    let errors = |members: &[&Report]| {
        members
            .iter()
            .filter(|r| status(r) == Status::Error)
            .count()
    };
    let skipped = |members: &[&Report]| {
        members
            .iter()
            .filter(|r| status(r) == Status::NoExpectation)
            .count()
    };
    let all: Vec<&Report> = reports.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"anomalies check\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
        all.len(),
        failures(&all),
        errors(&all),
        skipped(&all)
    ));
    for (suite, members) in &suites {
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\">\n",
            escape(suite),
            members.len(),
            failures(members),
            errors(members),
            skipped(members)
        ));
        for report in members {
            let name = format!("{} · {}", report.scenario.label(), report.requested);
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&format!("{suite}.{}", report.scenario.label())),
                escape(&name)
            ));
            match status(report) {
                Status::AsExpected => out.push_str("/>\n"),
                Status::Mismatch => out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(&format!(
                        "expected {}, got {}",
                        report.expected.map(|e| e.to_string()).unwrap_or_default(),
                        report.outcome_text()
                    )),
                    escape(&line(report))
                )),
                Status::NoExpectation => out.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    escape(&line(report))
                )),
                Status::Error => out.push_str(&format!(
                    ">\n      <error message=\"the scenario is broken\">{}</error>\n    </testcase>\n",
                    escape(&line(report))
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Every run as a JSON object, in an array.
pub fn json(reports: &[Report]) -> String {
    let runs: Vec<Value> = reports
        .iter()
        .map(|report| {
            value!({
                "engine": report.engine,
                "scenario": report.scenario.id,
                "fix": report.scenario.fix_id(),
                "level": report.requested,
                "expected": report.expected.map(|e| e.to_string()),
                "observed": report.outcome_text(),
                "status": match status(report) {
                    Status::AsExpected => "as-expected",
                    Status::Mismatch => "mismatch",
                    Status::NoExpectation => "no-expectation",
                    Status::Error => "error",
                },
                "line": line(report),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&runs).unwrap_or_default();
    text.push('\n');
    text
}

/// A summary for a CI job's page: the count, then every run in a table.
pub fn markdown(reports: &[Report]) -> String {
    let mut out = format!("## anomalies check\n\n**{}**\n\n", count(reports));
    out.push_str("| | run | expected | observed |\n|---|---|---|---|\n");
    for report in reports {
        let mark = match status(report) {
            Status::AsExpected => "✅",
            Status::Mismatch => "❌",
            Status::NoExpectation => "⚠️",
            Status::Error => "💥",
        };
        out.push_str(&format!(
            "| {mark} | {} | {} | {} |\n",
            subject(report),
            report
                .expected
                .map_or("(none)".to_string(), |e| e.to_string()),
            report.outcome_text()
        ));
    }
    out
}
