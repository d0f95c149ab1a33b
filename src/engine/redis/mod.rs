//! Redis, the lock provider beside the database: a connection of its own for each session,
//! commands sent as the scenario writes them, and `until` steps that wait, asking Redis, for a
//! key to go. A run's keys all carry a prefix of the run's own (`anomalies:<process>:<run>:`),
//! put before each key argument where Redis itself says the keys are (`COMMAND GETKEYS`), and
//! taken off again in what the timeline shows; the run deletes exactly those keys.
//!
//! With no `--redis-url` the tool starts a throwaway `redis-server` (`server.rs`). On a user's
//! Redis every connection of this process is named `anomalies-<process>` (`CLIENT SETNAME`), so
//! the keys of a process that was killed, whose name no client carries any more, are found and
//! deleted by the next process that connects (`footprint.rs`).

mod command;
mod footprint;
mod lock;
pub(crate) mod server;

pub use lock::RedisLock;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};
use tokio::time::Instant;

use super::EngineError;
use crate::timeline::{Held, Reply, ReplyValue, StepResult};
use server::RedisServer;

/// A connected Redis: the user's, or a throwaway server this process started.
pub(crate) struct Redis {
    client: Client,
    control: MultiplexedConnection,
    server: Option<RedisServer>,
    /// `Redis 7.0.15 (throwaway server)`, `Redis 7.2.4 at cache:6379/0`.
    description: String,
    /// This process's part of every key's prefix, and of its connections' names.
    tag: String,
    runs: AtomicU32,
    connect_timeout: Duration,
}

/// One run's Redis: a connection per session, and what the run did with its keys.
pub(crate) struct RedisRun {
    sessions: Vec<MultiplexedConnection>,
    control: MultiplexedConnection,
    prefix: String,
    /// The keys (prefixed) the run has named, to delete between orders and at its end.
    keys: BTreeSet<String>,
    /// Who put each key's value there with a `SET` that Redis took: key → (session, value).
    owners: HashMap<String, (usize, String)>,
}

/// How an `until` step ended.
pub(crate) enum Until {
    /// The key is gone, after this long.
    Gone { waited_ms: u64 },
    /// The key has no expiry (`PTTL` -1): it would never go by itself.
    NoExpiry,
    /// Still there at the deadline.
    TimedOut,
}

