//! `anomalies explain`: a scenario for a person — the story, the anomaly in plain words and
//! its formal names, what each engine does at each level and why, and the fixes with when to
//! prefer each. Everything about outcomes is read from the scenario's expectations, the same
//! ones `run` shows and `check` verifies, so it never drifts from what the databases do.

use comfy_table::{presets, Cell, ContentArrangement, Table};
use serde_json::{json as value, Value};

use super::table::{wrap, Paint};
use super::Style;
use crate::level::Level;
use crate::scenario::expected::{Expected, Mechanism};
use crate::scenario::{EngineKind, FixInfo, Scenario, Topology};

mod levels;

const ENGINES: [EngineKind; 3] = EngineKind::ALL;

/// Why `variant` is not run on `engine`: a fix the engine lacks, or nodes the scenario expects
/// nothing of there (a primary and a standby, where only one engine's expectations are given).
fn not_run(variant: &Scenario, info: Option<&FixInfo>, engine: EngineKind) -> Option<String> {
    if let Some(why) = info.and_then(|i| i.unavailable_on(engine)) {
        return Some(why.to_string());
    }
    let expects_nothing = !variant.expectations.iter().any(|e| e.engine == engine);
    (variant.topology != Topology::Single && expects_nothing)
        .then(|| format!("it needs {}", variant.topology.describe()))
}

pub fn text(scenario: &Scenario, style: Style) -> String {
    let paint = Paint(style.color);
    let width = style.width as usize;
    let mut out = format!("{} — {}\n\n", paint.bold(&scenario.id), scenario.title);
    let section = |out: &mut String, title: &str| {
        out.push_str(&paint.bold(title));
        out.push('\n');
    };
    let paragraph = |out: &mut String, text: &str, indent: usize| {
        for line in wrap(text, width.saturating_sub(indent)) {
            out.push_str(&" ".repeat(indent));
            out.push_str(&line);
            out.push('\n');
        }
    };

    section(&mut out, "The story");
    paragraph(&mut out, &scenario.story, 2);
    out.push('\n');

    section(
        &mut out,
        &format!("The anomaly: {} ({})", scenario.anomaly, scenario.code),
    );
    if !scenario.plain.is_empty() {
        paragraph(&mut out, &scenario.plain, 2);
    }
    if !scenario.formal.is_empty() {
        paragraph(
            &mut out,
            &format!("Formal names: {}.", scenario.formal.join("; ")),
            2,
        );
    }
    out.push('\n');

    section(&mut out, "What each engine does, level by level");
    out.push_str(&outcome_table(scenario, style));
    out.push('\n');
    if scenario.topology != Topology::Single {
        paragraph(
            &mut out,
            &format!(
                "n/a: the run needs {}, which the tool gives only where the table has \
                 outcomes.",
                scenario.topology.describe()
            ),
            2,
        );
    } else if scenario
        .fixes
        .iter()
        .any(|f| !f.info.unavailable.is_empty())
    {
        paragraph(
            &mut out,
            "n/a: the fix needs something the engine lacks (see below).",
            2,
        );
    }
    for line in mechanisms_used(scenario) {
        paragraph(&mut out, &line, 2);
    }
    let narrowed: Vec<&str> = scenario
        .expectations
        .iter()
        .chain(scenario.fixes.iter().flat_map(|f| &f.variant.expectations))
        .filter(|e| e.versions.is_some())
        .map(|e| e.table.as_str())
        .collect();
    if !narrowed.is_empty() {
        let mut tables = narrowed;
        tables.dedup();
        paragraph(
            &mut out,
            &format!(
                "Some versions differ: see the [expect.\"{}\"] tables in the scenario file.",
                tables.join("\"], [expect.\"")
            ),
            2,
        );
    }
    for engine in ENGINES {
        if not_run(scenario, None, engine).is_some() {
            continue;
        }
        paragraph(
            &mut out,
            &format!(
                "Without a fix, {engine}: {}.",
                levels::by_level(scenario, engine)
            ),
            2,
        );
    }
    if !scenario.one_server.is_empty() {
        paragraph(
            &mut out,
            &format!("On one server: {}", scenario.one_server),
            2,
        );
    }
    paragraph(
        &mut out,
        "PostgreSQL runs read uncommitted as read committed; MariaDB (InnoDB) runs all four, with \
         snapshots only for plain reads and SERIALIZABLE's reads taking shared locks; SQLite runs \
         every level but read uncommitted as serializable (read uncommitted is its shared-cache \
         mode).",
        2,
    );
    out.push('\n');

    if scenario.fixes.is_empty() {
        paragraph(
            &mut out,
            "This scenario offers no fixes: it shows what the levels themselves do.",
            0,
        );
        return out;
    }
    section(
        &mut out,
        &format!("Fixes (anomalies run {} --fix ID)", scenario.id),
    );
    for fix in &scenario.fixes {
        let info = &fix.info;
        out.push_str(&format!("  {} — {}\n", paint.bold(&info.id), info.title));
        for engine in ENGINES {
            paragraph(
                &mut out,
                &format!("{engine}: {}.", fix_line(info, &fix.variant, engine)),
                4,
            );
        }
        paragraph(&mut out, &info.how, 4);
        paragraph(&mut out, &format!("When to prefer it: {}", info.prefer), 4);
        if let Some(level) = info.level {
            paragraph(
                &mut out,
                &format!("Runs at {level} unless --level says otherwise."),
                4,
            );
        }
        out.push('\n');
    }
    paragraph(
        &mut out,
        "Pessimistic fixes (locks, FOR UPDATE, procedures that lock) make sessions wait for each \
         other; optimistic ones (version columns, compare-and-swap, serializable with retry) let \
         them run and redo the loser's work, which wastes more and more of it in retries as \
         contention grows. `anomalies matrix --fixes` shows every fix at every level.",
        0,
    );
    if let Some(bench) = bench_pointer(scenario) {
        out.push('\n');
        paragraph(&mut out, &bench, 0);
    }
    out
}

