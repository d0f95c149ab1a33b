//! Values during evaluation, how they compare, and whole results compared as multisets.

use std::cmp::Ordering;
use std::fmt;

use crate::scenario::did_you_mean;

/// A value during evaluation. `Unknown` stands for a value that was never read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Text(String),
    Bool(bool),
    Null,
    Unknown,
    /// A row: `(1, 100)`.
    Row(Vec<Value>),
    /// A whole result.
    Rows(Rows),
}

/// A whole result: what a step or a final query returned, or a `rows(...)` literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Where it came from, for messages: `alice.read`, `final.balances`; `None` for a literal.
    pub source: Option<String>,
    /// Its columns; empty for a literal.
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Value {
    /// Turns a database's text rendering of a value into a value: numbers become numbers,
    /// `t`/`true` and `f`/`false` booleans, SQL NULL `Null`.
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

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }
}

impl Rows {
    /// A database's result: its text values through [`Value::from_db`].
    pub fn from_db(source: String, columns: &[String], rows: &[Vec<Option<String>>]) -> Rows {
        Rows {
            source: Some(source),
            columns: columns.to_vec(),
            rows: rows
                .iter()
                .map(|row| row.iter().map(|v| Value::from_db(v.as_deref())).collect())
                .collect(),
        }
    }

    /// Values a row: the columns' count, or for a literal its first row's; `None` for `rows()`.
    pub fn width(&self) -> Option<usize> {
        match (self.source.is_some(), self.rows.first()) {
            (true, _) => Some(self.columns.len()),
            (false, first) => first.map(Vec::len),
        }
    }

    /// The value of `column` in the first row: `Ok(None)` when there is no row, `Err` naming
    /// the columns there are when there is no such column.
    pub fn first(&self, column: &str) -> Result<Option<&Value>, String> {
        let index = self.column_index(column)?;
        Ok(self.rows.first().map(|row| &row[index]))
    }

    fn column_index(&self, column: &str) -> Result<usize, String> {
        let columns: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        columns
            .iter()
            .position(|c| *c == column)
            .ok_or_else(|| no_column(column, &columns, self.describe().as_str()))
    }

    /// `alice.read`, or the literal as written back: `rows((1, 100))`.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(source) => source.clone(),
            None => format!("rows({})", self.to_string().replace("no rows", "")),
        }
    }

    /// Whether both hold the same rows, as many times each (the order does not count).
    pub fn same(&self, other: &Rows) -> Result<bool, String> {
        self.same_width(other.width(), || other.width_phrase())?;
        if self.rows.len() != other.rows.len() {
            return Ok(false);
        }
        let mut unmatched: Vec<&Vec<Value>> = other.rows.iter().collect();
        for row in &self.rows {
            match unmatched.iter().position(|o| same_row(row, o)) {
                Some(index) => {
                    unmatched.swap_remove(index);
                }
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Whether one of the rows is `row`.
    pub fn contains(&self, row: &[Value]) -> Result<bool, String> {
        self.same_width(Some(row.len()), || {
            format!("{} has {} value(s)", Value::Row(row.to_vec()), row.len())
        })?;
        Ok(self.rows.iter().any(|r| same_row(r, row)))
    }

    fn same_width(
        &self,
        other: Option<usize>,
        other_phrase: impl Fn() -> String,
    ) -> Result<(), String> {
        match (self.width(), other) {
            (Some(mine), Some(theirs)) if mine != theirs => Err(format!(
                "{} but {}: rows compare only with rows of as many values",
                self.width_phrase(),
                other_phrase()
            )),
            _ => Ok(()),
        }
    }

    /// `alice.read has 2 columns (id, balance)`, `rows((1, 100)) has 2 values a row`.
    fn width_phrase(&self) -> String {
        match &self.source {
            Some(source) => format!(
                "{source} has {} column(s) ({})",
                self.columns.len(),
                self.columns.join(", ")
            ),
            None => format!(
                "{} has {} value(s) a row",
                self.describe(),
                self.width().unwrap_or(0)
            ),
        }
    }
}

/// `no column fre in john.look (columns: id, free); did you mean free?`
pub fn no_column(column: &str, columns: &[&str], source: &str) -> String {
    let hint = did_you_mean(column, columns)
        .map(|closest| format!("; did you mean {closest}?"))
        .unwrap_or_default();
    format!(
        "no column {column} in {source} (columns: {}){hint}",
        columns.join(", ")
    )
}

/// How two values compare: `None` when they cannot be ordered (NULL against a value, text
/// against a number). A boolean against a number is 1 or 0, as SQLite stores booleans; text
/// against a number or a boolean is read as a database value first, so `'100'` equals 100 and
/// `'t'` equals `true`.
pub fn compare(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Num(a), Value::Num(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Bool(b), Value::Num(n)) => f64::from(u8::from(*b)).partial_cmp(n),
        (Value::Num(n), Value::Bool(b)) => n.partial_cmp(&f64::from(u8::from(*b))),
        (Value::Text(text), other @ (Value::Num(_) | Value::Bool(_))) => {
            compare(&read_as_db(text)?, other)
        }
        (other @ (Value::Num(_) | Value::Bool(_)), Value::Text(text)) => {
            compare(other, &read_as_db(text)?)
        }
        _ => None,
    }
}

/// Text read as a database value, when that makes it a number or a boolean.
fn read_as_db(text: &str) -> Option<Value> {
    match Value::from_db(Some(text)) {
        Value::Text(_) => None,
        value => Some(value),
    }
}

fn same_row(left: &[Value], right: &[Value]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .all(|(a, b)| compare(a, b) == Some(Ordering::Equal))
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
            Value::Row(values) => {
                let values: Vec<String> = values.iter().map(Value::to_string).collect();
                write!(f, "({})", values.join(", "))
            }
            Value::Rows(rows) => rows.fmt(f),
        }
    }
}

