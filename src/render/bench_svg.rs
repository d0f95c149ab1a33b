//! `anomalies bench --format svg`: throughput against workers, one line per strategy, one panel
//! per hot-set size; an unsafe cell is a red cross on a dashed line. Self-contained: no script,
//! no external font or style sheet.

use super::bench::{hot_title, machine_note, thousands};
use crate::bench::{Cell, Report, Workload};

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 330.0;
const MARGIN_L: f64 = 70.0;
const MARGIN_T: f64 = 70.0;
const GAP: f64 = 80.0;
const LEGEND_W: f64 = 230.0;

/// Distinct colours, one per strategy in the order they ran.
const PALETTE: [&str; 12] = [
    "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#393b79", "#637939",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round upper bound for the y axis: 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * power)
}

pub fn svg(report: &Report) -> String {
    let mut hots: Vec<u64> = Vec::new();
    let mut workers: Vec<u64> = Vec::new();
    let mut strategies: Vec<&str> = Vec::new();
    for cell in &report.cells {
        if !hots.contains(&cell.hot) {
            hots.push(cell.hot);
        }
        if !workers.contains(&cell.workers) {
            workers.push(cell.workers);
        }
        if !strategies.contains(&cell.strategy.as_str()) {
            strategies.push(&cell.strategy);
        }
    }
    workers.sort_unstable();
    let panels = hots.len().max(1) as f64;
    let width = MARGIN_L + panels * (PANEL_W + GAP) + LEGEND_W;
    let height = MARGIN_T + PANEL_H + 110.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" \
         font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let unit = match report.workload {
        Workload::Payments => "committed payments per second",
        Workload::Queue => "jobs per second",
    };
    out.push_str(&format!(
        "<text x=\"{MARGIN_L}\" y=\"26\" font-size=\"17\" font-weight=\"bold\">anomalies bench: \
         {unit} against workers</text>\n<text x=\"{MARGIN_L}\" y=\"46\" fill=\"#555\" \
         font-size=\"11\">{}</text>\n",
        escape(&machine_note(report))
    ));
    for (p, &hot) in hots.iter().enumerate() {
        let left = MARGIN_L + p as f64 * (PANEL_W + GAP);
        out.push_str(&panel(report, hot, left, &workers, &strategies));
    }
    out.push_str(&legend(
        report,
        MARGIN_L + panels * (PANEL_W + GAP),
        &strategies,
    ));
    out.push_str("</svg>\n");
    out
}

fn panel(report: &Report, hot: u64, left: f64, workers: &[u64], strategies: &[&str]) -> String {
    let cells: Vec<&Cell> = report.cells.iter().filter(|c| c.hot == hot).collect();
    let top = MARGIN_T;
    // One scale for every panel, so that hot-set sizes compare at a glance.
    let max = nice_max(report.cells.iter().map(|c| c.tps).fold(0.0, f64::max));
    let x_of = |w: u64| {
        let i = workers.iter().position(|x| *x == w).unwrap_or(0) as f64;
        let n = (workers.len().max(2) - 1) as f64;
        left + 20.0 + i / n * (PANEL_W - 40.0)
    };
    let y_of = |tps: f64| top + PANEL_H - tps / max * PANEL_H;
    let title = hot_title(report, hot);
    let mut out = format!(
        "<g>\n<text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\" \
         text-anchor=\"middle\">{title}</text>\n<rect x=\"{left}\" y=\"{top}\" width=\"{PANEL_W}\" \
         height=\"{PANEL_H}\" fill=\"none\" stroke=\"#999\"/>\n",
        left + PANEL_W / 2.0,
        top - 8.0
    );
    for tick in 0..=5 {
        let value = max * tick as f64 / 5.0;
        let y = y_of(value);
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\n\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
            left + PANEL_W,
            left - 6.0,
            y + 4.0,
            thousands(value.round() as i64)
        ));
    }
    for &w in workers {
        let x = x_of(w);
        out.push_str(&format!(
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{w}</text>\n",
            top + PANEL_H + 18.0
        ));
    }
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#333\">workers</text>\n",
        left + PANEL_W / 2.0,
        top + PANEL_H + 36.0
    ));
    for (s, strategy) in strategies.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let mut line: Vec<&Cell> = cells
            .iter()
            .copied()
            .filter(|c| c.strategy == *strategy)
            .collect();
        line.sort_by_key(|c| c.workers);
        let unsafe_line = line.iter().any(|c| !c.judgement.safe);
        let points: Vec<String> = line
            .iter()
            .map(|c| format!("{:.1},{:.1}", x_of(c.workers), y_of(c.tps)))
            .collect();
        let dash = if unsafe_line {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}>\
             <title>{strategy}</title></polyline>\n",
            points.join(" ")
        ));
        for c in &line {
            let (x, y) = (x_of(c.workers), y_of(c.tps));
            let tip = format!(
                "{strategy}, {} workers, {hot} hot: {} per second{}",
                c.workers,
                thousands(c.tps.round() as i64),
                super::bench::damage(c)
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            );
            if c.judgement.safe {
                out.push_str(&format!(
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{color}\"><title>{}</title></circle>\n",
                    escape(&tip)
                ));
            } else {
                out.push_str(&format!(
                    "<path d=\"M{:.1},{:.1} l10,10 m0,-10 l-10,10\" stroke=\"#d00\" \
                     stroke-width=\"3\"><title>{}</title></path>\n",
                    x - 5.0,
                    y - 5.0,
                    escape(&tip)
                ));
            }
        }
    }
    out.push_str("</g>\n");
    out
}

fn legend(report: &Report, left: f64, strategies: &[&str]) -> String {
    let mut out = String::from("<g>\n");
    for (s, strategy) in strategies.iter().enumerate() {
        let y = MARGIN_T + 10.0 + s as f64 * 20.0;
        let color = PALETTE[s % PALETTE.len()];
        let unsafe_cells: Vec<&Cell> = report
            .cells
            .iter()
            .filter(|c| c.strategy == *strategy && !c.judgement.safe)
            .collect();
        let mark = if unsafe_cells.is_empty() {
            String::new()
        } else {
            " (unsafe)".to_string()
        };
        let fill = if unsafe_cells.is_empty() {
            "#222"
        } else {
            "#d00"
        };
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{color}\" \
             stroke-width=\"3\"/>\n<text x=\"{}\" y=\"{}\" fill=\"{fill}\">{}{mark}</text>\n",
            left + 22.0,
            left + 28.0,
            y + 4.0,
            escape(strategy)
        ));
    }
    let y = MARGIN_T + 20.0 + strategies.len() as f64 * 20.0;
    out.push_str(&format!(
        "<path d=\"M{left},{} l10,10 m0,-10 l-10,10\" stroke=\"#d00\" stroke-width=\"3\"/>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#d00\">unsafe: broke an invariant</text>\n",
        y - 5.0,
        left + 18.0,
        y + 4.0
    ));
    let mut line = y + 24.0;
    for not_run in &report.not_run {
        out.push_str(&format!(
            "<text x=\"{left}\" y=\"{line}\" fill=\"#777\" font-size=\"10\">not run: {}</text>\n",
            escape(&not_run.strategy)
        ));
        line += 14.0;
    }
    out.push_str("</g>\n");
    out
}