/// Where `anomalies bench` measures the cost side of the scenario's fixes, if it does.
fn bench_pointer(scenario: &Scenario) -> Option<String> {
    use crate::bench::strategy::{measuring, workload_of};
    let workload = workload_of(&scenario.id)?;
    let mut names = vec!["naive"];
    names.extend(
        scenario
            .fixes
            .iter()
            .filter_map(|fix| measuring(workload, &fix.info.id))
            .map(|s| s.name),
    );
    let option = match workload {
        crate::bench::Workload::Payments => "",
        crate::bench::Workload::Queue => " --workload queue",
    };
    Some(format!(
        "The cost side of each fix, under real contention and with the damage counted: \
         `anomalies bench{option} --strategies {}` measures throughput, latency and retries \
         against workers and hot rows, and checks the invariants from the database.",
        names.join(",")
    ))
}

/// The scenario and each fix as rows, the levels as columns, from the expectations.
fn outcome_table(scenario: &Scenario, style: Style) -> String {
    let mut table = Table::new();
    let mut header = vec![Cell::new(""), Cell::new("engine")];
    header.extend(Level::ALL.iter().map(|l| Cell::new(l.to_string())));
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width)
        .set_header(header);
    let variants = std::iter::once(("no fix".to_string(), scenario, None)).chain(
        scenario
            .fixes
            .iter()
            .map(|f| (f.info.id.clone(), &*f.variant, Some(&f.info))),
    );
    for (name, variant, info) in variants {
        for (index, engine) in ENGINES.into_iter().enumerate() {
            let mut row = vec![
                Cell::new(if index == 0 { name.as_str() } else { "" }),
                Cell::new(engine),
            ];
            match not_run(variant, info, engine) {
                Some(_) => row.extend(Level::ALL.iter().map(|_| Cell::new("n/a"))),
                None => row.extend(Level::ALL.iter().map(|level| {
                    Cell::new(
                        variant
                            .expected(engine, *level)
                            .map_or("—".to_string(), |e| short(*e).to_string()),
                    )
                })),
            }
            table.add_row(row);
        }
    }
    if let Some(column) = table.column_mut(0) {
        column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
    }
    format!("{table}\n")
}