impl Redis {
    /// Connects to `url`, or starts a throwaway server. Also returns a notice, if starting had
    /// to repair the cache.
    pub(crate) async fn open(
        url: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<(Redis, Option<String>), EngineError> {
        let (client, server, target) = match url {
            Some(url) => {
                let target = footprint::describe_url(url);
                let client = Client::open(url).map_err(|e| EngineError::RedisConnect {
                    target: target.clone(),
                    reason: e.to_string(),
                })?;
                (client, None, target)
            }
            None => {
                let server = tokio::task::spawn_blocking(RedisServer::start)
                    .await
                    .map_err(|e| EngineError::Redis(format!("cannot start Redis: {e}")))??;
                let url = format!("redis+unix://{}", server.socket().display());
                let client = Client::open(url.as_str())
                    .map_err(|e| EngineError::Redis(format!("cannot reach {url}: {e}")))?;
                (client, Some(server), "the throwaway server".to_string())
            }
        };
        let tag = footprint::process_tag();
        // The tool's own questions (keys, who holds a lock, clean-up) are quick: a Redis that
        // stops answering them is a failure, not a wait.
        let control = connect(&client, connect_timeout, Some(connect_timeout), &target).await?;
        let mut redis = Redis {
            client,
            control,
            description: String::new(),
            tag,
            runs: AtomicU32::new(0),
            connect_timeout,
            server: None,
        };
        footprint::name(&mut redis.control, &redis.tag, &target).await?;
        let version = footprint::version(&mut redis.control).await?;
        redis.description = match &server {
            Some(_) => format!("Redis {version} (throwaway server)"),
            None => format!("Redis {version} at {target}"),
        };
        let notice = server.as_ref().and_then(|s| s.notice().map(str::to_string));
        // A throwaway Redis is new, with nothing of a killed run's on it.
        if server.is_none() {
            footprint::sweep(&mut redis.control).await?;
        }
        redis.server = server;
        Ok((redis, notice))
    }

    pub(crate) fn description(&self) -> &str {
        &self.description
    }

    /// A run's Redis: `sessions` connections, and a prefix no other run shares.
    pub(crate) async fn run(&self, sessions: usize) -> Result<RedisRun, EngineError> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let mut connections = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            // A session's command may block (BLPOP): the step timeout bounds it, not this.
            let mut connection = connect(&self.client, self.connect_timeout, None, "Redis").await?;
            footprint::name(&mut connection, &self.tag, "Redis").await?;
            connections.push(connection);
        }
        Ok(RedisRun {
            sessions: connections,
            control: self.control.clone(),
            prefix: footprint::prefix(&self.tag, run),
            keys: BTreeSet::new(),
            owners: HashMap::new(),
        })
    }

    /// `n` lock clients for the bench, each on a connection of its own, under a prefix no run
    /// shares; their keys go with the process's at [`Redis::close`], or with their leases.
    pub(crate) async fn locks(&self, n: usize) -> Result<Vec<RedisLock>, EngineError> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        let prefix = footprint::prefix(&self.tag, run);
        let mut locks = Vec::with_capacity(n);
        for worker in 0..n {
            let mut connection = connect(&self.client, self.connect_timeout, None, "Redis").await?;
            footprint::name(&mut connection, &self.tag, "Redis").await?;
            locks.push(RedisLock {
                connection,
                prefix: prefix.clone(),
                me: format!("worker-{worker}"),
            });
        }
        Ok(locks)
    }

    /// Deletes whatever keys this process's runs left (an interrupted run's), and stops a
    /// throwaway server.
    pub(crate) async fn close(mut self) -> Result<(), EngineError> {
        let swept =
            footprint::delete_matching(&mut self.control, &footprint::process_prefix(&self.tag))
                .await;
        if let Some(server) = self.server.take() {
            server
                .stop()
                .map_err(|e| EngineError::Redis(e.to_string()))?;
        }
        swept
    }
}

impl RedisRun {
    /// Sends a step's command on the session's connection; `None` when Redis has not answered
    /// by `deadline`.
    pub(crate) async fn command(
        &mut self,
        session: usize,
        text: &str,
        deadline: Instant,
    ) -> Result<Option<StepResult>, EngineError> {
        let args = match command::split(text) {
            Ok(args) => args,
            Err(why) => {
                return Ok(Some(StepResult::Failed(command::server_error(
                    "ERR",
                    &format!("syntax error: {why}"),
                ))))
            }
        };
        let keys = self.keys_of(&args).await?;
        let sent = command::prefixed(&args, &keys, &self.prefix);
        self.keys
            .extend(keys.iter().map(|key| format!("{}{key}", self.prefix)));
        let mut cmd = redis::cmd(&sent[0]);
        for arg in &sent[1..] {
            cmd.arg(arg);
        }
        let connection = &mut self.sessions[session];
        let Ok(answer) =
            tokio::time::timeout_at(deadline, connection.req_packed_command(&cmd)).await
        else {
            return Ok(None);
        };
        let value = match answer.map_err(redis_error)? {
            redis::Value::ServerError(error) => {
                let detail = error.details().unwrap_or_default().to_string();
                return Ok(Some(StepResult::Failed(command::server_error(
                    error.code(),
                    &detail,
                ))));
            }
            value => command::value(value, &self.prefix),
        };
        let mut reply = Reply::of(value);
        let verb = args[0].to_ascii_uppercase();
        if verb == "SET" && args.len() >= 3 {
            let key = &args[1];
            let nx = args[3..].iter().any(|a| a.eq_ignore_ascii_case("NX"));
            match &reply.value {
                ReplyValue::Text { status: true, .. } => {
                    self.owners.insert(key.clone(), (session, args[2].clone()));
                }
                ReplyValue::Nil if nx => reply.held = Some(self.held(key).await?),
                _ => {}
            }
        }
        Ok(Some(StepResult::Reply(reply)))
    }

