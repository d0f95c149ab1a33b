//! `anomalies list`: the built-in scenarios, each with its fixes.

use crate::scenario::Scenario;

/// One line per scenario (id, code, anomaly and title), and its fixes on the next.
pub fn table(scenarios: &[Scenario]) -> String {
    let width = scenarios.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let code_width = scenarios.iter().map(|s| s.code.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in scenarios {
        out.push_str(&format!(
            "{:<width$}  {:<code_width$}  {}: {}\n",
            s.id, s.code, s.anomaly, s.title
        ));
        if !s.fixes.is_empty() {
            out.push_str(&format!(
                "{:<width$}  {:<code_width$}  fixes: {}\n",
                "",
                "",
                fix_ids(s).join(", ")
            ));
        }
    }
    out
}

pub fn json(scenarios: &[Scenario]) -> String {
    let items: Vec<_> = scenarios
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "anomaly": s.anomaly, "code": s.code, "title": s.title,
                "fixes": fix_ids(s),
            })
        })
        .collect();
    super::json::pretty(&super::json::versioned(
        serde_json::json!({ "scenarios": items }),
    ))
}

fn fix_ids(scenario: &Scenario) -> Vec<&str> {
    scenario.fixes.iter().map(|f| f.info.id.as_str()).collect()
}
