//! The small expression language that decides whether an anomaly happened.
//!
//! ```text
//! expr := or
//! or   := and ("or" and)*
//! and  := not ("and" not)*
//! not  := "not" not | cmp
//! cmp  := sum (("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum)?
//! sum  := atom (("+" | "-") atom)*
//! atom := number | 'text' | ref | "committed(" session ")" | "(" expr ")" | "-" atom
//! ref  := session "." step "." column | "final" "." column
//! ```
//!
//! A value that was never read (the step failed or was skipped) is unknown; a comparison with
//! an unknown value is unknown, and an unknown condition does not count as an anomaly.

mod parse;

use std::fmt;

pub use parse::parse;

/// Where a value comes from: what a step read, or what the final check query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Read {
        session: String,
        step: String,
        column: String,
    },
    Final {
        column: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Text(String),
    Ref(Ref),
    Committed(String),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
}

/// A value during evaluation. `Unknown` stands for a value that was never read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Text(String),
    Bool(bool),
    Null,
    Unknown,
}

/// What evaluation needs to know about a finished run.
pub trait Facts {
    /// The value behind a reference: `Ok(None)` when it was never read (its step failed, was
    /// skipped or returned no row); `Err` with a message when the reference cannot be right
    /// (its step returned rows without that column, or no rows at all): the scenario is broken.
    fn value(&self, reference: &Ref) -> Result<Option<Value>, String>;
    /// Whether the session's last step was a COMMIT that succeeded.
    fn committed(&self, session: &str) -> bool;
}

/// A syntax error at a byte offset of the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl Value {
    /// Turns a database's text rendering of a value into a value: numbers become numbers.
    pub fn from_db(text: Option<&str>) -> Value {
        match text {
            None => Value::Null,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(number) => Value::Num(number),
                Err(_) => match text {
                    "t" | "true" => Value::Bool(true),
                    "f" | "false" => Value::Bool(false),
                    _ => Value::Text(text.to_string()),
                },
            },
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(text) => f.write_str(text),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("NULL"),
            Value::Unknown => f.write_str("(not read)"),
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Read {
                session,
                step,
                column,
            } => write!(f, "{session}.{step}.{column}"),
            Ref::Final { column } => write!(f, "final.{column}"),
        }
    }
}

impl Expr {
    /// Every reference in the expression, for validation.
    pub fn refs(&self) -> Vec<&Ref> {
        let mut out = Vec::new();
        self.walk(&mut |expr| {
            if let Expr::Ref(r) = expr {
                out.push(r);
            }
        });
        out
    }

