//! Text to tokens, with their byte offsets.

use std::fmt;

use super::SyntaxError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
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

const SYMBOLS: [&str; 14] = [
    "<=", ">=", "!=", "<>", "==", "=", "<", ">", "+", "-", "(", ")", ".", ",",
];

/// The tokens of `text`, which starts `base` bytes into a larger text.
pub(super) fn tokenize(text: &str, base: usize) -> Result<Vec<(usize, Token)>, SyntaxError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let error = |offset: usize, message: String| SyntaxError {
        offset: base + offset,
        message,
    };
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
            let number = text[start..i]
                .parse()
                .map_err(|_| error(start, format!("`{}` is not a number", &text[start..i])))?;
            tokens.push((base + start, Token::Num(number)));
        } else if c == '\'' {
            let start = i;
            let Some(len) = text[i + 1..].find('\'') else {
                return Err(error(
                    start,
                    "unterminated text: a closing ' is missing".into(),
                ));
            };
            tokens.push((
                base + start,
                Token::Text(text[i + 1..i + 1 + len].to_string()),
            ));
            i += len + 2;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-')
            {
                i += 1;
            }
            tokens.push((base + start, Token::Word(text[start..i].to_string())));
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            tokens.push((base + i, Token::Symbol(symbol)));
            i += symbol.len();
        } else {
            let c = text[i..].chars().next().unwrap_or(c);
            return Err(error(i, format!("unexpected character `{c}`")));
        }
    }
    Ok(tokens)
}