    /// Who holds `key` and for how long, as `GET` and `PTTL` say.
    pub(crate) async fn held(&mut self, key: &str) -> Result<Held, EngineError> {
        let full = format!("{}{key}", self.prefix);
        let (value, ttl_ms): (Option<String>, i64) = redis::pipe()
            .cmd("GET")
            .arg(&full)
            .cmd("PTTL")
            .arg(&full)
            .query_async(&mut self.control)
            .await
            .map_err(redis_error)?;
        let by = self
            .owners
            .get(key)
            .filter(|(_, set)| Some(set) == value.as_ref())
            .map(|(session, _)| *session);
        Ok(Held {
            key: key.to_string(),
            by,
            value,
            ttl_ms,
        })
    }

    /// Waits until Redis has no `key`, asking `PTTL` on the session's connection: when it says
    /// the key has N ms of lease left, asks again once they are up. No fixed sleep: each wait is
    /// what Redis just said is left.
    pub(crate) async fn until_gone(
        &mut self,
        session: usize,
        key: &str,
        deadline: Instant,
    ) -> Result<Until, EngineError> {
        let full = format!("{}{key}", self.prefix);
        self.keys.insert(full.clone());
        let started = Instant::now();
        loop {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&full)
                .query_async(&mut self.sessions[session])
                .await
                .map_err(redis_error)?;
            match ttl {
                -2 => {
                    return Ok(Until::Gone {
                        waited_ms: started.elapsed().as_millis() as u64,
                    })
                }
                -1 => return Ok(Until::NoExpiry),
                left => {
                    let due = Instant::now() + Duration::from_millis(left.max(1) as u64);
                    if due > deadline {
                        tokio::time::sleep_until(deadline).await;
                        return Ok(Until::TimedOut);
                    }
                    tokio::time::sleep_until(due).await;
                }
            }
        }
    }

    /// Deletes the run's keys and forgets who held them, for the next order.
    pub(crate) async fn reset(&mut self) -> Result<(), EngineError> {
        self.owners.clear();
        let keys = std::mem::take(&mut self.keys);
        footprint::delete(&mut self.control, &keys).await
    }

    /// Deletes the run's keys and closes its connections.
    pub(crate) async fn finish(mut self) -> Result<(), EngineError> {
        self.reset().await
    }

    /// The keys among a command's arguments, as Redis says (`COMMAND GETKEYS`); none for a
    /// command without keys, or one Redis does not know (it answers that error itself).
    async fn keys_of(&mut self, args: &[String]) -> Result<Vec<String>, EngineError> {
        let mut cmd = redis::cmd("COMMAND");
        cmd.arg("GETKEYS").arg(args);
        match self
            .control
            .req_packed_command(&cmd)
            .await
            .map_err(redis_error)?
        {
            redis::Value::Array(keys) => Ok(keys
                .into_iter()
                .filter_map(|key| match key {
                    redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
                    _ => None,
                })
                .collect()),
            _ => Ok(Vec::new()),
        }
    }
}

/// A connection, within `timeout`, that has answered `PING`: a silent server fails here.
async fn connect(
    client: &Client,
    timeout: Duration,
    response_timeout: Option<Duration>,
    target: &str,
) -> Result<MultiplexedConnection, EngineError> {
    let failed = |reason: String| EngineError::RedisConnect {
        target: target.to_string(),
        reason,
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(response_timeout);
    let attempt = async {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| failed(e.to_string()))?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(connection)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(connected) => connected,
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// A lost connection or a reply the tool cannot read: the tool's own failure, not a step's.
fn redis_error(error: redis::RedisError) -> EngineError {
    EngineError::Redis(error.to_string())
}