    /// Every session named in `committed(...)`, for validation.
    pub fn committed_sessions(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |expr| {
            if let Expr::Committed(name) = expr {
                out.push(name.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        match self {
            Expr::Not(inner) | Expr::Neg(inner) => inner.walk(visit),
            Expr::Binary(left, _, right) => {
                left.walk(visit);
                right.walk(visit);
            }
            Expr::Num(_) | Expr::Text(_) | Expr::Ref(_) | Expr::Committed(_) => {}
        }
    }

    /// Evaluates to `Some(true)`, `Some(false)` or `None` (unknown); `Err` when a reference
    /// cannot be right (see [`Facts::value`]), wherever it is in the expression.
    pub fn holds(&self, facts: &dyn Facts) -> Result<Option<bool>, String> {
        for reference in self.refs() {
            facts.value(reference)?;
        }
        Ok(match self.eval(facts) {
            Value::Bool(b) => Some(b),
            _ => None,
        })
    }

    /// The value of the expression; a reference that cannot be right counts as unknown here
    /// ([`Expr::holds`] reports it).
    pub fn eval(&self, facts: &dyn Facts) -> Value {
        match self {
            Expr::Num(n) => Value::Num(*n),
            Expr::Text(text) => Value::Text(text.clone()),
            Expr::Ref(r) => facts.value(r).ok().flatten().unwrap_or(Value::Unknown),
            Expr::Committed(session) => Value::Bool(facts.committed(session)),
            Expr::Not(inner) => match inner.eval(facts) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Unknown,
            },
            Expr::Neg(inner) => match inner.eval(facts) {
                Value::Num(n) => Value::Num(-n),
                _ => Value::Unknown,
            },
            Expr::Binary(left, Op::And, right) => match (left.eval(facts), right.eval(facts)) {
                (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Unknown,
            },
            Expr::Binary(left, Op::Or, right) => match (left.eval(facts), right.eval(facts)) {
                (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Unknown,
            },
            Expr::Binary(left, op, right) => binary(left.eval(facts), *op, right.eval(facts)),
        }
    }
}

fn binary(left: Value, op: Op, right: Value) -> Value {
    use std::cmp::Ordering;
    if matches!(left, Value::Unknown) || matches!(right, Value::Unknown) {
        return Value::Unknown;
    }
    match op {
        Op::Add | Op::Sub => match (left, right) {
            (Value::Num(a), Value::Num(b)) => Value::Num(if op == Op::Add { a + b } else { a - b }),
            _ => Value::Unknown,
        },
        _ => {
            let ordering = match (&left, &right) {
                (Value::Num(a), Value::Num(b)) => a.partial_cmp(b),
                (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
                (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                (Value::Null, Value::Null) => Some(Ordering::Equal),
                // NULL against a value, or values of different kinds: only `!=` holds.
                _ => None,
            };
            let result = match (op, ordering) {
                (Op::Eq, Some(o)) => o == Ordering::Equal,
                (Op::Ne, Some(o)) => o != Ordering::Equal,
                (Op::Lt, Some(o)) => o == Ordering::Less,
                (Op::Le, Some(o)) => o != Ordering::Greater,
                (Op::Gt, Some(o)) => o == Ordering::Greater,
                (Op::Ge, Some(o)) => o != Ordering::Less,
                (Op::Ne, None) => true,
                (_, None) => false,
                _ => unreachable!("arithmetic handled above"),
            };
            Value::Bool(result)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, Value>, Vec<&'static str>);

    impl Facts for Map {
        fn value(&self, reference: &Ref) -> Result<Option<Value>, String> {
            Ok(self.0.get(&reference.to_string()).cloned())
        }
        fn committed(&self, session: &str) -> bool {
            self.1.contains(&session)
        }
    }

    fn check(text: &str, expected: Option<bool>) {
        let facts = Map(
            [
                ("alice.read.balance", Value::Num(200.0)),
                ("john.read.balance", Value::Num(150.0)),
                ("final.total", Value::Num(100.0)),
                ("final.owner", Value::Text("alice".into())),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            vec!["alice"],
        );
        let expr = parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        assert_eq!(expr.holds(&facts), Ok(expected), "{text}");
    }

    fn check_error(text: &str, offset: usize, message: &str) {
        let error = parse(text).expect_err(text);
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
    }

    #[test]
    fn unknown_values_never_make_an_anomaly() {
        check("alice.second.balance != alice.read.balance", None);
        check("alice.second.balance = 1 or final.total = 100", Some(true));
        check("alice.second.balance = 1 and final.total = 5", Some(false));
        check("not (alice.second.balance = 1)", None);
    }

    #[test]
    fn committed_reads_the_run() {
        check("committed(alice) and not committed(john)", Some(true));
    }

    #[test]
    fn reports_syntax_errors_with_offsets() {
        check_error("final.total <", 13, "ends too early");
        check_error("alice.read < 3", 11, "session.step.column");
        check_error("final.total < 3 3", 16, "after a complete condition");
        check_error("final.total ? 3", 12, "unexpected character");
        check_error("final.owner = 'x", 14, "unterminated");
    }

    #[test]
    fn lists_references() {
        let expr = parse("alice.read.balance > final.total and committed(john)").unwrap();
        let refs: Vec<String> = expr.refs().iter().map(|r| r.to_string()).collect();
        assert_eq!(refs, ["alice.read.balance", "final.total"]);
        assert_eq!(expr.committed_sessions(), ["john"]);
    }
}
