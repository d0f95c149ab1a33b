//! Text to [`Expr`]: a tokenizer and a recursive-descent parser for the grammar in `mod.rs`.

use std::fmt;

use super::{Expr, Op, Ref, SyntaxError};

/// Parses an expression.
pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        end: text.len(),
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

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Text(String),
    Word(String),
    Symbol(&'static str),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "number {n}"),
            Token::Text(text) => write!(f, "text '{text}'"),
            Token::Word(word) => write!(f, "`{word}`"),
            Token::Symbol(symbol) => write!(f, "`{symbol}`"),
        }
    }
}

const SYMBOLS: [&str; 13] = [
    "<=", ">=", "!=", "<>", "==", "=", "<", ">", "+", "-", "(", ")", ".",
];

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            let number = text[start..i].parse().map_err(|_| SyntaxError {
                offset: start,
                message: format!("`{}` is not a number", &text[start..i]),
            })?;
            tokens.push((start, Token::Num(number)));
        } else if c == '\'' {
            let start = i;
            let Some(len) = text[i + 1..].find('\'') else {
                return Err(SyntaxError {
                    offset: start,
                    message: "unterminated text: a closing ' is missing".into(),
                });
            };
            tokens.push((start, Token::Text(text[i + 1..i + 1 + len].to_string())));
            i += len + 2;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
            {
                i += 1;
            }
            tokens.push((start, Token::Word(text[start..i].to_string())));
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            tokens.push((i, Token::Symbol(symbol)));
            i += symbol.len();
        } else {
            return Err(SyntaxError {
                offset: i,
                message: format!("unexpected character `{c}`"),
            });
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    position: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.position).map(|(o, t)| (*o, t))
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

    fn name(&mut self) -> Result<String, SyntaxError> {
        match self.next()? {
            (_, Token::Word(word)) => Ok(word),
            (offset, token) => Err(SyntaxError {
                offset,
                message: format!("expected a name, found {token}"),
            }),
        }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Binary(Box::new(left), Op::Or, Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::Binary(Box::new(left), Op::And, Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, SyntaxError> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, SyntaxError> {
        let left = self.sum()?;
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
        Ok(Expr::Binary(Box::new(left), op, Box::new(self.sum()?)))
    }

    fn sum(&mut self) -> Result<Expr, SyntaxError> {
        let mut left = self.atom()?;
        while let Some(symbol) = self.eat_symbol(&["+", "-"]) {
            let op = if symbol == "+" { Op::Add } else { Op::Sub };
            left = Expr::Binary(Box::new(left), op, Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Expr, SyntaxError> {
        let (offset, token) = self.next()?;
        match token {
            Token::Num(n) => Ok(Expr::Num(n)),
            Token::Text(text) => Ok(Expr::Text(text)),
            Token::Symbol("(") => {
                let inner = self.or()?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            Token::Symbol("-") => Ok(Expr::Neg(Box::new(self.atom()?))),
            Token::Word(word) if word == "committed" => {
                self.expect_symbol("(")?;
                let session = self.name()?;
                self.expect_symbol(")")?;
                Ok(Expr::Committed(session))
            }
            Token::Word(word) if word == "final" => {
                self.expect_symbol(".")?;
                let column = self.name()?;
                Ok(Expr::Ref(Ref::Final { column }))
            }
            Token::Word(session) => {
                self.expect_symbol(".")?;
                let step = self.name()?;
                self.expect_symbol(".").map_err(|e| SyntaxError {
                    message: format!(
                        "{}: a value is named session.step.column, like alice.read.balance",
                        e.message
                    ),
                    ..e
                })?;
                let column = self.name()?;
                Ok(Expr::Ref(Ref::Read {
                    session,
                    step,
                    column,
                }))
            }
            token => Err(SyntaxError {
                offset,
                message: format!("expected a value, found {token}"),
            }),
        }
    }
}
