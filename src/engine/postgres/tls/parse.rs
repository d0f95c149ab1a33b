//! Takes the TLS options out of a connection string, in either of libpq's forms, and gives
//! back the rest untouched for tokio-postgres to parse.

/// The options this module reads; tokio-postgres never sees them.
pub(super) const KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// The string without its TLS options, and those options (key, decoded value) in order.
pub(super) fn split(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        split_url(text)
    } else {
        Ok(split_key_values(text))
    }
}

/// `postgresql://…?sslmode=verify-full&connect_timeout=2` → `postgresql://…?connect_timeout=2`.
fn split_url(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for parameter in query.split('&') {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if KEYS.contains(&key) {
            taken.push((key.to_string(), percent_decode(value, key)?));
        } else {
            kept.push(parameter);
        }
    }
    if kept.is_empty() {
        return Ok((base.to_string(), taken));
    }
    Ok((format!("{base}?{}", kept.join("&")), taken))
}

/// `%2Fetc%2Fca.pem` → `/etc/ca.pem`.
fn percent_decode(value: &str, key: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'%' {
            decoded.push(bytes[index]);
            index += 1;
            continue;
        }
        let byte = value
            .get(index + 1..index + 3)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .ok_or_else(|| format!("invalid percent-encoding in option `{key}`"))?;
        decoded.push(byte);
        index += 3;
    }
    String::from_utf8(decoded).map_err(|_| format!("option `{key}` is not UTF-8"))
}

/// `host=db sslmode='verify-full' port=5432` → `host=db port=5432`. What cannot be read as
/// pairs is kept as it is, for tokio-postgres to report.
fn split_key_values(text: &str) -> (String, Vec<(String, String)>) {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut position = 0;
    while let Some(pair) = next_pair(text, position) {
        if KEYS.contains(&pair.key) {
            taken.push((pair.key.to_string(), pair.value));
        } else {
            kept.push(&text[pair.start..pair.end]);
        }
        position = pair.end;
    }
    let unread = text[position..].trim();
    if !unread.is_empty() {
        kept.push(unread);
    }
    (kept.join(" "), taken)
}

struct Pair<'a> {
    start: usize,
    end: usize,
    key: &'a str,
    value: String,
}

/// The `key = value` pair from `from` on, with libpq's quoting (`'…'`, `\'`, `\\`).
fn next_pair(text: &str, from: usize) -> Option<Pair<'_>> {
    let start = skip_spaces(text, from);
    let key_end = text[start..]
        .find(|c: char| c == '=' || c.is_whitespace())
        .map_or(text.len(), |offset| start + offset);
    let key = &text[start..key_end];
    let equals = skip_spaces(text, key_end);
    if key.is_empty() || !text[equals..].starts_with('=') {
        return None;
    }
    let value_start = skip_spaces(text, equals + 1);
    let (value, end) = read_value(text, value_start)?;
    Some(Pair {
        start,
        end,
        key,
        value,
    })
}

fn skip_spaces(text: &str, from: usize) -> usize {
    text[from..]
        .find(|c: char| !c.is_whitespace())
        .map_or(text.len(), |offset| from + offset)
}

/// A value and where it ends: quoted up to its closing quote, or bare up to white space;
/// `None` for an unclosed quote.
fn read_value(text: &str, from: usize) -> Option<(String, usize)> {
    let quoted = text[from..].starts_with('\'');
    let begin = if quoted { from + 1 } else { from };
    let mut value = String::new();
    let mut chars = text[begin..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => value.extend(chars.next().map(|(_, escaped)| escaped)),
            '\'' if quoted => return Some((value, begin + offset + 1)),
            c if c.is_whitespace() && !quoted => return Some((value, begin + offset)),
            c => value.push(c),
        }
    }
    (!quoted).then_some((value, text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, rest: &str, taken: &[(&str, &str)]) {
        let (kept, options) = split(text).unwrap();
        assert_eq!(kept, rest);
        let options: Vec<(&str, &str)> = options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(options, taken);
    }

    #[test]
    fn key_value_strings_lose_only_their_tls_options() {
        check(
            "host=db sslmode=verify-full port=5432",
            "host=db port=5432",
            &[("sslmode", "verify-full")],
        );
        check(
            "sslrootcert = '/my certs/ca\\'s.pem' password='a b' sslkey=/k",
            "password='a b'",
            &[("sslrootcert", "/my certs/ca's.pem"), ("sslkey", "/k")],
        );
        check("host=db", "host=db", &[]);
    }

    #[test]
    fn what_cannot_be_read_is_left_for_tokio_postgres() {
        check("host=db sslmode", "host=db sslmode", &[]);
        check("host='db sslmode=require", "host='db sslmode=require", &[]);
    }

    #[test]
    fn urls_lose_only_their_tls_parameters_decoded() {
        check(
            "postgresql://u:p@db/x?sslmode=require&connect_timeout=2&sslrootcert=%2Fetc%2Fca.pem",
            "postgresql://u:p@db/x?connect_timeout=2",
            &[("sslmode", "require"), ("sslrootcert", "/etc/ca.pem")],
        );
        check(
            "postgres://db/x?sslcert=/c",
            "postgres://db/x",
            &[("sslcert", "/c")],
        );
        check("postgres://db/x", "postgres://db/x", &[]);
    }

    #[test]
    fn a_bad_percent_encoding_names_its_option() {
        assert_eq!(
            split("postgres://db?sslkey=%zz").unwrap_err(),
            "invalid percent-encoding in option `sslkey`"
        );
    }
}
