//! Evaluating an expression against the facts of a finished run.

use std::cmp::Ordering;

use super::value::compare;
use super::{
    Expr, Facts, Node, Op, Ref, Rows, Source, StepFn, StepName, StepOutcome, Unfit, Value,
};

impl Expr {
    /// Evaluates to `Some(true)`, `Some(false)` or `None` (unknown); `Err` when a reference
    /// cannot be right (rows without that column, a command where rows are needed, rows of
    /// another width), wherever it is in the expression.
    pub fn holds(&self, facts: &dyn Facts) -> Result<Option<bool>, Unfit> {
        Ok(match self.eval(facts)? {
            Value::Bool(b) => Some(b),
            _ => None,
        })
    }

    /// The value of the expression. Every part is evaluated, so that a reference that cannot be
    /// right is reported even where `and` or `or` would not need it.
    pub fn eval(&self, facts: &dyn Facts) -> Result<Value, Unfit> {
        let here = |message: String| Unfit {
            at: self.at,
            message,
        };
        Ok(match &self.node {
            Node::Num(n) => Value::Num(*n),
            Node::Text(text) => Value::Text(text.clone()),
            Node::Bool(b) => Value::Bool(*b),
            Node::Null => Value::Null,
            Node::Ref(reference) => read(reference, facts).map_err(here)?,
            Node::Tuple(items) => known(all(items, facts)?, Value::Row),
            Node::Rows(items) => known(all(items, facts)?, |values| {
                Value::Rows(Rows {
                    source: None,
                    columns: Vec::new(),
                    rows: values.into_iter().map(as_row).collect(),
                })
            }),
            Node::Count(inner) => match inner.eval(facts)? {
                Value::Rows(rows) => Value::Num(rows.rows.len() as f64),
                _ => Value::Unknown,
            },
            Node::Contains(rows, row) => match (rows.eval(facts)?, row.eval(facts)?) {
                (Value::Rows(rows), row) if !row.is_unknown() => {
                    Value::Bool(rows.contains(&as_row(row)).map_err(here)?)
                }
                _ => Value::Unknown,
            },
            Node::Step(function, step) => step_fact(*function, step, facts).map_err(here)?,
            Node::Committed(session) => Value::Bool(facts.committed(session)),
            Node::IsNull(inner, negated) => match inner.eval(facts)? {
                Value::Unknown => Value::Unknown,
                value => Value::Bool(matches!(value, Value::Null) != *negated),
            },
            Node::Not(inner) => match inner.eval(facts)? {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Unknown,
            },
            Node::Neg(inner) => match inner.eval(facts)? {
                Value::Num(n) => Value::Num(-n),
                _ => Value::Unknown,
            },
            Node::Binary(left, op, right) => {
                binary(left.eval(facts)?, *op, right.eval(facts)?).map_err(here)?
            }
        })
    }
}

fn all(items: &[Expr], facts: &dyn Facts) -> Result<Vec<Value>, Unfit> {
    items.iter().map(|item| item.eval(facts)).collect()
}

/// `make(values)`, or unknown when one of them is.
fn known(values: Vec<Value>, make: impl FnOnce(Vec<Value>) -> Value) -> Value {
    if values.iter().any(Value::is_unknown) {
        return Value::Unknown;
    }
    make(values)
}

/// A row, or one value as a row of one.
fn as_row(value: Value) -> Vec<Value> {
    match value {
        Value::Row(values) => values,
        value => vec![value],
    }
}

/// The value a reference names: unknown when its step or query did not give one.
fn read(reference: &Ref, facts: &dyn Facts) -> Result<Value, String> {
    let rows = match &reference.source {
        Source::Final(name) => match facts.final_rows(name.as_deref()) {
            Some(rows) => rows,
            None => return Ok(Value::Unknown),
        },
        Source::Step(step) => match facts.step(step) {
            StepOutcome::Rows(rows) => rows,
            StepOutcome::Command(changed) => {
                return Err(match &reference.column {
                    Some(_) => format!(
                        "`{reference}`: {step} returned no rows to read a column from (it is a \
                         command; it changed {changed} row(s))"
                    ),
                    None => format!(
                        "`{reference}`: {step} returned no rows (it is a command; it changed \
                         {changed} row(s)); affected({step}) counts the rows it changed"
                    ),
                })
            }
            StepOutcome::NotRun | StepOutcome::Failed(_) => return Ok(Value::Unknown),
        },
    };
    match &reference.column {
        None => Ok(Value::Rows(rows)),
        Some(column) => Ok(rows
            .first(column)
            .map_err(|message| format!("`{reference}`: {message}"))?
            .cloned()
            .unwrap_or(Value::Unknown)),
    }
}

/// `succeeded(step)` and the like. Whether a step ran, and how, is known once the run is over;
/// what it returned or changed is unknown when it did not succeed.
fn step_fact(function: StepFn, step: &StepName, facts: &dyn Facts) -> Result<Value, String> {
    let outcome = facts.step(step);
    Ok(match (function, outcome) {
        (StepFn::Succeeded, outcome) => Value::Bool(matches!(
            outcome,
            StepOutcome::Rows(_) | StepOutcome::Command(_)
        )),
        (StepFn::Failed, outcome) => Value::Bool(matches!(outcome, StepOutcome::Failed(_))),
        (StepFn::Skipped, outcome) => Value::Bool(outcome == StepOutcome::NotRun),
        (StepFn::Error, StepOutcome::Failed(kind)) => Value::Text(kind),
        (StepFn::Error, StepOutcome::Rows(_) | StepOutcome::Command(_)) => Value::Null,
        (StepFn::Affected, StepOutcome::Command(changed)) => Value::Num(changed as f64),
        (StepFn::Affected, StepOutcome::Rows(rows)) => {
            return Err(format!(
                "affected({step}): {step} is a query (it returned {} row(s)); \
                 count({step}) counts them",
                rows.rows.len()
            ))
        }
        (StepFn::Error | StepFn::Affected, StepOutcome::NotRun | StepOutcome::Failed(_)) => {
            Value::Unknown
        }
    })
}

fn binary(left: Value, op: Op, right: Value) -> Result<Value, String> {
    Ok(match (op, left, right) {
        (Op::And, left, right) => match (left, right) {
            (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
            (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
            _ => Value::Unknown,
        },
        (Op::Or, left, right) => match (left, right) {
            (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
            (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
            _ => Value::Unknown,
        },
        (_, Value::Unknown, _) | (_, _, Value::Unknown) => Value::Unknown,
        (Op::Add, Value::Num(a), Value::Num(b)) => Value::Num(a + b),
        (Op::Sub, Value::Num(a), Value::Num(b)) => Value::Num(a - b),
        (Op::Add | Op::Sub, _, _) => Value::Unknown,
        (Op::Eq | Op::Ne, Value::Rows(a), Value::Rows(b)) => {
            Value::Bool(a.same(&b)? == (op == Op::Eq))
        }
        (_, Value::Rows(_) | Value::Row(_), _) | (_, _, Value::Rows(_) | Value::Row(_)) => {
            Value::Unknown
        }
        (op, left, right) => Value::Bool(compared(op, compare(&left, &right))),
    })
}

/// A comparison of two values that compare as `ordering`; when they cannot be ordered (NULL
/// against a value, values of different kinds), only `!=` holds.
fn compared(op: Op, ordering: Option<Ordering>) -> bool {
    match (op, ordering) {
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Ne, None) => true,
        _ => false,
    }
}
