//! Property tests: no text makes the condition or template parser panic or overflow the
//! stack; deep nesting is an error with an offset; valid conditions parse and evaluate.

use proptest::prelude::*;

use super::*;
use crate::scenario::template::Template;

/// Every step returned two rows of (id, balance) but `alice.gone`, which did not run;
/// `john.write` is a command; the final queries returned one row.
struct Fixed;

impl Facts for Fixed {
    fn step(&self, step: &StepName) -> StepOutcome {
        match step.to_string().as_str() {
            "alice.gone" => StepOutcome::NotRun,
            "john.write" => StepOutcome::Command(1),
            _ => StepOutcome::Rows(two_rows(step.to_string())),
        }
    }
    fn final_rows(&self, _: Option<&str>) -> Option<Rows> {
        Some(two_rows("final".into()))
    }
    fn committed(&self, session: &str) -> bool {
        session == "alice"
    }
}

fn two_rows(source: String) -> Rows {
    let columns = ["id".to_string(), "balance".to_string()];
    let rows = [
        vec![Some("1".to_string()), Some("100".to_string())],
        vec![Some("2".to_string()), None],
    ];
    Rows::from_db(source, &columns, &rows)
}

/// Parses, checks and evaluates `text`: whatever happens, no panic, and an error's offset is
/// inside the text.
fn exercise(text: &str) -> Result<(), SyntaxError> {
    let result = parse(text).and_then(|mut expr| {
        expr.name_finals();
        check_condition(&expr)?;
        let _ = expr.holds(&Fixed);
        Ok(())
    });
    if let Err(error) = &result {
        assert!(error.offset <= text.len(), "{text:?}: {error:?}");
    }
    let _ = Template::parse(&format!("witness {{{text}}} {text}"));
    result
}

/// Pieces of the language, for inputs that are nearly valid.
const PIECES: [&str; 34] = [
    "(",
    ")",
    ",",
    "=",
    "!=",
    "<",
    ">=",
    "+",
    "-",
    "and",
    "or",
    "not",
    "is",
    "null",
    "contains",
    "true",
    "1",
    "2.5",
    "'t'",
    "'text'",
    "alice.read",
    "alice.read.balance",
    "alice.gone.id",
    "john.write",
    "final",
    "final.total",
    "final.q.id",
    "count(",
    "rows(",
    "contains(",
    "failed(john.write)",
    "affected(john.write)",
    "error(alice.read)",
    "committed(alice)",
];

fn near_valid() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&PIECES[..]), 0..40).prop_map(|p| p.join(" "))
}

/// Conditions that are valid by construction.
fn condition() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("alice.read.balance".to_string()),
        Just("final.id".to_string()),
        Just("alice.gone.id".to_string()),
        Just("affected(john.write)".to_string()),
        Just("count(alice.read)".to_string()),
        Just("null".to_string()),
        (0..1000i32).prop_map(|n| n.to_string()),
        "[a-z]{0,5}".prop_map(|t| format!("'{t}'")),
    ];
    let value = value.prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            inner.clone().prop_map(|a| format!("-({a})")),
        ]
    });
    let leaf = prop_oneof![
        (value.clone(), value.clone()).prop_map(|(a, b)| format!("{a} <= {b}")),
        (value.clone(), value.clone()).prop_map(|(a, b)| format!("{a} != {b}")),
        value.clone().prop_map(|a| format!("{a} is not null")),
        (value.clone(), value).prop_map(|(a, b)| format!("alice.read contains ({a}, {b})")),
        Just("alice.read = rows((2, null), (1, 100))".to_string()),
        Just("failed(alice.gone) or skipped(alice.gone)".to_string()),
        Just("committed(john)".to_string()),
    ];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_parsed_or_refused(text in any::<String>()) {
        let _ = exercise(&text);
    }

    #[test]
    fn near_valid_text_is_parsed_or_refused(text in near_valid()) {
        let _ = exercise(&text);
    }

    #[test]
    fn valid_conditions_parse_check_and_evaluate(text in condition(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 8)) {
        let expr = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        check_condition(&expr).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        prop_assert!(expr.holds(&Fixed).is_ok(), "{}", text);
        // A prefix is a condition or a syntax error inside the text.
        for cut in cuts {
            let _ = exercise(&text[..cut.index(text.len())]);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn deep_nesting_is_an_error_not_a_crash(
        depth in (MAX_DEPTH + 1)..6000usize,
        open in prop::sample::select(&["(", "not ", "- ", "count(", "rows(", "(1, "][..]),
    ) {
        let text = format!("{}1", open.repeat(depth));
        let error = parse(&text).expect_err("too deep");
        prop_assert!(error.message.contains("nests deeper"), "{:?}", error);
        prop_assert!(error.offset < text.len());
        let hole = Template::parse(&format!("x {{{text}}}")).expect_err("too deep");
        prop_assert!(hole.message.contains("nests deeper"), "{:?}", hole);
    }

    #[test]
    fn long_chains_are_an_error_not_a_crash(
        length in MAX_DEPTH..20000usize,
        op in prop::sample::select(&[" + ", " and ", " or ", " - "][..]),
    ) {
        let text = vec!["1"; length + 1].join(op);
        let error = parse(&text).expect_err("too long");
        prop_assert!(error.message.contains("nests deeper"), "{:?}", error);
    }
}
