//! `anomalies matrix`: scenarios as rows, levels as columns, one grid per engine.

use comfy_table::{presets, Cell, ContentArrangement, Table};
use serde_json::{json as value, Value};

use super::table::{wrap, Paint};
use super::Style;
use crate::outcome::Finding;
use crate::report::Report;
use crate::scenario::expected::Mechanism;

/// What the marks in a grid mean; `anomaly` is how the grid writes an anomaly.
fn legend(anomaly: &str, reports: &[Report]) -> String {
    let shown = |m: Mechanism| {
        reports
            .iter()
            .any(|r| r.verdict.finding == Finding::Prevented(m))
    };
    let mut extra = String::new();
    if shown(Mechanism::Constraint) {
        extra.push_str(
            " · constraint: prevented, the database refused a write that broke a declared rule",
        );
    }
    if shown(Mechanism::Retry) {
        extra.push_str(
            " · retry: prevented, a session rolled back and ran its transaction again on fresh \
             values",
        );
    }
    if shown(Mechanism::Guard) {
        extra.push_str(" · guard: prevented, a session saw a step match no row and did not go on");
    }
    if shown(Mechanism::Skip) {
        extra.push_str(
            " · skip: prevented, a SKIP LOCKED read passed over the rows another transaction held",
        );
    }
    if reports.iter().any(|r| r.verdict.is_error()) {
        extra.push_str(
            " · error: no verdict, the scenario is broken (`anomalies run` on that cell says why)",
        );
    }
    format!(
        "{anomaly}: the anomaly happened · blocking: prevented, a step waited for a lock, then \
         saw a serial outcome · abort: prevented, a concurrency failure rolled a step back · consistent \
         read: prevented, reads saw committed or snapshot values{extra} · ✗: not what the \
         scenario expects"
    )
}

/// The grids as terminal tables, one per engine, and the legend.
pub fn table(reports: &[Report], style: Style) -> String {
    let paint = Paint(style.color);
    let mut out = String::new();
    for grid in grids(reports) {
        let engine = header_engine(&grid);
        out.push_str(&paint.bold(&format!(
            "{} {} ({})",
            engine.name, engine.version, engine.detail
        )));
        out.push('\n');
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(style.width);
        let mut header = vec![Cell::new("scenario")];
        header.extend(grid[0].iter().map(|r| Cell::new(level_header(r))));
        table.set_header(header);
        for row in &grid {
            let mut cells = vec![Cell::new(format!(
                "{}\n{}",
                row[0].scenario.label(),
                row[0].scenario.code
            ))];
            cells.extend(row.iter().map(|report| Cell::new(cell(report, paint))));
            table.add_row(cells);
        }
        out.push_str(&table.to_string());
        out.push_str("\n\n");
    }
    for line in wrap(&legend("ANOMALY", reports), style.width as usize) {
        out.push_str(&paint.dim(&line));
        out.push('\n');
    }
    out
}

