//! A Redis step's text as arguments, Redis's values as the timeline's, and its errors as
//! portable kinds. Pure.

use crate::timeline::{DbError, ErrorKind, ReplyValue};

/// Splits a command as redis-cli does: white space between arguments; `"…"` with `\"`, `\\`,
/// `\n` and `\t` escapes, or `'…'` with `\'`, for an argument with spaces or quotes (a Lua
/// script, say).
pub(super) fn split(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(args);
        };
        let mut arg = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("a {first} quote is never closed")),
                    Some(c) if c == first => break,
                    Some('\\') if first == '"' => match chars.next() {
                        Some('n') => arg.push('\n'),
                        Some('t') => arg.push('\t'),
                        Some(c) => arg.push(c),
                        None => return Err("the command ends in a lone backslash".into()),
                    },
                    Some('\\') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        arg.push('\'');
                    }
                    Some(c) => arg.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!(
                    "a closing {first} quote must be followed by a space"
                ));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                arg.push(c);
            }
        }
        args.push(arg);
    }
}

/// The arguments with `prefix` put before each key, where `keys` (what `COMMAND GETKEYS`
/// answered, in the order the arguments have them) says the keys are: each is matched to the
/// first argument after the previous key's that equals it.
pub(super) fn prefixed(args: &[String], keys: &[String], prefix: &str) -> Vec<String> {
    let mut out = args.to_vec();
    let mut from = 1;
    for key in keys {
        if let Some(offset) = args[from.min(args.len())..].iter().position(|a| a == key) {
            let index = from + offset;
            out[index] = format!("{prefix}{key}");
            from = index + 1;
        }
    }
    out
}

/// Redis's value as the timeline keeps it; a key's run prefix is taken off any text.
pub(super) fn value(reply: redis::Value, prefix: &str) -> ReplyValue {
    let text = |bytes: Vec<u8>| {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        unprefixed(text, prefix)
    };
    match reply {
        redis::Value::Nil => ReplyValue::Nil,
        redis::Value::Int(n) => ReplyValue::Int(n),
        redis::Value::Okay => ReplyValue::Text {
            text: "OK".into(),
            status: true,
        },
        redis::Value::SimpleString(s) => ReplyValue::Text {
            text: s,
            status: true,
        },
        redis::Value::BulkString(bytes) => ReplyValue::Text {
            text: text(bytes),
            status: false,
        },
        redis::Value::Array(items) | redis::Value::Set(items) => {
            ReplyValue::List(items.into_iter().map(|v| value(v, prefix)).collect())
        }
        redis::Value::Map(pairs) => ReplyValue::List(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [value(k, prefix), value(v, prefix)])
                .collect(),
        ),
        redis::Value::Double(d) => ReplyValue::Text {
            text: d.to_string(),
            status: false,
        },
        redis::Value::Boolean(b) => ReplyValue::Int(i64::from(b)),
        redis::Value::VerbatimString { text, .. } => ReplyValue::Text {
            text: unprefixed(text, prefix),
            status: false,
        },
        redis::Value::Attribute { data, .. } => value(*data, prefix),
        other => ReplyValue::Text {
            text: format!("{other:?}"),
            status: false,
        },
    }
}

fn unprefixed(text: String, prefix: &str) -> String {
    match text.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest.to_string(),
        _ => text,
    }
}

/// A server error (`ERR syntax error`, `WRONGTYPE …`, `NOSCRIPT …`) as a failed step. None is
/// a concurrency mechanism: Redis runs one command at a time and refuses nothing for another
/// client's sake, so each breaks the scenario.
pub(super) fn server_error(code: &str, detail: &str) -> DbError {
    let kind = match code {
        "ERR" if detail.contains("unknown command") || detail.contains("syntax") => {
            ErrorKind::Syntax
        }
        "ERR" if detail.contains("wrong number of arguments") => ErrorKind::Syntax,
        "WRONGTYPE" | "EXECABORT" => ErrorKind::DataException,
        "NOSCRIPT" => ErrorKind::UndefinedObject,
        "NOPERM" | "NOAUTH" => ErrorKind::Privilege,
        "READONLY" => ErrorKind::ReadOnly,
        "BUSY" | "OOM" | "LOADING" | "MASTERDOWN" => ErrorKind::Other,
        _ if detail.contains("not an integer") || detail.contains("out of range") => {
            ErrorKind::DataException
        }
        _ => ErrorKind::Other,
    };
    DbError {
        kind,
        code: code.to_string(),
        message: detail.trim().to_string(),
        constraint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        split(text).unwrap()
    }

    #[test]
    fn commands_split_as_redis_cli_splits_them() {
        assert_eq!(
            words("SET lock alice NX PX 50"),
            ["SET", "lock", "alice", "NX", "PX", "50"]
        );
        assert_eq!(words("  GET   lock "), ["GET", "lock"]);
        assert_eq!(
            words(r#"EVAL "return redis.call('GET', KEYS[1])" 1 lock"#),
            ["EVAL", "return redis.call('GET', KEYS[1])", "1", "lock"]
        );
        assert_eq!(
            words(r#"SET k "a \"b\" \\ c""#),
            ["SET", "k", r#"a "b" \ c"#]
        );
        assert_eq!(words(r"SET k 'it\'s'"), ["SET", "k", "it's"]);
        assert_eq!(words(r#"SET k """#), ["SET", "k", ""]);
        assert!(split(r#"SET k "open"#)
            .unwrap_err()
            .contains("never closed"));
        assert!(split(r#"SET k "a"b"#)
            .unwrap_err()
            .contains("followed by a space"));
    }

    #[test]
    fn only_keys_get_the_prefix() {
        let args = words("SET lock lock NX PX 50");
        assert_eq!(
            prefixed(&args, &["lock".into()], "p:"),
            ["SET", "p:lock", "lock", "NX", "PX", "50"]
        );
        let args = words("EVAL script 2 a b a");
        assert_eq!(
            prefixed(&args, &["a".into(), "b".into()], "p:"),
            ["EVAL", "script", "2", "p:a", "p:b", "a"]
        );
        let args = words("PING");
        assert_eq!(prefixed(&args, &[], "p:"), ["PING"]);
    }

    #[test]
    fn values_lose_the_run_prefix() {
        let keys = redis::Value::Array(vec![redis::Value::BulkString(b"p:lock".to_vec())]);
        assert_eq!(
            value(keys, "p:"),
            ReplyValue::List(vec![ReplyValue::Text {
                text: "lock".into(),
                status: false
            }])
        );
        assert_eq!(value(redis::Value::Okay, "p:").display(), "OK");
        assert_eq!(value(redis::Value::Nil, "p:").display(), "(nil)");
        assert_eq!(value(redis::Value::Int(-2), "p:").display(), "(integer) -2");
    }

    #[test]
    fn no_server_error_is_a_mechanism() {
        for (code, detail) in [
            ("ERR", "unknown command 'SETT'"),
            (
                "WRONGTYPE",
                "Operation against a key holding the wrong kind of value",
            ),
            ("NOSCRIPT", "No matching script"),
            ("ERR", "value is not an integer or out of range"),
        ] {
            assert!(
                !server_error(code, detail).kind.is_mechanism(),
                "{code} {detail}"
            );
        }
        assert_eq!(server_error("ERR", "syntax error").kind, ErrorKind::Syntax);
    }
}
