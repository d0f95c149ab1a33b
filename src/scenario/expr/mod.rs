//! The small expression language that decides whether an anomaly happened.
//!
//! ```text
//! expr  := or
//! or    := and ("or" and)*
//! and   := not ("and" not)*
//! not   := "not" not | cmp
//! cmp   := sum (("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum
//!               | "is" ["not"] "null" | "contains" sum)?
//! sum   := unary (("+" | "-") unary)*
//! unary := "-" unary | atom
//! atom  := number | 'text' | "null" | "true" | "false" | ref | call
//!        | "(" expr ")" | "(" expr ("," expr)+ ")"
//! ref   := session "." step ["." column] | "final" ["." name ["." column]]
//! call  := "committed(" session ")" | step-fn "(" session "." step ")"
//!        | "count(" expr ")" | "contains(" expr "," expr ")" | "rows(" [expr ("," expr)*] ")"
//! step-fn := "succeeded" | "failed" | "skipped" | "error" | "affected"
//! ```
//!
//! A value that was never read (its step failed, was skipped or did not run) is unknown; a
//! comparison with an unknown value is unknown, and an unknown condition does not count as an
//! anomaly. A condition nests at most [`MAX_DEPTH`] levels deep.

mod check;
mod eval;
mod lex;
mod parse;
mod value;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use std::fmt;

pub use check::{check_condition, check_value};
pub use parse::{parse, parse_at, MAX_DEPTH};
pub use value::{no_column, Rows, Value};

/// A step by name: `alice.read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepName {
    pub session: String,
    pub step: String,
}

/// Where a value comes from: what a step returned, or what a final query returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Step(StepName),
    /// The final query: the single one of `final = "..."` (`None`), or one of
    /// `[outcome.final]` by name.
    Final(Option<String>),
}

/// A value a condition reads: a column of the first row (`alice.read.balance`), or, without a
/// column, the whole result (`alice.read`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub source: Source,
    pub column: Option<String>,
}

/// An expression, with the byte offset where it starts in the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub at: usize,
    pub node: Node,
    /// The longest path from here to a leaf, counting this node: bounded by [`MAX_DEPTH`].
    height: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Num(f64),
    Text(String),
    Bool(bool),
    Null,
    Ref(Ref),
    /// `(1, 100)`: a row, in `rows(...)` or after `contains`.
    Tuple(Vec<Expr>),
    /// `rows((1, 100), (2, 200))`: a whole result, to compare as a multiset.
    Rows(Vec<Expr>),
    /// `count(alice.read)`: how many rows a whole result has.
    Count(Box<Expr>),
    /// `alice.read contains (1, 100)`.
    Contains(Box<Expr>, Box<Expr>),
    /// `affected(john.write)`, `failed(john.commit)`, ...: what a step did. The node's offset
    /// is the step name's.
    Step(StepFn, StepName),
    /// `committed(alice)`; the node's offset is the session name's.
    Committed(String),
    /// `x is null` (`false`), `x is not null` (`true`).
    IsNull(Box<Expr>, bool),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
}

/// A function of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepFn {
    Succeeded,
    Failed,
    Skipped,
    /// The portable error kind of its failure: `'serialization-failure'`.
    Error,
    /// The rows its command changed.
    Affected,
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

/// What the latest attempt of a step did, as a condition sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Not sent: skipped after its transaction failed, after its session gave up, or never
    /// reached.
    NotRun,
    /// Failed (or was cancelled) with this portable error kind: `serialization-failure`.
    Failed(String),
    Rows(Rows),
    /// A command, with the rows it changed.
    Command(u64),
}

/// What evaluation needs to know about a finished run.
pub trait Facts {
    /// What the latest attempt of the step did.
    fn step(&self, step: &StepName) -> StepOutcome;
    /// What a final query returned (`None`: the single unnamed one); `None` if it did not run.
    fn final_rows(&self, name: Option<&str>) -> Option<Rows>;
    /// Whether the session's last transaction committed and no failure of its stood.
    fn committed(&self, session: &str) -> bool;
}

/// A reference that cannot be right in a finished run (rows without that column, a command
/// where rows are needed, rows of another width), at the byte offset of the part of the text
/// that names it: the scenario is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub at: usize,
    pub message: String,
}

