//! What kind of value each part of an expression is, checked when the scenario loads: a whole
//! result where one is needed (`count`, `contains`, `=` with `rows(...)`), one value elsewhere.

use super::{Expr, Node, Op, Ref, StepFn, SyntaxError, ERROR_KINDS};
use crate::scenario::did_you_mean;

/// What an expression gives, as far as the text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One value: a number, text, a boolean, null.
    Value,
    /// A tuple of this many values.
    Row(usize),
    /// A whole result; its width when the text tells (a `rows(...)` literal with rows).
    Rows(Option<usize>),
}

/// A condition: it must give one value (true or false, or unknown).
pub fn check_condition(expr: &Expr) -> Result<(), SyntaxError> {
    match kind(expr)? {
        Kind::Value => Ok(()),
        other => Err(wrong(
            expr,
            format!(
                "a condition is true or false, but this is {}",
                describe(expr, other)
            ),
        )),
    }
}

/// A template's hole: any value, a whole result too, but not a bare tuple.
pub fn check_value(expr: &Expr) -> Result<(), SyntaxError> {
    match kind(expr)? {
        Kind::Row(_) => Err(wrong(
            expr,
            "a tuple stands only in rows(...) or after contains",
        )),
        _ => Ok(()),
    }
}

fn kind(expr: &Expr) -> Result<Kind, SyntaxError> {
    Ok(match &expr.node {
        Node::Num(_) | Node::Text(_) | Node::Bool(_) | Node::Null => Kind::Value,
        Node::Step(..) | Node::Committed(_) => Kind::Value,
        Node::Ref(Ref {
            column: Some(_), ..
        }) => Kind::Value,
        Node::Ref(Ref { column: None, .. }) => Kind::Rows(None),
        Node::Tuple(items) => {
            for item in items {
                value(item, "a tuple holds values")?;
            }
            Kind::Row(items.len())
        }
        Node::Rows(items) => Kind::Rows(literal_width(items)?),
        Node::Count(inner) => {
            rows(
                inner,
                "count(...) counts the rows of a whole result, like count(alice.read)",
            )?;
            Kind::Value
        }
        Node::Contains(left, right) => {
            let width = rows(left, "contains looks in a whole result, like alice.read")?;
            let row_width = match kind(right)? {
                Kind::Value => 1,
                Kind::Row(n) => n,
                other => {
                    return Err(wrong(
                        right,
                        format!(
                            "contains looks for one row, like (1, 100), but this is {}",
                            describe(right, other)
                        ),
                    ))
                }
            };
            same_width(right, width, row_width)?;
            Kind::Value
        }
        Node::IsNull(inner, _) => {
            value(
                inner,
                "`is null` tests one value; count(...) = 0 says a result has no rows",
            )?;
            Kind::Value
        }
        Node::Not(inner) | Node::Neg(inner) => {
            value(inner, "`not` and `-` take one value")?;
            Kind::Value
        }
        Node::Binary(left, op, right) => binary(left, *op, right)?,
    })
}

fn binary(left: &Expr, op: Op, right: &Expr) -> Result<Kind, SyntaxError> {
    let (left_kind, right_kind) = (kind(left)?, kind(right)?);
    match (left_kind, right_kind) {
        (Kind::Value, Kind::Value) => {
            error_kind_literal(left, right)?;
            error_kind_literal(right, left)?;
            Ok(Kind::Value)
        }
        (Kind::Rows(a), Kind::Rows(b)) if matches!(op, Op::Eq | Op::Ne) => {
            if let (Some(a), Some(b)) = (a, b) {
                same_width(right, Some(a), b)?;
            }
            Ok(Kind::Value)
        }
        (Kind::Rows(_), Kind::Rows(_)) => {
            Err(wrong(left, "whole results compare only with = and !="))
        }
        _ => {
            let (culprit, kind) = match left_kind {
                Kind::Value => (right, right_kind),
                _ => (left, left_kind),
            };
            Err(wrong(
                culprit,
                format!(
                    "this is {}; compare a whole result with rows(...), like alice.read = \
                     rows((1, 100)), or name a column, like alice.read.balance",
                    describe(culprit, kind)
                ),
            ))
        }
    }
}

/// `error(step) = 'serialisation-failure'`: the text must be a kind there is.
fn error_kind_literal(side: &Expr, other: &Expr) -> Result<(), SyntaxError> {
    let (Node::Step(StepFn::Error, _), Node::Text(text)) = (&side.node, &other.node) else {
        return Ok(());
    };
    if ERROR_KINDS.contains(&text.as_str()) {
        return Ok(());
    }
    Err(wrong(
        other,
        format!(
            "no error kind '{text}'{}; the kinds are {}",
            did_you_mean(text, &ERROR_KINDS)
                .map(|c| format!(" (did you mean '{c}'?)"))
                .unwrap_or_default(),
            ERROR_KINDS.join(", ")
        ),
    ))
}

fn value(expr: &Expr, why: &str) -> Result<(), SyntaxError> {
    match kind(expr)? {
        Kind::Value => Ok(()),
        other => Err(wrong(
            expr,
            format!("{why}, but this is {}", describe(expr, other)),
        )),
    }
}

/// A whole result's width, if the text tells it.
fn rows(expr: &Expr, why: &str) -> Result<Option<usize>, SyntaxError> {
    match kind(expr)? {
        Kind::Rows(width) => Ok(width),
        other => Err(wrong(
            expr,
            format!("{why}, but this is {}", describe(expr, other)),
        )),
    }
}

/// The width of `rows(a, (b, c))`'s rows: every row as wide as the first.
fn literal_width(items: &[Expr]) -> Result<Option<usize>, SyntaxError> {
    let mut width = None;
    for item in items {
        let this = match kind(item)? {
            Kind::Value => 1,
            Kind::Row(n) => n,
            other => {
                return Err(wrong(
                    item,
                    format!(
                        "rows(...) holds rows, like (1, 100), but this is {}",
                        describe(item, other)
                    ),
                ))
            }
        };
        same_width(item, width, this)?;
        width = Some(this);
    }
    Ok(width)
}

fn same_width(at: &Expr, expected: Option<usize>, found: usize) -> Result<(), SyntaxError> {
    match expected {
        Some(expected) if expected != found => Err(wrong(
            at,
            format!("a row of {found} value(s) where the rows have {expected}"),
        )),
        _ => Ok(()),
    }
}

fn describe(expr: &Expr, kind: Kind) -> String {
    match (&expr.node, kind) {
        (Node::Ref(reference), Kind::Rows(_)) => {
            format!("`{reference}`, a whole result (no column named)")
        }
        (Node::Ref(reference), _) => format!("`{reference}`, one value"),
        (_, Kind::Value) => "one value".into(),
        (_, Kind::Row(n)) => format!("a tuple of {n} value(s)"),
        (_, Kind::Rows(_)) => "a whole result".into(),
    }
}

fn wrong(at: &Expr, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        offset: at.at,
        message: message.into(),
    }
}
