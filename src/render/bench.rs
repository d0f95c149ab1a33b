//! `anomalies bench`: the grid as a terminal table (one block per hot-set size, strategies as
//! rows and workers as columns, so the crossover is read along a row and down a column), JSON,
//! CSV and Markdown. The SVG is `bench_svg.rs`.

use colored::Colorize;
use comfy_table::{presets, Cell as TableCell, CellAlignment, Table};

pub use super::bench_svg::svg;
use super::Style;
use crate::bench::{Cell, Report, Workload};

/// `1,234`; whole numbers with thousands separators.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A block's title: `5 hot accounts`, or `one queue`.
pub fn hot_title(report: &Report, hot: u64) -> String {
    match report.workload {
        Workload::Payments if hot == 1 => "1 hot account".to_string(),
        Workload::Payments => format!("{hot} hot accounts"),
        Workload::Queue => "one queue".to_string(),
    }
}

/// `1 worker`, `4 workers`.
pub fn plural(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// What an unsafe cell broke: `unsafe: R$ 4,210 vanished in 1,032 payments`.
pub fn damage(cell: &Cell) -> Option<String> {
    let j = &cell.judgement;
    if j.safe {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(lost) = j.lost {
        let what = if lost > 0 { "vanished" } else { "appeared" };
        parts.push(format!(
            "R$ {} {what} in {} payments",
            thousands(lost.abs()),
            thousands(j.ledger as i64)
        ));
    }
    if j.below_limit > 0 {
        parts.push(format!("{} accounts below their limit", j.below_limit));
    }
    if let Some(twice) = j.done_twice.filter(|n| *n > 0) {
        parts.push(format!(
            "{} jobs done twice in {}",
            thousands(twice as i64),
            thousands(j.ledger as i64)
        ));
    }
    Some(format!("unsafe: {}", parts.join(", ")))
}

fn unit(report: &Report) -> &'static str {
    match report.workload {
        Workload::Payments => "committed payments per second",
        Workload::Queue => "jobs per second",
    }
}

/// Hot-set sizes, workers and strategies in the order they ran.
fn axes(report: &Report) -> (Vec<u64>, Vec<u64>, Vec<String>) {
    let mut hot = Vec::new();
    let mut workers = Vec::new();
    let mut strategies: Vec<String> = Vec::new();
    for cell in &report.cells {
        if !hot.contains(&cell.hot) {
            hot.push(cell.hot);
        }
        if !workers.contains(&cell.workers) {
            workers.push(cell.workers);
        }
        if !strategies.contains(&cell.strategy) {
            strategies.push(cell.strategy.clone());
        }
    }
    (hot, workers, strategies)
}

fn find<'a>(report: &'a Report, strategy: &str, workers: u64, hot: u64) -> Option<&'a Cell> {
    report
        .cells
        .iter()
        .find(|c| c.strategy == strategy && c.workers == workers && c.hot == hot)
}

/// The fastest safe cell at each column's workers on one hot set.
fn leader(report: &Report, workers: u64, hot: u64) -> Option<&Cell> {
    report
        .cells
        .iter()
        .filter(|c| c.workers == workers && c.hot == hot && c.judgement.safe)
        .max_by(|a, b| a.tps.total_cmp(&b.tps))
}

/// The honest-numbers line: cores shared, load, times.
pub fn machine_note(report: &Report) -> String {
    let load = |l: &Option<String>| l.clone().unwrap_or_else(|| "unknown".into());
    let shared =
        if report.engine.detail.contains("throwaway") || report.engine.name.name() == "sqlite" {
            "the workers and the server share them"
        } else {
            "the workers share them, and the server too if it runs here"
        };
    format!(
        "{} {} ({}); {} cores, {shared}; load average {} before, {} after; each cell: {} ms \
         warm-up, {} ms measured, fresh data; seed {}",
        report.engine.name,
        report.engine.version,
        report.engine.detail,
        report.cores,
        load(&report.load_before),
        load(&report.load_after),
        report.warmup_ms,
        report.duration_ms,
        report.seed
    )
}