/// `(1, 100), (2, 200)`, or `no rows`.
impl fmt::Display for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rows.is_empty() {
            return f.write_str("no rows");
        }
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| Value::Row(row.clone()).to_string())
            .collect();
        f.write_str(&rows.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(columns: &[&str], rows: &[&[Option<&str>]]) -> Rows {
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let rows: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|row| row.iter().map(|v| v.map(str::to_string)).collect())
            .collect();
        Rows::from_db("alice.read".into(), &columns, &rows)
    }

    fn literal(rows: Vec<Vec<Value>>) -> Rows {
        Rows {
            source: None,
            columns: vec![],
            rows,
        }
    }

    #[test]
    fn whole_results_compare_as_multisets() {
        let read = db(
            &["id", "balance"],
            &[&[Some("2"), Some("200")], &[Some("1"), Some("100.00")]],
        );
        let n = Value::Num;
        let expected = literal(vec![vec![n(1.0), n(100.0)], vec![n(2.0), n(200.0)]]);
        assert_eq!(read.same(&expected), Ok(true));
        let twice = literal(vec![vec![n(1.0), n(100.0)], vec![n(1.0), n(100.0)]]);
        assert_eq!(read.same(&twice), Ok(false));
        assert_eq!(read.same(&literal(vec![])), Ok(false));
        assert_eq!(db(&["id"], &[]).same(&literal(vec![])), Ok(true));
    }

    #[test]
    fn nulls_match_nulls_and_text_matches_as_the_database_writes_it() {
        let read = db(&["id", "done"], &[&[None, Some("t")]]);
        let row = [Value::Null, Value::Bool(true)];
        assert_eq!(read.contains(&row), Ok(true));
        let row = [Value::Null, Value::Text("t".into())];
        assert_eq!(read.contains(&row), Ok(true));
        let row = [Value::Num(0.0), Value::Bool(true)];
        assert_eq!(read.contains(&row), Ok(false));
        let sqlite = db(&["id", "done"], &[&[None, Some("1")]]);
        assert_eq!(sqlite.contains(&[Value::Null, Value::Bool(true)]), Ok(true));
        assert_eq!(
            sqlite.contains(&[Value::Null, Value::Bool(false)]),
            Ok(false)
        );
        assert_eq!(
            compare(&Value::Text("abc".into()), &Value::Num(1.0)),
            None,
            "text that is no number is no number"
        );
    }

    #[test]
    fn rows_of_other_widths_are_an_error_naming_both() {
        let read = db(&["id", "balance"], &[&[Some("1"), Some("100")]]);
        let error = literal(vec![vec![Value::Num(1.0)]])
            .same(&read)
            .unwrap_err();
        assert_eq!(
            error,
            "rows((1)) has 1 value(s) a row but alice.read has 2 column(s) (id, balance): \
             rows compare only with rows of as many values"
        );
        let error = read.contains(&[Value::Num(1.0)]).unwrap_err();
        assert!(
            error.starts_with("alice.read has 2 column(s) (id, balance) but (1) has 1 value(s)"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_column_names_the_columns_there_are() {
        let read = db(&["id", "free"], &[]);
        assert_eq!(
            read.first("fre").unwrap_err(),
            "no column fre in alice.read (columns: id, free); did you mean free?"
        );
        assert_eq!(read.first("free"), Ok(None));
    }
}
