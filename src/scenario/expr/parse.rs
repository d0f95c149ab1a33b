//! Tokens to [`Expr`]: a recursive-descent parser for the grammar in `mod.rs`, bounded so that
//! no input can overflow the stack.

use super::lex::{tokenize, Token};
use super::{Expr, Node, Op, Ref, Source, StepFn, StepName, SyntaxError};
use crate::scenario::did_you_mean;

/// How deep a condition may nest: each parenthesis, function call, `not`, unary `-` and each
/// operator of a chain (`a and b and c` is two) is a level.
pub const MAX_DEPTH: usize = 64;

/// Parses an expression; offsets count from the start of `text`.
pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    parse_at(text, 0)
}

/// Parses an expression that starts `base` bytes into a larger text (a template's hole);
/// offsets, in the expression and in errors, count from the larger text's start.
pub fn parse_at(text: &str, base: usize) -> Result<Expr, SyntaxError> {
    let tokens = tokenize(text, base)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        end: base + text.len(),
        depth: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some((offset, token)) => Err(SyntaxError {
            offset,
            message: format!("unexpected {token} after a complete condition"),
        }),
    }
}

/// The functions, for suggestions.
const FUNCTIONS: [&str; 9] = [
    "committed",
    "succeeded",
    "failed",
    "skipped",
    "error",
    "affected",
    "count",
    "contains",
    "rows",
];