pub fn table(report: &Report, style: Style) -> String {
    let (hots, workers, strategies) = axes(report);
    let mut out = format!("{}\n", machine_note(report));
    for &hot in &hots {
        let title = format!(
            "\n{}: {} (★ fastest safe)\n",
            hot_title(report, hot),
            unit(report)
        );
        out.push_str(&if style.color {
            title.bold().to_string()
        } else {
            title
        });
        let mut grid = Table::new();
        grid.load_preset(presets::UTF8_FULL_CONDENSED);
        let mut header = vec![TableCell::new("strategy")];
        header.extend(workers.iter().map(|w| TableCell::new(plural(*w, "worker"))));
        grid.set_header(header);
        for strategy in &strategies {
            let mut row = vec![TableCell::new(strategy)];
            for &w in &workers {
                let text = match find(report, strategy, w, hot) {
                    None => String::new(),
                    Some(cell) => {
                        let lead = leader(report, w, hot).is_some_and(|l| std::ptr::eq(l, cell));
                        let star = if lead { " ★" } else { "" };
                        let mut text = format!("{}{star}", thousands(cell.tps.round() as i64));
                        if !cell.judgement.safe {
                            text.push_str(" unsafe");
                        }
                        if style.color && !cell.judgement.safe {
                            text = text.red().bold().to_string();
                        }
                        text
                    }
                };
                row.push(TableCell::new(text).set_alignment(CellAlignment::Right));
            }
            grid.add_row(row);
        }
        out.push_str(&format!("{grid}\n"));
    }
    out.push_str("\nper cell (latency of a committed one, retries included)\n");
    out.push_str(&format!("{}\n", details(report)));
    for cell in &report.cells {
        if let Some(damage) = damage(cell) {
            let line = format!(
                "{} at {} workers on {} hot: {damage}\n",
                cell.strategy, cell.workers, cell.hot
            );
            out.push_str(&if style.color {
                line.red().to_string()
            } else {
                line
            });
        }
    }
    for not_run in &report.not_run {
        out.push_str(&format!(
            "not run on {}: {}: {}\n",
            report.engine.name, not_run.strategy, not_run.reason
        ));
    }
    out
}

/// Aborts as `deadlock 3, serialization-failure 12`.
fn aborts(cell: &Cell) -> String {
    let parts: Vec<String> = cell
        .aborts
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    parts.join(", ")
}

const DETAIL_HEADER: [&str; 13] = [
    "strategy",
    "workers",
    "hot",
    "level",
    "committed",
    "per s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "attempts/commit",
    "lock wait",
    "aborts",
    "safe",
];

fn detail_row(cell: &Cell) -> Vec<String> {
    vec![
        match cell.owners {
            Some(p) => format!("{} ({})", cell.strategy, plural(p, "owner")),
            None => cell.strategy.clone(),
        },
        cell.workers.to_string(),
        cell.hot.to_string(),
        cell.level.clone(),
        thousands(cell.committed as i64),
        thousands(cell.tps.round() as i64),
        format!("{:.2}", cell.p50_ms),
        format!("{:.2}", cell.p95_ms),
        format!("{:.2}", cell.p99_ms),
        format!("{:.2}", cell.attempts_per_commit),
        cell.lock_wait_share
            .map_or("n/a".into(), |share| format!("{:.0} %", share * 100.0)),
        aborts(cell),
        damage(cell).unwrap_or_else(|| "safe".into()),
    ]
}

fn details(report: &Report) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(DETAIL_HEADER.to_vec());
    for cell in &report.cells {
        table.add_row(detail_row(cell));
    }
    table
}

/// The cells under `cells`; a strategy the engine could not run is an entry with `not_run`.
pub fn json(report: &Report) -> String {
    let mut items: Vec<serde_json::Value> = report
        .cells
        .iter()
        .map(|cell| {
            let mut value = serde_json::to_value(cell).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("cores".into(), report.cores.into());
            }
            value
        })
        .collect();
    for not_run in &report.not_run {
        items.push(serde_json::json!({
            "strategy": not_run.strategy,
            "workload": report.workload,
            "engine": report.engine.name.name(),
            "not_run": not_run.reason,
        }));
    }
    let document = super::json::versioned(serde_json::json!({ "cells": items }));
    format!(
        "{}\n",
        serde_json::to_string_pretty(&document).unwrap_or_default()
    )
}

