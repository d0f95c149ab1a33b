use std::collections::HashMap;

use super::*;

/// A finished run as plain values: what each step did, the final queries, who committed.
struct Run {
    steps: HashMap<&'static str, StepOutcome>,
    finals: HashMap<Option<&'static str>, Rows>,
    committed: Vec<&'static str>,
}

impl Facts for Run {
    fn step(&self, step: &StepName) -> StepOutcome {
        self.steps
            .get(step.to_string().as_str())
            .cloned()
            .unwrap_or(StepOutcome::NotRun)
    }
    fn final_rows(&self, name: Option<&str>) -> Option<Rows> {
        self.finals
            .iter()
            .find(|(n, _)| n.as_deref() == name)
            .map(|(_, rows)| rows.clone())
    }
    fn committed(&self, session: &str) -> bool {
        self.committed.contains(&session)
    }
}

fn rows(source: &str, columns: &[&str], rows: &[&[Option<&str>]]) -> Rows {
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let rows: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|row| row.iter().map(|v| v.map(str::to_string)).collect())
        .collect();
    Rows::from_db(source.into(), &columns, &rows)
}

fn run() -> Run {
    let steps = [
        (
            "alice.read",
            StepOutcome::Rows(rows(
                "alice.read",
                &["id", "balance"],
                &[&[Some("1"), Some("200")], &[Some("2"), None]],
            )),
        ),
        (
            "john.read",
            StepOutcome::Rows(rows("john.read", &["balance"], &[&[Some("150")]])),
        ),
        (
            "john.look",
            StepOutcome::Rows(rows("john.look", &["id"], &[])),
        ),
        ("john.write", StepOutcome::Command(1)),
        (
            "john.commit",
            StepOutcome::Failed("serialization-failure".into()),
        ),
        ("alice.commit", StepOutcome::Command(0)),
    ];
    let finals = [
        (
            None,
            rows(
                "the final query",
                &["total", "owner"],
                &[&[Some("100"), Some("alice")]],
            ),
        ),
        (
            Some("flags"),
            rows("final.flags", &["id", "done"], &[&[Some("1"), Some("t")]]),
        ),
    ];
    Run {
        steps: steps.into_iter().collect(),
        finals: finals.into_iter().collect(),
        committed: vec!["alice"],
    }
}

fn check(text: &str, expected: Option<bool>) {
    let mut expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    if text.contains("final.flags") {
        expr.name_finals();
    }
    check_condition(&expr).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    assert_eq!(expr.holds(&run()), Ok(expected), "{text}");
}

fn check_broken(text: &str, message: &str) {
    let expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    check_condition(&expr).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    let unfit = expr.holds(&run()).expect_err(text);
    assert_eq!(unfit.message, message, "{text}");
    // Placed at a part of the condition that names what cannot be right.
    assert!(expr.offsets().contains(&unfit.at), "{text}: {unfit:?}");
}

fn check_error(text: &str, offset: usize, message: &str) {
    let error = parse(text)
        .and_then(|expr| check_condition(&expr))
        .expect_err(text);
    assert_eq!(error.offset, offset, "{text}: {error:?}");
    assert!(error.message.contains(message), "{text}: {error:?}");
}

#[test]
fn evaluates_comparisons_and_arithmetic() {
    check("final.total < 200", Some(true));
    check("alice.read.balance + john.read.balance != 350", Some(false));
    check("alice.read.balance - 50 = 150", Some(true));
    check("final.owner = 'alice'", Some(true));
    check("-final.total < 0", Some(true));
    check(
        "(final.total >= 100) and not (final.total > 100)",
        Some(true),
    );
    check("final.total = '100' and final.owner != 'bob'", Some(true));
}

#[test]
fn unknown_values_never_make_an_anomaly() {
    check("alice.second.balance != alice.read.balance", None);
    check("alice.second.balance = 1 or final.total = 100", Some(true));
    check("alice.second.balance = 1 and final.total = 5", Some(false));
    check("not (alice.second.balance = 1)", None);
    check("john.commit.x = 1", None);
    check("count(john.commit) = 0", None);
    check("alice.never.x is null", None);
}

