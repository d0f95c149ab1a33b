//! Version constraints on expectations: `[expect."postgres >= 16"]`.

use std::cmp::Ordering;
use std::fmt;

/// A constraint on an engine's version, such as `>= 16` or `< 15.4`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionReq {
    pub op: Comparison,
    pub version: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl VersionReq {
    /// Parses `>= 16`, `<15.4`, `= 3.46.0`.
    pub fn parse(text: &str) -> Result<VersionReq, String> {
        let text = text.trim();
        let (op, rest) = [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
            ("=", Comparison::Eq),
        ]
        .into_iter()
        .find_map(|(symbol, op)| text.strip_prefix(symbol).map(|rest| (op, rest)))
        .ok_or_else(|| format!("`{text}` must start with one of >= <= > < ="))?;
        let version = parse_version(rest.trim())
            .ok_or_else(|| format!("`{}` is not a version like 16 or 15.4", rest.trim()))?;
        Ok(VersionReq { op, version })
    }

    /// Whether an engine's version (`15.20`, `3.46.0`) satisfies the constraint. Components
    /// left out count as 0, so `>= 16` holds for 16.0 and 16.4.
    pub fn matches(&self, version: &str) -> bool {
        let Some(actual) = parse_version(version) else {
            return false;
        };
        let ordering = compare(&actual, &self.version);
        match self.op {
            Comparison::Lt => ordering == Ordering::Less,
            Comparison::Le => ordering != Ordering::Greater,
            Comparison::Eq => ordering == Ordering::Equal,
            Comparison::Ge => ordering != Ordering::Less,
            Comparison::Gt => ordering == Ordering::Greater,
        }
    }
}

impl fmt::Display for VersionReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Eq => "=",
            Comparison::Ge => ">=",
            Comparison::Gt => ">",
        };
        let version: Vec<String> = self.version.iter().map(u32::to_string).collect();
        write!(f, "{op} {}", version.join("."))
    }
}

/// `15.20` → [15, 20]; `16beta1` → [16]: the leading digits of each dotted part.
fn parse_version(text: &str) -> Option<Vec<u32>> {
    let mut parts = Vec::new();
    for part in text.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            break;
        }
        parts.push(digits.parse().ok()?);
        if digits.len() < part.len() {
            break;
        }
    }
    (!parts.is_empty()).then_some(parts)
}

fn compare(a: &[u32], b: &[u32]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(req: &str, version: &str, expected: bool) {
        let parsed = VersionReq::parse(req).unwrap();
        assert_eq!(parsed.matches(version), expected, "{req} vs {version}");
    }

    #[test]
    fn constraints_compare_numerically() {
        check(">= 16", "16.4", true);
        check(">= 16", "15.20", false);
        check("< 15.4", "15.20", false);
        check("< 15.20", "15.4", true);
        check("= 15", "15.0", true);
        check("> 11.5", "11.6", true);
        check("<= 3.46.0", "3.46.0", true);
        check(">= 17", "17beta1", true);
    }

    #[test]
    fn malformed_constraints_say_why() {
        assert_eq!(
            VersionReq::parse("~16").unwrap_err(),
            "`~16` must start with one of >= <= > < ="
        );
        assert_eq!(
            VersionReq::parse(">= x").unwrap_err(),
            "`x` is not a version like 16 or 15.4"
        );
    }
}