pub fn csv(report: &Report) -> String {
    let quote = |field: &str| {
        if field.contains([',', '"', '\n']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field.to_string()
        }
    };
    let mut out = String::from(
        "engine,workload,strategy,workers,hot,owners,level,committed,refused,gave_up,seconds,\
         tps,p50_ms,p95_ms,p99_ms,attempts_per_commit,lock_wait_share,aborts,safe,lost,below_limit,\
         done_twice\n",
    );
    for c in &report.cells {
        let j = &c.judgement;
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let fields = [
            c.engine.clone(),
            format!("{:?}", c.workload).to_lowercase(),
            c.strategy.clone(),
            c.workers.to_string(),
            c.hot.to_string(),
            opt(c.owners.map(|p| p as i64)),
            c.level.clone(),
            c.committed.to_string(),
            c.refused.to_string(),
            c.gave_up.to_string(),
            format!("{:.3}", c.seconds),
            format!("{:.1}", c.tps),
            format!("{:.3}", c.p50_ms),
            format!("{:.3}", c.p95_ms),
            format!("{:.3}", c.p99_ms),
            format!("{:.3}", c.attempts_per_commit),
            c.lock_wait_share
                .map(|share| format!("{share:.3}"))
                .unwrap_or_default(),
            aborts(c),
            j.safe.to_string(),
            opt(j.lost),
            j.below_limit.to_string(),
            opt(j.done_twice.map(|n| n as i64)),
        ];
        let line: Vec<String> = fields.iter().map(|f| quote(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

pub fn markdown(report: &Report) -> String {
    let (hots, workers, strategies) = axes(report);
    let mut out = format!("{}\n", machine_note(report));
    for &hot in &hots {
        out.push_str(&format!(
            "\n**{}**: {}\n\n",
            hot_title(report, hot),
            unit(report)
        ));
        out.push_str("| strategy |");
        for w in &workers {
            out.push_str(&format!(" {} |", plural(*w, "worker")));
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(workers.len()));
        out.push('\n');
        for strategy in &strategies {
            out.push_str(&format!("| {strategy} |"));
            for &w in &workers {
                let text = find(report, strategy, w, hot).map_or(String::new(), |cell| {
                    let tps = thousands(cell.tps.round() as i64);
                    let lead = leader(report, w, hot).is_some_and(|l| std::ptr::eq(l, cell));
                    match (cell.judgement.safe, lead) {
                        (false, _) => format!("{tps} **unsafe**"),
                        (true, true) => format!("**{tps}**"),
                        (true, false) => tps,
                    }
                });
                out.push_str(&format!(" {text} |"));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!("\n| {} |\n", DETAIL_HEADER.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(DETAIL_HEADER.len())));
    for cell in &report.cells {
        out.push_str(&format!("| {} |\n", detail_row(cell).join(" | ")));
    }
    for not_run in &report.not_run {
        out.push_str(&format!(
            "\nNot run on {}: `{}`: {}.\n",
            report.engine.name, not_run.strategy, not_run.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{damage, detail_row, thousands, DETAIL_HEADER};
    use crate::bench::{Cell, Judgement, Workload};

    fn cell(judgement: Judgement) -> Cell {
        Cell {
            strategy: "naive".into(),
            workload: Workload::Payments,
            engine: "postgres".into(),
            workers: 16,
            hot: 5,
            owners: None,
            level: "read committed".into(),
            committed: 1032,
            refused: 0,
            gave_up: 0,
            seconds: 0.5,
            tps: 2064.0,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
            attempts_per_commit: 1.0,
            aborts: Default::default(),
            lock_wait_share: Some(0.25),
            judgement,
        }
    }

    #[test]
    fn an_unsafe_cell_says_what_vanished() {
        let lost = Judgement {
            safe: false,
            lost: Some(4210),
            ledger: 1032,
            ..Judgement::default()
        };
        let text = damage(&cell(lost)).unwrap();
        assert_eq!(text, "unsafe: R$ 4,210 vanished in 1,032 payments");
        let row = detail_row(&cell(Judgement {
            safe: true,
            ..Judgement::default()
        }));
        assert_eq!(row.len(), DETAIL_HEADER.len());
        assert_eq!(row[10], "25 %");
        assert_eq!(row.last().map(String::as_str), Some("safe"));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(4210), "4,210");
        assert_eq!(thousands(-1_032_000), "-1,032,000");
        assert_eq!(thousands(999), "999");
    }
}
