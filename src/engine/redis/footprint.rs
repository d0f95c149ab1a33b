//! What a run leaves on a Redis, and how it is cleaned up: every key carries the prefix
//! `anomalies:<process>:<run>:`; every connection of the process is named `anomalies-<process>`,
//! which is how a later process tells a live process's keys from a killed one's.

use std::collections::{BTreeSet, HashSet};

use redis::aio::MultiplexedConnection;

use super::redis_error;
use crate::engine::EngineError;

/// Keys the tool made start with this, and nothing else does.
const KEY_ROOT: &str = "anomalies:";
/// Client names the tool gives its connections.
const NAME_ROOT: &str = "anomalies-";

/// This process's tag: its pid and a random part, so that a pid used again (or the same pid on
/// another machine sharing the Redis) is another tag.
pub(super) fn process_tag() -> String {
    let mut random = [0u8; 4];
    // A tag without randomness is still unique per live process on one machine.
    let _ = getrandom::fill(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", std::process::id())
}

/// `anomalies:<tag>:`: every key of this process's runs.
pub(super) fn process_prefix(tag: &str) -> String {
    format!("{KEY_ROOT}{tag}:")
}

/// `anomalies:<tag>:<run>:`: every key of one run.
pub(super) fn prefix(tag: &str, run: u32) -> String {
    format!("{}{run}:", process_prefix(tag))
}

/// Names the connection after the process.
pub(super) async fn name(
    connection: &mut MultiplexedConnection,
    tag: &str,
    target: &str,
) -> Result<(), EngineError> {
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(format!("{NAME_ROOT}{tag}"))
        .query_async::<()>(connection)
        .await
        .map_err(|e| EngineError::RedisConnect {
            target: target.to_string(),
            reason: format!("CLIENT SETNAME failed: {e}"),
        })
}

/// `7.0.15`, from `INFO server`.
pub(super) async fn version(connection: &mut MultiplexedConnection) -> Result<String, EngineError> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .map_err(redis_error)?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "(version unknown)".to_string()))
}

/// Deletes the keys of processes that no connection is named after any more: what killed runs
/// left. Only keys of the tool's own shape are looked at.
pub(super) async fn sweep(connection: &mut MultiplexedConnection) -> Result<(), EngineError> {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(connection)
        .await
        .map_err(redis_error)?;
    let live: HashSet<&str> = clients
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("name="))
        })
        .filter_map(|name| name.strip_prefix(NAME_ROOT))
        .collect();
    let keys = scan(connection, &format!("{KEY_ROOT}*")).await?;
    let stale: BTreeSet<String> = keys
        .into_iter()
        .filter(|key| tag_of(key).is_some_and(|tag| !live.contains(tag)))
        .collect();
    delete(connection, &stale).await
}

/// The process tag of a key of the tool's shape, `anomalies:<pid>-<hex>:<run>:…`.
fn tag_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_ROOT)?;
    let (tag, rest) = rest.split_once(':')?;
    let (run, _) = rest.split_once(':')?;
    let (pid, hex) = tag.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let shaped =
        digits(pid) && hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && digits(run);
    shaped.then_some(tag)
}

/// Deletes every key that starts with `prefix`.
pub(super) async fn delete_matching(
    connection: &mut MultiplexedConnection,
    prefix: &str,
) -> Result<(), EngineError> {
    let keys = scan(connection, &format!("{prefix}*")).await?;
    delete(connection, &keys.into_iter().collect()).await
}

pub(super) async fn delete(
    connection: &mut MultiplexedConnection,
    keys: &BTreeSet<String>,
) -> Result<(), EngineError> {
    if keys.is_empty() {
        return Ok(());
    }
    redis::cmd("DEL")
        .arg(keys.iter().collect::<Vec<_>>())
        .query_async::<i64>(connection)
        .await
        .map_err(redis_error)?;
    Ok(())
}

async fn scan(
    connection: &mut MultiplexedConnection,
    pattern: &str,
) -> Result<Vec<String>, EngineError> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await
            .map_err(redis_error)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// A Redis URL without its password: `redis://cache:6379/0`, `unix:///run/redis.sock`.
pub(super) fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
            let path = parsed.path();
            match parsed.scheme() {
                "unix" | "redis+unix" => format!("{}://{path}", parsed.scheme()),
                scheme => format!("{scheme}://{host}{port}{path}"),
            }
        }
        Err(_) => "the --redis-url given (it does not parse as a URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_of_the_tools_shape_have_a_tag() {
        assert_eq!(
            tag_of("anomalies:123-0a1b2c3d:4:bill-lock"),
            Some("123-0a1b2c3d")
        );
        assert_eq!(tag_of("anomalies:123-0a1b2c3d:x:bill-lock"), None);
        assert_eq!(tag_of("anomalies:me:4:bill-lock"), None);
        assert_eq!(tag_of("anomalies-config"), None);
        assert_eq!(tag_of("app:lock"), None);
        let tag = process_tag();
        assert_eq!(
            tag_of(&format!("{}key", prefix(&tag, 7))),
            Some(tag.as_str())
        );
    }

    #[test]
    fn urls_are_described_without_passwords() {
        assert_eq!(
            describe_url("redis://user:secret@cache:6380/2"),
            "redis://cache:6380/2"
        );
        assert_eq!(
            describe_url("redis+unix:///run/redis.sock?pass=secret"),
            "redis+unix:///run/redis.sock"
        );
        assert!(!describe_url("redis://:secret@[bad").contains("secret"));
    }
}