#[test]
fn null_is_a_value_and_is_null_tests_it() {
    check("null is null", Some(true));
    check("1 is not null", Some(true));
    check("john.read.balance is null", Some(false));
    check("john.read.balance is not null", Some(true));
    check("null = null", Some(true));
    check("null = 0", Some(false));
    check("null != 0", Some(true));
}

#[test]
fn counts_rows_and_an_empty_result_is_not_unknown() {
    check("count(alice.read) = 2", Some(true));
    check("count(john.look) = 0", Some(true));
    check("count(final) = 1", Some(true));
    check("count(rows()) = 0 and count(rows(1, 2, 3)) = 3", Some(true));
    check("john.look.id = 1", None);
}

#[test]
fn affected_counts_what_a_command_changed() {
    check("affected(john.write) = 1", Some(true));
    check("affected(alice.commit) = 0", Some(true));
    check("affected(john.commit) = 1", None);
    check_broken(
        "affected(alice.read) = 2",
        "affected(alice.read): alice.read is a query (it returned 2 row(s)); count(alice.read) counts them",
    );
    check_broken(
        "count(john.write) = 1",
        "`john.write`: john.write returned no rows (it is a command; it changed 1 row(s)); affected(john.write) counts the rows it changed",
    );
}

#[test]
fn how_a_step_ended() {
    check(
        "succeeded(john.write) and not failed(john.write)",
        Some(true),
    );
    check(
        "failed(john.commit) and not succeeded(john.commit)",
        Some(true),
    );
    check(
        "skipped(alice.never) and not failed(alice.never)",
        Some(true),
    );
    check("not skipped(john.commit)", Some(true));
    check("error(john.commit) = 'serialization-failure'", Some(true));
    check("error(john.commit) != 'deadlock'", Some(true));
    check("error(john.write) is null", Some(true));
    check("error(alice.never) = 'deadlock'", None);
}

#[test]
fn whole_results_are_multisets() {
    check("alice.read = rows((2, null), (1, 200))", Some(true));
    check("alice.read = rows((1, 200))", Some(false));
    check("alice.read != rows((1, 200), (1, 200))", Some(true));
    check("john.look = rows()", Some(true));
    check("john.read = rows(150)", Some(true));
    check(
        "final.flags = rows((1, true)) and final.flags = rows((1, 't'))",
        Some(true),
    );
    check("alice.read contains (1, 200)", Some(true));
    check("contains(alice.read, (2, null))", Some(true));
    check("alice.read contains (3, 300)", Some(false));
    check("john.read contains 150", Some(true));
    check("final.flags.done = true", Some(true));
    check("alice.never = rows()", None);
    check("alice.never contains (1, 2)", None);
    check("alice.read contains (1, alice.never.x)", None);
    check_broken(
        "alice.read = rows((1, 200, 3))",
        "alice.read has 2 column(s) (id, balance) but rows((1, 200, 3)) has 3 value(s) a row: \
         rows compare only with rows of as many values",
    );
    check_broken(
        "alice.read contains 1",
        "alice.read has 2 column(s) (id, balance) but (1) has 1 value(s): \
         rows compare only with rows of as many values",
    );
}

#[test]
fn committed_reads_the_run() {
    check("committed(alice) and not committed(john)", Some(true));
}

#[test]
fn a_reference_that_cannot_be_right_is_reported_wherever_it_is() {
    check_broken(
        "final.total = 1 or john.read.balanse = 1",
        "`john.read.balanse`: no column balanse in john.read (columns: balance); did you mean balance?",
    );
    check_broken(
        "john.write.x = 1",
        "`john.write.x`: john.write returned no rows to read a column from (it is a command; it changed 1 row(s))",
    );
}

