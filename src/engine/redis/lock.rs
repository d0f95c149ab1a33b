//! A per-key lock on Redis for `anomalies bench`'s `redis-lock` strategy, as the playbook's
//! lock client takes it: `SET key me NX PX ttl` to acquire, a compare-and-delete script to
//! release only one's own lock. Keys carry the run's prefix, like a run's.

use redis::aio::MultiplexedConnection;

use super::redis_error;
use crate::engine::EngineError;

/// Deletes the key only if it still holds our value.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// One worker's lock client: its own connection, and the value that says the lock is its own.
pub struct RedisLock {
    pub(super) connection: MultiplexedConnection,
    pub(super) prefix: String,
    pub(super) me: String,
}

impl RedisLock {
    /// `SET <prefix>lock:<name> <me> NX PX <ttl_ms>`: whether this worker now holds the lock.
    pub async fn acquire(&mut self, name: &str, ttl_ms: u64) -> Result<bool, EngineError> {
        let answer: Option<String> = redis::cmd("SET")
            .arg(format!("{}lock:{name}", self.prefix))
            .arg(&self.me)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut self.connection)
            .await
            .map_err(redis_error)?;
        Ok(answer.is_some())
    }

    /// Releases the lock if it is still this worker's: whether it was (a lease that ran out
    /// and was taken by another worker is not).
    pub async fn release(&mut self, name: &str) -> Result<bool, EngineError> {
        let deleted: i64 = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(format!("{}lock:{name}", self.prefix))
            .arg(&self.me)
            .query_async(&mut self.connection)
            .await
            .map_err(redis_error)?;
        Ok(deleted == 1)
    }
}
