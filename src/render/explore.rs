//! `anomalies explore`: counts per level, and the shortest anomalous order's timeline.

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use serde_json::{json as value, Value};

use super::table::Paint;
use super::Style;
use crate::app::Exploration;
use crate::explore::{shortest_anomaly, Counts, Orders};
use crate::scenario::Scenario;

/// The summary table, then for each level with an anomaly its shortest anomalous order.
pub fn table(
    scenario: &Scenario,
    orders: &Orders,
    explorations: &[Exploration],
    style: Style,
) -> String {
    let paint = Paint(style.color);
    let Some(first) = explorations.first().and_then(|e| e.explored.first()) else {
        return "nothing was explored\n".to_string();
    };
    let engine = &first.report.engine;
    let mut out = format!(
        "{} — {} ({})\nengine    {} {}\norders    {}\n\n",
        paint.bold(&scenario.label()),
        scenario.anomaly,
        scenario.code,
        engine.name,
        engine.version,
        orders_line(orders)
    );
    // Constraint, retry, guard, skip and error columns only when some order ended that way.
    let all: Vec<Counts> = explorations
        .iter()
        .map(|e| Counts::of(&e.explored))
        .collect();
    let retry = all.iter().any(|c| c.retry > 0);
    let guard = all.iter().any(|c| c.guard > 0);
    let skip = all.iter().any(|c| c.skip > 0);
    let constraint = all.iter().any(|c| c.constraint > 0);
    let error = all.iter().any(|c| c.error > 0);
    let mut header = vec!["level", "anomaly", "blocking", "abort", "consistent read"];
    if constraint {
        header.push("constraint");
    }
    if retry {
        header.push("retry");
    }
    if guard {
        header.push("guard");
    }
    if skip {
        header.push("skip");
    }
    header.push("impossible");
    if error {
        header.push("error");
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width)
        .set_header(header.into_iter().map(Cell::new));
    for (exploration, counts) in explorations.iter().zip(all) {
        let level = exploration
            .explored
            .first()
            .map(|e| e.report.level_text())
            .unwrap_or_else(|| exploration.level.to_string());
        let number = |n: usize| Cell::new(n).set_alignment(CellAlignment::Right);
        let mut row = vec![
            Cell::new(level),
            Cell::new(if counts.anomaly > 0 {
                paint.red_bold(&counts.anomaly.to_string())
            } else {
                counts.anomaly.to_string()
            })
            .set_alignment(CellAlignment::Right),
            number(counts.blocking),
            number(counts.abort),
            number(counts.consistent_read),
        ];
        if constraint {
            row.push(number(counts.constraint));
        }
        if retry {
            row.push(number(counts.retry));
        }
        if guard {
            row.push(number(counts.guard));
        }
        if skip {
            row.push(number(counts.skip));
        }
        row.push(number(counts.impossible));
        if error {
            row.push(number(counts.error));
        }
        table.add_row(row);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for exploration in explorations {
        if let Some(shortest) = shortest_anomaly(&exploration.explored) {
            out.push_str(&format!(
                "\nshortest anomalous order at {}:\n\n",
                shortest.report.level_text()
            ));
            out.push_str(&super::table(&shortest.report, style));
        }
    }
    out
}

/// `70 (every order that keeps each session's steps in order)`, or the sample.
fn orders_line(orders: &Orders) -> String {
    if orders.sampled {
        format!(
            "{} of {} (a sample: pass a larger --limit to run more)",
            orders.orders.len(),
            orders.total
        )
    } else {
        format!(
            "{} (every order that keeps each session's steps in order)",
            orders.total
        )
    }
}

/// Every order with its outcome, per level.
pub fn json(scenario: &Scenario, orders: &Orders, explorations: &[Exploration]) -> String {
    let levels: Vec<Value> = explorations
        .iter()
        .map(|exploration| {
            let first = exploration.explored.first().map(|e| &e.report);
            value!({
                "level": {
                    "requested": exploration.level,
                    "effective": first.map(|r| r.effective),
                },
                "counts": Counts::of(&exploration.explored),
                "orders": exploration.explored.iter().map(|e| {
                    let mut order = value!({
                        "order": e.order.steps.iter().map(|id| scenario.step_name(*id))
                            .collect::<Vec<_>>(),
                        "outcome": e.outcome.describe(scenario),
                    });
                    if e.report.timeline.impossible.is_none() {
                        order["summary"] = e.report.verdict.summary(scenario).into();
                    }
                    order
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let engine = explorations
        .first()
        .and_then(|e| e.explored.first())
        .map(|e| serde_json::to_value(&e.report.engine).unwrap_or(Value::Null));
    let mut text = serde_json::to_string_pretty(&super::json::versioned(value!({
        "scenario": scenario.id,
        "fix": scenario.fix_id(),
        "engine": engine,
        "orders": { "total": orders.total.to_string(), "run": orders.orders.len(), "sampled": orders.sampled },
        "levels": levels,
    })))
    .unwrap_or_default();
    text.push('\n');
    text
}
