//! `anomalies explore`: counts per level, and the shortest anomalous order's timeline.

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use serde_json::{json as value, Value};

use super::table::Paint;
use super::Style;
use crate::explore::{Counts, Exploration, Orders};
use crate::scenario::Scenario;

/// The summary table, then for each level with an anomaly its shortest anomalous order.
pub fn table(
    scenario: &Scenario,
    orders: &Orders,
    explorations: &[Exploration],
    style: Style,
) -> String {
    let paint = Paint(style.color);
    let Some((_, _, engine)) = explorations.first().and_then(|e| e.first.as_ref()) else {
        return "nothing was explored\n".to_string();
    };
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
    let all: Vec<Counts> = explorations.iter().map(|e| e.counts).collect();
    let retry = all.iter().any(|c| c.retry > 0);
    let guard = all.iter().any(|c| c.guard > 0);
    let skip = all.iter().any(|c| c.skip > 0);
    let constraint = all.iter().any(|c| c.constraint > 0);
    let error = all.iter().any(|c| c.error > 0);
    let racy = all.iter().any(|c| c.racy > 0);
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
    if racy {
        header.push("racy");
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width)
        .set_header(header.into_iter().map(Cell::new));
    for (exploration, counts) in explorations.iter().zip(all) {
        let level = exploration
            .first
            .as_ref()
            .map(|(text, _, _)| text.clone())
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
        if racy {
            row.push(number(counts.racy));
        }
        table.add_row(row);
    }
    out.push_str(&table.to_string());
    out.push('\n');
    for exploration in explorations {
        if let Some(shortest) = &exploration.shortest {
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

/// Every order with its outcome, per level. Written piece by piece, each order on a line of
/// its own, so that a long exploration's JSON costs its own size and no tree of values.
pub fn json(scenario: &Scenario, orders: &Orders, explorations: &[Exploration]) -> String {
    let to_json = |value: &Value| serde_json::to_string(value).unwrap_or_default();
    let engine = explorations
        .first()
        .and_then(|e| e.first.as_ref())
        .map(|(_, _, engine)| serde_json::to_value(engine).unwrap_or(Value::Null));
    let head = super::json::versioned(value!({
        "scenario": scenario.id,
        "fix": scenario.fix_id(),
        "engine": engine,
        "orders": { "total": orders.total.to_string(), "run": orders.orders.len(), "sampled": orders.sampled },
    }));
    let mut text = to_json(&head);
    text.pop();
    text.push_str(",\n\"levels\": [");
    for (i, exploration) in explorations.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let level = value!({
            "requested": exploration.level,
            "effective": exploration.first.as_ref().map(|(_, effective, _)| effective),
        });
        text.push_str(&format!(
            "\n{{\"level\": {}, \"counts\": {}, \"orders\": [",
            to_json(&level),
            to_json(&value!(exploration.counts))
        ));
        for (j, line) in exploration.lines.iter().flatten().enumerate() {
            let steps: Vec<String> = orders.orders[line.order as usize]
                .steps
                .iter()
                .map(|id| scenario.step_name(*id))
                .collect();
            let mut order = value!({
                "order": steps,
                "outcome": line.outcome.describe(scenario),
            });
            if let Some(summary) = exploration.summary(line) {
                order["summary"] = summary.into();
            }
            text.push_str(if j == 0 { "\n" } else { ",\n" });
            text.push_str(&to_json(&order));
        }
        text.push_str("]}");
    }
    text.push_str("\n]}\n");
    text
}