struct Parser {
    tokens: Vec<(usize, Token)>,
    position: usize,
    end: usize,
    /// How many parentheses, calls, `not`s and `-`s enclose the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.position).map(|(o, t)| (*o, t))
    }

    fn peek_is(&self, ahead: usize, token: &Token) -> bool {
        self.tokens.get(self.position + ahead).map(|(_, t)| t) == Some(token)
    }

    fn next(&mut self) -> Result<(usize, Token), SyntaxError> {
        let token = self.tokens.get(self.position).cloned().ok_or(SyntaxError {
            offset: self.end,
            message: "the condition ends too early".into(),
        })?;
        self.position += 1;
        Ok(token)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found =
            matches!(self.peek(), Some((_, Token::Word(w))) if w.eq_ignore_ascii_case(word));
        if found {
            self.position += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbols: &[&'static str]) -> Option<&'static str> {
        match self.peek() {
            Some((_, Token::Symbol(s))) if symbols.contains(s) => {
                let s = *s;
                self.position += 1;
                Some(s)
            }
            _ => None,
        }
    }

    fn expect_symbol(&mut self, symbol: &'static str) -> Result<(), SyntaxError> {
        let (offset, token) = self.next()?;
        if token == Token::Symbol(symbol) {
            Ok(())
        } else {
            Err(SyntaxError {
                offset,
                message: format!("expected `{symbol}`, found {token}"),
            })
        }
    }

    fn name(&mut self) -> Result<(usize, String), SyntaxError> {
        match self.next()? {
            (offset, Token::Word(word)) => Ok((offset, word)),
            (offset, token) => Err(SyntaxError {
                offset,
                message: format!("expected a name, found {token}"),
            }),
        }
    }

    /// One level deeper: refused past [`MAX_DEPTH`], before the recursion that would go there.
    fn descend(&mut self, offset: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(offset));
        }
        Ok(())
    }

    fn ascend<T>(&mut self, result: T) -> T {
        self.depth -= 1;
        result
    }

    /// A node, refused when it would make the tree higher than [`MAX_DEPTH`].
    fn node(&self, at: usize, node: Node) -> Result<Expr, SyntaxError> {
        let expr = Expr::new(at, node);
        if expr.height() > MAX_DEPTH {
            return Err(too_deep(at));
        }
        Ok(expr)
    }

    fn binary(&self, left: Expr, op: Op, right: Expr) -> Result<Expr, SyntaxError> {
        self.node(left.at, Node::Binary(Box::new(left), op, Box::new(right)))
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            let right = self.and()?;
            left = self.binary(left, Op::Or, right)?;
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            let right = self.not()?;
            left = self.binary(left, Op::And, right)?;
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SyntaxError> {
        let Some((at, _)) = self.peek() else {
            return self.comparison();
        };
        if !self.eat_word("not") {
            return self.comparison();
        }
        self.descend(at)?;
        let inner = self.not();
        let inner = self.ascend(inner)?;
        self.node(at, Node::Not(Box::new(inner)))
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        let left = self.sum()?;
        if self.eat_word("is") {
            let negated = self.eat_word("not");
            let (offset, token) = self.next()?;
            if !matches!(&token, Token::Word(w) if w.eq_ignore_ascii_case("null")) {
                return Err(SyntaxError {
                    offset,
                    message: format!("expected `null` after `is`, found {token}"),
                });
            }
            return self.node(left.at, Node::IsNull(Box::new(left), negated));
        }
        if self.eat_word("contains") {
            let right = self.sum()?;
            return self.node(left.at, Node::Contains(Box::new(left), Box::new(right)));
        }
        let Some(symbol) = self.eat_symbol(&["=", "==", "!=", "<>", "<", "<=", ">", ">="]) else {
            return Ok(left);
        };
        let op = match symbol {
            "=" | "==" => Op::Eq,
            "!=" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            _ => Op::Ge,
        };
        let right = self.sum()?;
        self.binary(left, op, right)
    }

    fn sum(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.unary()?;
        while let Some(symbol) = self.eat_symbol(&["+", "-"]) {
            let op = if symbol == "+" { Op::Add } else { Op::Sub };
            let right = self.unary()?;
            left = self.binary(left, op, right)?;
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        match self.peek() {
            Some((at, Token::Symbol("-"))) => {
                self.position += 1;
                self.descend(at)?;
                let inner = self.unary();
                let inner = self.ascend(inner)?;
                self.node(at, Node::Neg(Box::new(inner)))
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        let (at, token) = self.next()?;
        match token {
            Token::Num(n) => self.node(at, Node::Num(n)),
            Token::Text(text) => self.node(at, Node::Text(text)),
            Token::Symbol("(") => {
                self.descend(at)?;
                let inner = self.parenthesized(at);
                self.ascend(inner)
            }
            Token::Word(word) if self.peek_is(0, &Token::Symbol("(")) => {
                self.position += 1;
                self.descend(at)?;
                let call = self.call(at, &word);
                self.ascend(call)
            }
            Token::Word(word) => match word.to_ascii_lowercase().as_str() {
                "null" => self.node(at, Node::Null),
                "true" => self.node(at, Node::Bool(true)),
                "false" => self.node(at, Node::Bool(false)),
                _ => {
                    let reference = self.reference(word)?;
                    self.node(at, Node::Ref(reference))
                }
            },
            token => Err(SyntaxError {
                offset: at,
                message: format!("expected a value, found {token}"),
            }),
        }
    }

    /// After `(`: a parenthesized expression, or a tuple `(a, b, ...)`.
    fn parenthesized(&mut self, at: usize) -> Result<Expr, SyntaxError> {
        let first = self.or()?;
        if self.eat_symbol(&[")"]).is_some() {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_symbol(&[","]).is_some() {
            items.push(self.or()?);
        }
        self.expect_symbol(")")?;
        self.node(at, Node::Tuple(items))
    }

    /// `session.step[.column]`, `final[.name[.column]]`, after its first word.
    fn reference(&mut self, first: String) -> Result<Ref, SyntaxError> {
        if first == "final" {
            let mut names = Vec::new();
            while names.len() < 2 && self.eat_symbol(&["."]).is_some() {
                names.push(self.name()?.1);
            }
            let mut names = names.into_iter();
            return Ok(match (names.next(), names.next()) {
                (Some(query), Some(column)) => Ref {
                    source: Source::Final(Some(query)),
                    column: Some(column),
                },
                (column, _) => Ref {
                    source: Source::Final(None),
                    column,
                },
            });
        }
        self.expect_symbol(".").map_err(|e| SyntaxError {
            message: format!(
                "{}: a value is named session.step.column, like alice.read.balance, or \
                 session.step for a whole result",
                e.message
            ),
            ..e
        })?;
        let step = self.name()?.1;
        let column = match self.eat_symbol(&["."]) {
            Some(_) => Some(self.name()?.1),
            None => None,
        };
        Ok(Ref {
            source: Source::Step(StepName {
                session: first,
                step,
            }),
            column,
        })
    }

    /// After `name(`: a function call, through its `)`.
    fn call(&mut self, at: usize, name: &str) -> Result<Expr, SyntaxError> {
        if name == "committed" {
            let (session_at, session) = self.name()?;
            self.expect_symbol(")")?;
            return self.node(session_at, Node::Committed(session));
        }
        if let Some((_, function)) = StepFn::ALL.iter().find(|(n, _)| *n == name) {
            let (step_at, step) = self.step_argument(name)?;
            self.expect_symbol(")")?;
            return self.node(step_at, Node::Step(*function, step));
        }
        let args = self.arguments()?;
        let arity = |wanted: usize, example: &str| -> Result<(), SyntaxError> {
            if args.len() == wanted {
                return Ok(());
            }
            Err(SyntaxError {
                offset: at,
                message: format!(
                    "{name}(...) takes {wanted} argument(s), not {}: {example}",
                    args.len()
                ),
            })
        };
        let node = match name {
            "rows" => Node::Rows(args),
            "count" => {
                arity(1, "count(alice.read)")?;
                let mut args = args.into_iter();
                Node::Count(Box::new(args.next().expect("one argument")))
            }
            "contains" => {
                arity(2, "contains(alice.read, (1, 100))")?;
                let mut args = args.into_iter();
                let rows = args.next().expect("two arguments");
                let row = args.next().expect("two arguments");
                Node::Contains(Box::new(rows), Box::new(row))
            }
            _ => {
                return Err(SyntaxError {
                    offset: at,
                    message: format!(
                        "no function `{name}`{}; the functions are {}",
                        did_you_mean(name, &FUNCTIONS)
                            .map(|c| format!(" (did you mean `{c}`?)"))
                            .unwrap_or_default(),
                        FUNCTIONS.join(", ")
                    ),
                })
            }
        };
        self.node(at, node)
    }

    /// `session.step`, the argument of a step function.
    fn step_argument(&mut self, function: &str) -> Result<(usize, StepName), SyntaxError> {
        let (at, session) = self.name()?;
        let wrong = |offset: usize, found: String| SyntaxError {
            offset,
            message: format!(
                "{function}(...) takes a step, like {function}(john.commit); found {found}"
            ),
        };
        if self.eat_symbol(&["."]).is_none() {
            return Err(wrong(at, format!("`{session}`")));
        }
        let (_, step) = self.name()?;
        if let Some((offset, _)) = self.peek().filter(|_| self.peek_is(0, &Token::Symbol("."))) {
            return Err(wrong(offset, "a column after the step".into()));
        }
        Ok((at, StepName { session, step }))
    }

    /// Comma-separated expressions through `)`; none for `()`.
    fn arguments(&mut self) -> Result<Vec<Expr>, SyntaxError> {
        let mut args = Vec::new();
        if self.eat_symbol(&[")"]).is_some() {
            return Ok(args);
        }
        loop {
            args.push(self.or()?);
            if self.eat_symbol(&[","]).is_none() {
                self.expect_symbol(")")?;
                return Ok(args);
            }
        }
    }
}

fn too_deep(offset: usize) -> SyntaxError {
    SyntaxError {
        offset,
        message: format!(
            "the condition nests deeper than {MAX_DEPTH} levels (parentheses, calls, `not`, `-` \
             and chained operators each count)"
        ),
    }
}
