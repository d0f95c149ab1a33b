//! Text with holes: witness sentences (`{final.total}`) and step SQL (`${read.balance}`).

use super::expr::{self, Expr, Facts, Unfit};
use super::Place;

/// A witness sentence: text with `{...}` holes, each a value of the condition language
/// (`{final.total}`, `{alice.read}`, `{count(alice.read)}`, `{error(john.commit)}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part<Expr>>,
}

/// Step SQL with `${step.column}` holes, filled from values the same session read earlier.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlTemplate {
    pub parts: Vec<Part<SqlHole>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part<H> {
    Text(String),
    Hole(H),
}

/// `${read.balance}`: the `balance` column of what step `read` (index in its session) returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlHole {
    pub step: usize,
    pub step_name: String,
    pub column: String,
    /// Byte offset of its `${` in the SQL text.
    pub offset: usize,
    /// Where it is written in the scenario file, once validation has placed it.
    pub at: Place,
}

/// A hole that does not parse, at a byte offset of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoleError {
    pub offset: usize,
    pub message: String,
}

impl Template {
    /// Parses a witness; the holes' offsets count from the start of `text`.
    pub fn parse(text: &str) -> Result<Template, HoleError> {
        let parts = split(text, "{", |offset, inner| {
            let expr = expr::parse_at(inner, offset).map_err(|e| HoleError {
                offset: e.offset,
                message: e.message,
            })?;
            expr::check_value(&expr).map_err(|e| HoleError {
                offset: e.offset,
                message: e.message,
            })?;
            Ok(expr)
        })?;
        Ok(Template { parts })
    }

    pub fn holes(&self) -> impl Iterator<Item = &Expr> {
        holes(&self.parts)
    }

    pub fn holes_mut(&mut self) -> impl Iterator<Item = &mut Expr> {
        self.parts.iter_mut().filter_map(|part| match part {
            Part::Hole(hole) => Some(hole),
            Part::Text(_) => None,
        })
    }

    /// Fills the holes with what the run gave; `Err` when a hole names something the run
    /// cannot give (see [`Expr::eval`]).
    /// The byte offset of every part of every hole, for placing an [`Unfit`] in a file.
    pub fn offsets(&self) -> Vec<usize> {
        holes(&self.parts).flat_map(Expr::offsets).collect()
    }

    pub fn fill(&self, facts: &dyn Facts) -> Result<String, Unfit> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Hole(hole) => out.push_str(&hole.eval(facts)?.to_string()),
            }
        }
        Ok(out)
    }
}

impl SqlTemplate {
    /// Parses step SQL; `resolve` turns a step name into its index, or explains why it can't.
    pub fn parse(
        text: &str,
        resolve: impl Fn(&str) -> Result<usize, String>,
    ) -> Result<SqlTemplate, HoleError> {
        let parts = split(text, "${", |offset, inner| {
            let Some((step_name, column)) = inner.trim().split_once('.') else {
                return Err(HoleError {
                    offset,
                    message: format!(
                        "`${{{inner}}}` must name a step and a column, like ${{read.balance}}"
                    ),
                });
            };
            let step = resolve(step_name).map_err(|message| HoleError { offset, message })?;
            Ok(SqlHole {
                step,
                step_name: step_name.to_string(),
                column: column.to_string(),
                offset: offset - 2,
                at: Place::default(),
            })
        })?;
        Ok(SqlTemplate { parts })
    }

    pub fn holes(&self) -> impl Iterator<Item = &SqlHole> {
        holes(&self.parts)
    }

    /// Sets where each hole is written: `place` maps a byte offset of the SQL text to a place.
    pub fn place_holes(&mut self, place: impl Fn(usize) -> Place) {
        for part in &mut self.parts {
            if let Part::Hole(hole) = part {
                hole.at = place(hole.offset);
            }
        }
    }

    pub fn render(&self, value: impl FnMut(&SqlHole) -> String) -> String {
        fill(&self.parts, value)
    }
}

fn holes<H>(parts: &[Part<H>]) -> impl Iterator<Item = &H> {
    parts.iter().filter_map(|part| match part {
        Part::Hole(hole) => Some(hole),
        Part::Text(_) => None,
    })
}

fn fill<H>(parts: &[Part<H>], mut value: impl FnMut(&H) -> String) -> String {
    parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.clone(),
            Part::Hole(hole) => value(hole),
        })
        .collect()
}

fn split<H>(
    text: &str,
    open: &str,
    mut hole: impl FnMut(usize, &str) -> Result<H, HoleError>,
) -> Result<Vec<Part<H>>, HoleError> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find(open) {
        let start = rest + found;
        let inner_start = start + open.len();
        let Some(len) = text[inner_start..].find('}') else {
            return Err(HoleError {
                offset: start,
                message: format!("`{open}` is not closed with `}}`"),
            });
        };
        if start > rest {
            parts.push(Part::Text(text[rest..start].to_string()));
        }
        parts.push(Part::Hole(hole(
            inner_start,
            &text[inner_start..inner_start + len],
        )?));
        rest = inner_start + len + 1;
    }
    if rest < text.len() {
        parts.push(Part::Text(text[rest..].to_string()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_holes_are_values_at_their_offsets() {
        let template =
            Template::parse("together {final.total}, below {alice.check.floor}").unwrap();
        let holes: Vec<String> = template
            .holes()
            .map(|hole| match &hole.node {
                crate::scenario::expr::Node::Ref(r) => format!("{r}@{}", hole.at),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(holes, ["final.total@10", "alice.check.floor@31"]);
        assert!(matches!(&template.parts[0], Part::Text(t) if t == "together "));
    }

    #[test]
    fn sql_fills_holes_from_the_same_session() {
        let sql = SqlTemplate::parse("UPDATE a SET b = ${read.balance} - 50", |name| {
            (name == "read").then_some(1).ok_or("no".into())
        })
        .unwrap();
        assert_eq!(sql.holes().next().unwrap().step, 1);
        assert_eq!(sql.render(|_| "200".into()), "UPDATE a SET b = 200 - 50");
    }

    #[test]
    fn bad_holes_have_offsets() {
        let error = Template::parse("x {final.total").unwrap_err();
        assert_eq!(error.offset, 2);
        let error = Template::parse("x {final.total} {alice.read.}").unwrap_err();
        assert_eq!(error.offset, 28, "{error:?}");
        let error = Template::parse("{(1, 2)}").unwrap_err();
        assert!(error.message.contains("a tuple stands only"), "{error:?}");
        let error = SqlTemplate::parse("SET b = ${oops}", |_| Ok(0)).unwrap_err();
        assert_eq!(error.offset, 10);
        assert!(error.message.contains("like ${read.balance}"));
    }
}
