//! `--format html`: one self-contained page (no network, no CDN) to step through a run in a
//! browser: the swimlane, Prev and Next (or the arrow keys), the current step's narration in
//! large type, and the verdict and witness at the end. Several runs (`--level all`) are one
//! page with a tab per level.

use super::event::{describe, Tone};
use super::svg::escape;
use crate::report::Report;

/// The page for `reports` (one, or one per level), in the order given.
pub fn html(reports: &[Report]) -> String {
    let Some(first) = reports.first() else {
        return String::new();
    };
    let scenario = &first.scenario;
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n\
         <p class=\"facts\">{} ({}) · {} {}</p>\n<p class=\"story\">{}</p>\n",
        escape(&format!("{} — {}", scenario.label(), scenario.title)),
        escape(&format!("{} — {}", scenario.label(), scenario.title)),
        escape(&scenario.anomaly),
        escape(&scenario.code),
        first.engine.name,
        escape(&first.engine.version),
        escape(&scenario.story)
    );
    if let Some(fix) = &scenario.applied {
        out.push_str(&format!(
            "<p class=\"story\"><strong>With the fix:</strong> {}</p>\n",
            escape(&fix.how)
        ));
    }
    out.push_str("</header>\n");
    if reports.len() > 1 {
        out.push_str("<nav class=\"tabs\" role=\"tablist\">\n");
        for (i, report) in reports.iter().enumerate() {
            out.push_str(&format!(
                "<button role=\"tab\" data-tab=\"{i}\"{}>{}</button>\n",
                if i == 0 {
                    " aria-selected=\"true\""
                } else {
                    ""
                },
                escape(&report.level_text())
            ));
        }
        out.push_str("</nav>\n");
    }
    for (i, report) in reports.iter().enumerate() {
        out.push_str(&run(report, i, i == 0));
    }
    out.push_str(&format!("<script>{SCRIPT}</script>\n</body>\n</html>\n"));
    out
}

/// One run: the controls, the large narration, the lanes, and the verdict (shown at the end).
fn run(report: &Report, index: usize, shown: bool) -> String {
    let scenario = &report.scenario;
    let n_sessions = scenario.sessions.len().max(1);
    let n_events = report.timeline.events.len();
    let mut out = format!(
        "<section class=\"run\" data-run=\"{index}\" data-events=\"{n_events}\"{}>\n\
         <p class=\"level\">{}</p>\n\
         <div class=\"controls\"><button class=\"prev\">◀ Prev</button>\
         <span class=\"count\">0 / {n_events}</span>\
         <button class=\"next\">Next ▶</button></div>\n\
         <p class=\"now\">Press Next (or →) to send the first step.</p>\n\
         <div class=\"lanes\" style=\"grid-template-columns: 3rem repeat({n_sessions}, 1fr)\">\n\
         <div class=\"head\"></div>\n",
        if shown { "" } else { " hidden" },
        escape(&format!(
            "level: {} · {} {} ({})",
            report.levels_text(),
            report.engine.name,
            report.engine.version,
            report.engine.detail
        ))
    );
    for session in 0..scenario.sessions.len() {
        out.push_str(&format!(
            "<div class=\"head\">{}</div>\n",
            escape(&super::event::lane(scenario, session))
        ));
    }
    for i in 0..n_events {
        let described = describe(report, i);
        let row = i + 2;
        out.push_str(&format!(
            "<div class=\"number\" style=\"grid-row: {row}\">{}</div>\n",
            i + 1
        ));
        let narration = described.line(Tone::Narration).unwrap_or_default();
        out.push_str(&format!(
            "<div class=\"event\" data-event=\"{i}\" data-narration=\"{}\" style=\"grid-row: {row}; grid-column: {}\">\n",
            escape(narration),
            described.session + 2
        ));
        for (tone, text) in &described.lines {
            let (tag, class) = match tone {
                Tone::Plain => ("code", "sql"),
                Tone::Narration => ("em", "say"),
                Tone::Result => ("span", "result"),
                Tone::Waiting | Tone::Deferred | Tone::Decision => ("span", "wait"),
                Tone::Resumed => ("code", "resumed"),
                Tone::Failed => ("strong", "failed"),
                Tone::Skipped => ("span", "skipped"),
            };
            out.push_str(&format!(
                "<{tag} class=\"{class}\">{}</{tag}>\n",
                escape(text)
            ));
        }
        out.push_str("</div>\n");
    }
    let verdict = &report.verdict;
    let class = if verdict.finding.mechanism().is_none() {
        "bad"
    } else {
        "good"
    };
    out.push_str(&format!(
        "</div>\n<div class=\"verdict {class}\" hidden>\n<p class=\"summary\">{}</p>\n\
         <p class=\"witness\">{}</p>\n",
        escape(&verdict.summary(scenario)),
        escape(&verdict.witness)
    ));
    if let Some(expected) = report.expected {
        out.push_str(&format!(
            "<p class=\"expected\">expected {expected}: {}</p>\n",
            if verdict.matches(&expected) {
                "as expected".to_string()
            } else {
                format!("got {}", report.outcome_text())
            }
        ));
    }
    out.push_str("</div>\n</section>\n");
    out
}