#[test]
fn reports_syntax_errors_with_offsets() {
    check_error("final.total <", 13, "ends too early");
    check_error("alice < 3", 6, "session.step.column");
    check_error("final.total < 3 3", 16, "after a complete condition");
    check_error("final.total ? 3", 12, "unexpected character");
    check_error("final.owner = 'x", 14, "unterminated");
    check_error("final.x is 3", 11, "expected `null` after `is`");
    check_error("cout(alice.read) = 1", 0, "did you mean `count`?");
    check_error("count(alice.read, 1) = 1", 0, "takes 1 argument(s), not 2");
    check_error("failed(john)", 7, "takes a step, like failed(john.commit)");
    check_error("failed(john.commit.x)", 18, "a column after the step");
}

#[test]
fn kinds_are_checked_before_anything_runs() {
    check_error("alice.read < 3", 0, "`alice.read`, a whole result");
    check_error("3 = alice.read", 4, "compare a whole result with rows(...)");
    check_error("alice.read < rows()", 0, "only with = and !=");
    check_error(
        "count(alice.read.balance) = 1",
        6,
        "counts the rows of a whole result",
    );
    check_error("alice.read", 0, "a condition is true or false");
    check_error("(1, 2) = (1, 2)", 0, "a tuple of 2 value(s)");
    check_error(
        "rows((1, 2), (3)) = alice.read",
        14,
        "a row of 1 value(s) where the rows have 2",
    );
    check_error("rows((1, 2)) contains (1, 2, 3)", 22, "a row of 3 value(s)");
    check_error(
        "alice.read is null",
        0,
        "count(...) = 0 says a result has no rows",
    );
    check_error(
        "error(john.commit) = 'serialisation-failure'",
        21,
        "did you mean 'serialization-failure'?",
    );
    check_error("not alice.read", 4, "`not` and `-` take one value");
}

#[test]
fn nesting_is_bounded() {
    let nested = |n: usize| format!("{}1 = 1{}", "(".repeat(n), ")".repeat(n));
    assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
    check_error(
        &nested(MAX_DEPTH + 1),
        MAX_DEPTH,
        "nests deeper than 64 levels",
    );
    check_error(&nested(5000), MAX_DEPTH, "nests deeper");
    check_error(
        &format!("{}true", "not ".repeat(5000)),
        4 * MAX_DEPTH,
        "nests deeper",
    );
    check_error(
        &format!("{}1 = 1", "- ".repeat(5000)),
        2 * MAX_DEPTH,
        "nests deeper",
    );
    let chain = format!("1{} = 1", " + 1".repeat(5000));
    assert!(parse(&chain).unwrap_err().message.contains("nests deeper"));
    let chain = vec!["true"; MAX_DEPTH].join(" and ");
    assert_eq!(parse(&chain).map(|e| e.height()), Ok(MAX_DEPTH));
}

#[test]
fn lists_what_it_mentions() {
    let expr = parse(
        "alice.read.balance > final.total and committed(john) and failed(john.commit) \
         and count(final.flags) = 1",
    )
    .unwrap();
    let mentions: Vec<(usize, String)> = expr
        .mentions()
        .into_iter()
        .map(|(at, m)| {
            let name = match m {
                Mention::Step(step) => step.to_string(),
                Mention::Session(session) => session.to_string(),
                Mention::Final(r) => r.to_string(),
            };
            (at, name)
        })
        .collect();
    assert_eq!(
        mentions,
        [
            (0, "alice.read".to_string()),
            (21, "final.total".to_string()),
            (47, "john".to_string()),
            (64, "john.commit".to_string()),
            (87, "final.flags".to_string()),
        ]
    );
}

#[test]
fn named_finals_read_final_name_as_a_query() {
    let mut expr =
        parse("final.flags = rows() and final.flags.done = 1 and final = rows()").unwrap();
    expr.name_finals();
    let finals: Vec<String> = expr
        .mentions()
        .into_iter()
        .map(|(_, m)| match m {
            Mention::Final(r) => format!("{:?}/{:?}", r.source, r.column),
            _ => String::new(),
        })
        .collect();
    assert_eq!(
        finals,
        [
            "Final(Some(\"flags\"))/None",
            "Final(Some(\"flags\"))/Some(\"done\")",
            "Final(None)/None",
        ]
    );
}
