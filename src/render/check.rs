//! `anomalies check` output: plain lines, JUnit XML, JSON, Markdown.

use serde_json::{json as value, Value};

use super::svg::escape;
use super::table::Paint;
use super::Style;
use crate::check::{line, status, subject, Status};
use crate::report::{NotRun, Report};

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
/// failure carrying its line. A run without an expectation is a skipped test case, and so is a
/// fix the engine cannot run, with the reason.
pub fn junit(reports: &[Report], not_run: &[NotRun]) -> String {
    let mut suites: Vec<Suite> = Vec::new();
    for report in reports {
        let name = format!("{} {}", report.engine.name, report.engine.version);
        match suites.last_mut() {
            Some(suite) if suite.name == name => suite.reports.push(report),
            _ => suites.push(Suite {
                name,
                reports: vec![report],
                not_run: Vec::new(),
            }),
        }
    }
    for skipped in not_run {
        match suites.iter_mut().find(|s| s.name == skipped.engine) {
            Some(suite) => suite.not_run.push(skipped),
            None => suites.push(Suite {
                name: skipped.engine.clone(),
                reports: Vec::new(),
                not_run: vec![skipped],
            }),
        }
    }
    let count = |suites: &[&Suite], wanted: Status| -> usize {
        suites
            .iter()
            .flat_map(|s| &s.reports)
            .filter(|r| status(r) == wanted)
            .count()
    };
    let summary = |suites: &[&Suite]| {
        let tests: usize = suites
            .iter()
            .map(|s| s.reports.len() + s.not_run.len())
            .sum();
        let not_run: usize = suites.iter().map(|s| s.not_run.len()).sum();
        format!(
            "tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
            count(suites, Status::Mismatch),
            count(suites, Status::Error),
            count(suites, Status::NoExpectation) + not_run
        )
    };
    let all: Vec<&Suite> = suites.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"anomalies check\" {}>\n",
        summary(&all)
    ));
    for suite in &suites {
        out.push_str(&format!(
            "  <testsuite name=\"{}\" {}>\n",
            escape(&suite.name),
            summary(&[suite])
        ));
        for report in &suite.reports {
            let name = format!("{} · {}", report.scenario.label(), report.requested);
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&format!("{}.{}", suite.name, report.scenario.label())),
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
        for skipped in &suite.not_run {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                escape(&format!("{}.{}", suite.name, skipped.label)),
                escape(&skipped.label),
                escape(&format!("not available on {}: {}", skipped.engine, skipped.why))
            ));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// One engine's test cases.
struct Suite<'a> {
    name: String,
    reports: Vec<&'a Report>,
    not_run: Vec<&'a NotRun>,
}

/// Every run under `runs`, and the fix runs the engine could not run under `not_run`.
pub fn json(reports: &[Report], not_run: &[NotRun]) -> String {
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
    let not_run: Vec<Value> = not_run
        .iter()
        .map(|n| value!({ "run": n.label, "engine": n.engine, "why": n.why }))
        .collect();
    let document = super::json::versioned(value!({ "runs": runs, "not_run": not_run }));
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
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