const STYLE: &str = r#"
body { font: 18px/1.45 system-ui, "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1f2933;
  margin: 0 auto; max-width: 1200px; padding: 1rem 1.5rem 3rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0.2rem 0; }
.facts, .level { color: #3e4c59; margin: 0.2rem 0; }
.story { max-width: 60rem; }
.tabs { display: flex; gap: 0.4rem; margin: 1rem 0; flex-wrap: wrap; }
.tabs button, .controls button { font: inherit; padding: 0.4rem 0.9rem; border: 1px solid #7b8794;
  border-radius: 6px; background: #f5f7fa; color: #1f2933; cursor: pointer; }
.tabs button[aria-selected="true"] { background: #1f2933; color: #fff; }
.controls { display: flex; align-items: center; gap: 1rem; margin: 0.8rem 0; }
.count { font-variant-numeric: tabular-nums; color: #3e4c59; }
.now { font-size: 1.7rem; font-weight: 600; min-height: 2.6em; margin: 0.5rem 0 1rem; }
.lanes { display: grid; gap: 0.5rem 1rem; align-items: start; }
.head { font-weight: 700; font-size: 1.15rem; border-bottom: 2px solid #9aa5b1; }
.head:first-child { border: none; }
.number { color: #3e4c59; text-align: right; padding-top: 0.5rem; }
.event { border: 1px solid #9aa5b1; border-radius: 6px; padding: 0.45rem 0.7rem; display: flex;
  flex-direction: column; gap: 0.15rem; background: #fff; visibility: hidden; }
.event.shown { visibility: visible; }
.event.current { border: 2px solid #0d47a1; box-shadow: 0 0 0 3px #bbdefb; }
.sql, .resumed { font: 16px/1.35 "DejaVu Sans Mono", Menlo, Consolas, monospace;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.resumed { color: #0d47a1; }
.say { color: #3e4c59; }
.result { color: #1b5e20; }
.wait { color: #8a5a00; }
.failed { color: #b71c1c; }
.skipped { color: #3e4c59; }
.verdict { margin-top: 1.5rem; padding: 0.8rem 1rem; border-radius: 8px; border: 2px solid; }
.verdict.bad { background: #fdecea; border-color: #b71c1c; }
.verdict.good { background: #e8f5e9; border-color: #1b5e20; }
.summary { font-size: 1.3rem; font-weight: 700; margin: 0; }
"#;

const SCRIPT: &str = r#"
(function () {
  var runs = Array.prototype.slice.call(document.querySelectorAll('section.run'));
  var active = 0;
  function draw(run) {
    var total = Number(run.dataset.events), at = Number(run.dataset.at || 0);
    run.querySelectorAll('.event').forEach(function (box) {
      var i = Number(box.dataset.event);
      box.classList.toggle('shown', i < at);
      box.classList.toggle('current', i === at - 1);
    });
    run.querySelector('.count').textContent = at + ' / ' + total;
    var now = run.querySelector('.now');
    var verdict = run.querySelector('.verdict');
    verdict.hidden = at < total;
    if (at === 0) {
      now.textContent = 'Press Next (or \u2192) to send the first step.';
    } else if (at === total) {
      now.textContent = run.querySelector('.summary').textContent;
    } else {
      var box = run.querySelector('.event[data-event="' + (at - 1) + '"]');
      now.textContent = box.dataset.narration || box.textContent.trim();
    }
    run.querySelector('.prev').disabled = at === 0;
    run.querySelector('.next').disabled = at === total;
  }
  function step(run, by) {
    var total = Number(run.dataset.events), at = Number(run.dataset.at || 0);
    run.dataset.at = String(Math.max(0, Math.min(total, at + by)));
    draw(run);
  }
  runs.forEach(function (run) {
    run.querySelector('.next').addEventListener('click', function () { step(run, 1); });
    run.querySelector('.prev').addEventListener('click', function () { step(run, -1); });
    draw(run);
  });
  document.querySelectorAll('.tabs button').forEach(function (tab) {
    tab.addEventListener('click', function () {
      active = Number(tab.dataset.tab);
      runs.forEach(function (run, i) { run.hidden = i !== active; });
      document.querySelectorAll('.tabs button').forEach(function (t) {
        t.setAttribute('aria-selected', String(t === tab));
      });
    });
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowRight') { step(runs[active], 1); e.preventDefault(); }
    if (e.key === 'ArrowLeft') { step(runs[active], -1); e.preventDefault(); }
  });
})();
"#;