/// The grids as Markdown tables.
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::new();
    for grid in grids(reports) {
        let engine = header_engine(&grid);
        out.push_str(&format!(
            "### {} {} ({})\n\n| scenario | code |",
            engine.name, engine.version, engine.detail
        ));
        for report in &grid[0] {
            out.push_str(&format!(" {} |", level_header(report).replace('\n', " ")));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(grid[0].len()));
        out.push('\n');
        for row in &grid {
            out.push_str(&format!(
                "| {} | {} |",
                row[0].scenario.label(),
                row[0].scenario.code
            ));
            for report in row {
                let word = match outcome(report) {
                    Finding::Anomaly => "**anomaly**".to_string(),
                    Finding::Prevented(m) => m.words().to_string(),
                    Finding::Error => "**error**".to_string(),
                };
                let mark = match (report.matches_expectation(), report.expected) {
                    (Some(false), Some(expected)) => format!(" ✗ (expected {expected})"),
                    _ => String::new(),
                };
                out.push_str(&format!(" {word}{mark} |"));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!("{}\n", legend("**anomaly**", reports)));
    out
}

/// The grids as one self-contained SVG, in the terminal's colors: red anomaly, amber blocking,
/// cyan abort, green consistent read; a cell that is not what its scenario expects has a red
/// border and says what was expected.
pub fn svg(reports: &[Report]) -> String {
    use std::fmt::Write;
    const MARGIN: f64 = 24.0;
    const ROW: f64 = 46.0;
    let grids = grids(reports);
    // Wide enough for the longest name in bold 14px (about 8.5px a character), so a long id or
    // a fix's label does not run into the first cell; the cells keep their width.
    let longest = reports
        .iter()
        .map(|r| r.scenario.label().chars().count())
        .max()
        .unwrap_or(0);
    let name = (longest as f64 * 8.5 + 16.0).max(200.0);
    let width = name + 800.0;
    let legend_lines = super::table::wrap(&legend("ANOMALY", reports), 130);
    // Per grid: its title (40), the level header and a row per scenario, then half a row of air.
    let grid_heights: f64 = grids
        .iter()
        .map(|g| 40.0 + ROW * (g.len() as f64 + 1.5))
        .sum();
    let height = MARGIN + grid_heights + legend_lines.len() as f64 * 16.0 + MARGIN;
    let mut out = super::svg::open(width, height);
    let mut y = MARGIN;
    for grid in &grids {
        let engine = header_engine(grid);
        y += 26.0;
        super::svg::text(
            &mut out,
            MARGIN,
            y,
            18.0,
            "#1f2933",
            "bold",
            &format!("{} {} ({})", engine.name, engine.version, engine.detail),
        );
        y += 14.0;
        let columns = grid[0].len() as f64;
        let cell = (width - 2.0 * MARGIN - name) / columns;
        for (i, report) in grid[0].iter().enumerate() {
            let x = MARGIN + name + i as f64 * cell + 8.0;
            for (j, line) in level_header(report).lines().enumerate() {
                let weight = if j == 0 { "bold" } else { "normal" };
                super::svg::text(
                    &mut out,
                    x,
                    y + 18.0 + j as f64 * 15.0,
                    13.0,
                    "#616e7c",
                    weight,
                    line,
                );
            }
        }
        y += ROW;
        for row in grid {
            super::svg::text(
                &mut out,
                MARGIN,
                y + 19.0,
                14.0,
                "#1f2933",
                "bold",
                &row[0].scenario.label(),
            );
            super::svg::text(
                &mut out,
                MARGIN,
                y + 35.0,
                12.0,
                "#616e7c",
                "normal",
                &row[0].scenario.code,
            );
            for (i, report) in row.iter().enumerate() {
                let x = MARGIN + name + i as f64 * cell;
                let (fill, word) = match outcome(report) {
                    Finding::Anomaly => ("#c62828", "ANOMALY".to_string()),
                    Finding::Prevented(Mechanism::Blocking) => ("#e09b00", "blocking".to_string()),
                    Finding::Prevented(Mechanism::Abort) => ("#00838f", "abort".to_string()),
                    Finding::Prevented(Mechanism::Constraint) => {
                        ("#00695c", "constraint".to_string())
                    }
                    Finding::Prevented(Mechanism::ConsistentRead) => {
                        ("#2e7d32", "consistent read".to_string())
                    }
                    Finding::Prevented(Mechanism::Retry) => ("#5e35b1", "retry".to_string()),
                    Finding::Prevented(Mechanism::Guard) => ("#546e7a", "guard".to_string()),
                    Finding::Prevented(Mechanism::Skip) => ("#1565c0", "skip".to_string()),
                    Finding::Error => ("#4a148c", "ERROR".to_string()),
                };
                let mismatch = report.matches_expectation() == Some(false);
                let (stroke, width) = if mismatch {
                    ("#c62828", 3.0)
                } else {
                    ("white", 2.0)
                };
                let _ = writeln!(
                    out,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>"#,
                    x + 2.0,
                    y + 2.0,
                    cell - 4.0,
                    ROW - 4.0
                );
                super::svg::text(&mut out, x + 12.0, y + 21.0, 14.0, "white", "bold", &word);
                if let (true, Some(expected)) = (mismatch, report.expected) {
                    super::svg::text(
                        &mut out,
                        x + 12.0,
                        y + 37.0,
                        11.0,
                        "white",
                        "normal",
                        &format!("✗ expected {expected}"),
                    );
                }
            }
            y += ROW;
        }
        y += ROW / 2.0;
    }
    for (i, line) in legend_lines.iter().enumerate() {
        super::svg::text(
            &mut out,
            MARGIN,
            y + i as f64 * 16.0,
            12.0,
            "#616e7c",
            "normal",
            line,
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Every cell as a JSON object, under `cells`.
pub fn json(reports: &[Report]) -> String {
    let cells: Vec<Value> = reports
        .iter()
        .map(|report| {
            value!({
                "engine": report.engine,
                "scenario": report.scenario.id,
                "fix": report.scenario.fix_id(),
                "code": report.scenario.code,
                "level": { "requested": report.requested, "effective": report.effective },
                "verdict": report.verdict.word(),
                "prevented_by": report.verdict.finding.mechanism(),
                "expected": report.expected.map(|e| e.to_string()),
                "matches_expectation": report.matches_expectation(),
            })
        })
        .collect();
    let document = super::json::versioned(value!({ "cells": cells }));
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// Reports grouped by engine, then by scenario, in the order they ran.
fn grids(reports: &[Report]) -> Vec<Vec<Vec<&Report>>> {
    let mut grids: Vec<Vec<Vec<&Report>>> = Vec::new();
    for report in reports {
        // The detail differs by level (SQLite's read uncommitted shares a cache): one engine
        // is one name and version.
        let same_engine = grids.last().is_some_and(|g: &Vec<Vec<&Report>>| {
            let first = &g[0][0].engine;
            (first.name, &first.version) == (report.engine.name, &report.engine.version)
        });
        if !same_engine {
            grids.push(Vec::new());
        }
        let grid = grids.last_mut().expect("pushed above");
        match grid.last_mut() {
            Some(row) if row[0].scenario.label() == report.scenario.label() => row.push(report),
            _ => grid.push(vec![report]),
        }
    }
    grids
}

/// The engine as the grid's title shows it: as at the row's last (strictest) level, whose
/// detail carries no level-specific setting.
fn header_engine<'a>(grid: &[Vec<&'a Report>]) -> &'a crate::engine::EngineInfo {
    let row = &grid[0];
    &row[row.len() - 1].engine
}

/// `read uncommitted\n→ read committed`, or the level alone.
fn level_header(report: &Report) -> String {
    if report.requested == report.effective {
        report.requested.to_string()
    } else {
        format!("{}\n→ {}", report.requested, report.effective)
    }
}

fn outcome(report: &Report) -> Finding {
    report.verdict.finding
}

fn cell(report: &Report, paint: Paint) -> String {
    let word = match outcome(report) {
        Finding::Anomaly => paint.red_bold("ANOMALY"),
        Finding::Prevented(Mechanism::Blocking) => paint.yellow("blocking"),
        Finding::Prevented(Mechanism::Abort) => paint.cyan("abort"),
        Finding::Prevented(Mechanism::Constraint) => paint.cyan("constraint"),
        Finding::Prevented(Mechanism::ConsistentRead) => paint.green("consistent read"),
        Finding::Prevented(Mechanism::Retry) => paint.cyan("retry"),
        Finding::Prevented(Mechanism::Guard) => paint.cyan("guard"),
        Finding::Prevented(Mechanism::Skip) => paint.cyan("skip"),
        Finding::Error => paint.red_bold("ERROR"),
    };
    match (report.matches_expectation(), report.expected) {
        (Some(false), Some(expected)) => {
            format!("{word} {}", paint.red(&format!("✗\nexpected {expected}")))
        }
        _ => word,
    }
}