/// `anomaly`, `abort`...: a cell's word.
fn short(expected: Expected) -> &'static str {
    match expected {
        Expected::Anomaly => "ANOMALY",
        Expected::Prevented(mechanism) => mechanism.words(),
    }
}

/// What each mechanism in the table means, for the ones the table uses.
fn mechanisms_used(scenario: &Scenario) -> Vec<String> {
    let used: Vec<Mechanism> = Mechanism::ALL
        .into_iter()
        .filter(|m| {
            scenario
                .expectations
                .iter()
                .chain(scenario.fixes.iter().flat_map(|f| &f.variant.expectations))
                .any(|e| e.expected == Expected::Prevented(*m))
        })
        .collect();
    used.into_iter()
        .map(|m| {
            let meaning = match m {
                Mechanism::Blocking => {
                    "a step waited for another session's lock, then saw the outcome of a serial order"
                }
                Mechanism::Abort => {
                    "the database refused a step (a serialization failure, a deadlock, a busy or \
                     locked database) and the transaction was rolled back"
                }
                Mechanism::Constraint => {
                    "the database refused a write that broke a declared rule (a CHECK, a UNIQUE \
                     key) and the transaction was rolled back"
                }
                Mechanism::ConsistentRead => {
                    "nothing waited, and nothing failed before the reads had settled the outcome: \
                     every read saw committed data or its snapshot"
                }
                Mechanism::Retry => {
                    "a session's attempt was refused or found its data changed, so it rolled back \
                     and ran the transaction again on fresh values"
                }
                Mechanism::Guard => {
                    "a session saw a step match no row (a lock not granted, a stale write \
                     rejected) and stopped instead of acting on what it had read"
                }
                Mechanism::Skip => {
                    "a locking read with SKIP LOCKED passed over the rows another open \
                     transaction held and took others: nobody waited and no row was taken twice"
                }
            };
            format!("{}: {meaning}.", m.words())
        })
        .collect()
}

/// `at read committed: prevented by blocking; ...`, or why the fix is not run on the engine.
fn fix_line(info: &FixInfo, variant: &Scenario, engine: EngineKind) -> String {
    match not_run(variant, Some(info), engine) {
        Some(why) => format!("not available — {why}"),
        None => levels::by_level(variant, engine),
    }
}

pub fn json(scenario: &Scenario) -> String {
    let outcomes = |variant: &Scenario, info: Option<&FixInfo>| -> Value {
        let mut engines = serde_json::Map::new();
        for engine in ENGINES {
            let value = match not_run(variant, info, engine) {
                Some(why) => value!({ "available": false, "why": why }),
                None => {
                    let mut levels = serde_json::Map::new();
                    for level in Level::ALL {
                        levels.insert(
                            level.id().to_string(),
                            variant
                                .expected(engine, level)
                                .map_or(Value::Null, |e| e.to_string().into()),
                        );
                    }
                    Value::Object(levels)
                }
            };
            engines.insert(engine.to_string(), value);
        }
        Value::Object(engines)
    };
    let fixes: Vec<Value> = scenario
        .fixes
        .iter()
        .map(|fix| {
            value!({
                "id": fix.info.id,
                "title": fix.info.title,
                "how": fix.info.how,
                "prefer": fix.info.prefer,
                "level": fix.info.level,
                "expected": outcomes(&fix.variant, Some(&fix.info)),
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&crate::render::json::versioned(value!({
        "id": scenario.id,
        "title": scenario.title,
        "anomaly": { "name": scenario.anomaly, "code": scenario.code },
        "plain": scenario.plain,
        "formal": scenario.formal,
        "story": scenario.story,
        "expected": outcomes(scenario, None),
        "fixes": fixes,
        "topology": scenario.topology,
        "one_server": (!scenario.one_server.is_empty()).then_some(&scenario.one_server),
    })))
    .unwrap_or_default();
    text.push('\n');
    text
}