/// A syntax error at a byte offset of the expression text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// A name a condition mentions, for validation against the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mention<'a> {
    Step(&'a StepName),
    Session(&'a str),
    Final(&'a Ref),
}

/// The portable error kinds, as `error(step)` gives them (kebab-case `ErrorKind`).
pub const ERROR_KINDS: [&str; 13] = [
    "serialization-failure",
    "deadlock",
    "lock-not-available",
    "busy",
    "locked",
    "constraint",
    "syntax",
    "undefined-object",
    "data-exception",
    "read-only",
    "privilege",
    "cancelled",
    "other",
];

impl StepFn {
    /// Each by the name a condition calls it.
    pub const ALL: [(&'static str, StepFn); 5] = [
        ("succeeded", StepFn::Succeeded),
        ("failed", StepFn::Failed),
        ("skipped", StepFn::Skipped),
        ("error", StepFn::Error),
        ("affected", StepFn::Affected),
    ];
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.session, self.step)
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::Step(step) => write!(f, "{step}")?,
            Source::Final(None) => f.write_str("final")?,
            Source::Final(Some(name)) => write!(f, "final.{name}")?,
        }
        match &self.column {
            Some(column) => write!(f, ".{column}"),
            None => Ok(()),
        }
    }
}

impl Expr {
    /// A node at `at`; its height is one more than its highest child's.
    pub fn new(at: usize, node: Node) -> Expr {
        let mut height = 0;
        node.children(&mut |child| height = height.max(child.height));
        Expr {
            at,
            node,
            height: height + 1,
        }
    }

    /// The longest path from this node to a leaf, counting both.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Every step, session and final query named, with the offset where it is named.
    pub fn mentions(&self) -> Vec<(usize, Mention<'_>)> {
        let mut out = Vec::new();
        self.walk(&mut |expr| match &expr.node {
            Node::Ref(
                r @ Ref {
                    source: Source::Final(_),
                    ..
                },
            ) => out.push((expr.at, Mention::Final(r))),
            Node::Ref(Ref {
                source: Source::Step(step),
                ..
            })
            | Node::Step(_, step) => out.push((expr.at, Mention::Step(step))),
            Node::Committed(session) => out.push((expr.at, Mention::Session(session))),
            _ => {}
        });
        out
    }

    /// With `[outcome.final]`'s named queries, `final.NAME` is query NAME's whole result, not
    /// the column NAME of the single final query: rewrites the references to say so.
    pub fn name_finals(&mut self) {
        if let Node::Ref(Ref {
            source: source @ Source::Final(None),
            column: column @ Some(_),
        }) = &mut self.node
        {
            *source = Source::Final(column.take());
        }
        self.node.children_mut(&mut |child| child.name_finals());
    }

    /// The byte offset of every part of the expression, for placing an [`Unfit`] in a file.
    pub fn offsets(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(&mut |expr| out.push(expr.at));
        out
    }

    fn walk<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        visit(self);
        self.node.children(&mut |child| child.walk(visit));
    }
}

impl Node {
    fn children<'a>(&'a self, visit: &mut impl FnMut(&'a Expr)) {
        match self {
            Node::Tuple(items) | Node::Rows(items) => items.iter().for_each(visit),
            Node::Count(inner) | Node::IsNull(inner, _) | Node::Not(inner) | Node::Neg(inner) => {
                visit(inner)
            }
            Node::Contains(left, right) | Node::Binary(left, _, right) => {
                visit(left);
                visit(right);
            }
            Node::Num(_)
            | Node::Text(_)
            | Node::Bool(_)
            | Node::Null
            | Node::Ref(_)
            | Node::Step(..)
            | Node::Committed(_) => {}
        }
    }

    fn children_mut(&mut self, visit: &mut impl FnMut(&mut Expr)) {
        match self {
            Node::Tuple(items) | Node::Rows(items) => items.iter_mut().for_each(visit),
            Node::Count(inner) | Node::IsNull(inner, _) | Node::Not(inner) | Node::Neg(inner) => {
                visit(inner)
            }
            Node::Contains(left, right) | Node::Binary(left, _, right) => {
                visit(left);
                visit(right);
            }
            Node::Num(_)
            | Node::Text(_)
            | Node::Bool(_)
            | Node::Null
            | Node::Ref(_)
            | Node::Step(..)
            | Node::Committed(_) => {}
        }
    }
}
