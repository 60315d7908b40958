//! The Redis store, which several wasmtpd nodes share: each operation is one call of a
//! Lua script (`redis.lua`), atomic in Redis, so that two nodes cannot both pass a limit
//! or lose an increment. The connection is made at the first call and remade after a
//! failure; while Redis is away, calls fail with `unavailable` and the plugin decides
//! (the shipped greylisting answers 451).

use std::time::Duration;

use redis::{FromRedisValue, Script, ScriptInvocation};

use super::{Backend, Limits, StoreError, parse_counter};
use crate::redis_connection::RedisConnection;

pub struct RedisBackend {
    redis: RedisConnection,
    script: Script,
}

impl RedisBackend {
    pub fn new(url: &str, timeout: Duration) -> anyhow::Result<RedisBackend> {
        Ok(RedisBackend {
            redis: RedisConnection::open(url, timeout)?,
            script: Script::new(include_str!("redis.lua")),
        })
    }

    /// Runs the script's `op` on namespace `ns`, within the timeout.
    async fn run<T: FromRedisValue>(&self, ns: &str, op: &str, args: &[&[u8]]) -> Result<T, StoreError> {
        let mut invocation: ScriptInvocation = self.script.prepare_invoke();
        for table in ["v", "k", "x", "b"] {
            // One hash tag per namespace: a cluster keeps its keys on one node.
            invocation.key(format!("wasmtpd:kv:{{{ns}}}:{table}"));
        }
        invocation.arg(op);
        for arg in args {
            invocation.arg(*arg);
        }
        let answer = self
            .redis
            .call(async |connection| invocation.invoke_async(connection).await);
        answer.await.map_err(StoreError::Unavailable)
    }
}

fn full(code: i64, limits: Limits) -> StoreError {
    match code {
        -1 => StoreError::Full(format!("it holds its maximum of {} keys", limits.max_keys)),
        _ => StoreError::Full(format!("it would pass its maximum of {} octets", limits.max_bytes)),
    }
}

#[async_trait::async_trait]
impl Backend for RedisBackend {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(ns, "get", &[key.as_bytes()]).await
    }

    async fn set(&self, ns: &str, key: &str, value: &[u8], ttl_ms: u64, limits: Limits) -> Result<(), StoreError> {
        let (ttl, keys, bytes) = (
            ttl_ms.to_string(),
            limits.max_keys.to_string(),
            limits.max_bytes.to_string(),
        );
        let args: [&[u8]; 5] = [key.as_bytes(), value, ttl.as_bytes(), keys.as_bytes(), bytes.as_bytes()];
        match self.run::<i64>(ns, "set", &args).await? {
            1 => Ok(()),
            code => Err(full(code, limits)),
        }
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        self.run::<i64>(ns, "delete", &[key.as_bytes()]).await.map(drop)
    }

    async fn increment(&self, ns: &str, key: &str, delta: u64, limits: Limits) -> Result<u64, StoreError> {
        let (delta, keys, bytes) = (
            delta.to_string(),
            limits.max_keys.to_string(),
            limits.max_bytes.to_string(),
        );
        let args: [&[u8]; 4] = [key.as_bytes(), delta.as_bytes(), keys.as_bytes(), bytes.as_bytes()];
        let (code, sum): (i64, Vec<u8>) = self.run(ns, "increment", &args).await?;
        match (code, sum) {
            (1, sum) => parse_counter(&sum),
            (-3, _) => Err(StoreError::NotANumber),
            // Redis keeps counters as signed 64-bit numbers.
            (-4, _) => Err(StoreError::Overflow),
            (code @ (-1 | -2), _) => Err(full(code, limits)),
            (code, _) => Err(StoreError::Unavailable(format!("unexpected answer {code} from Redis"))),
        }
    }

    async fn expire(&self, ns: &str, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let ttl = ttl_ms.to_string();
        let done: i64 = self.run(ns, "expire", &[key.as_bytes(), ttl.as_bytes()]).await?;
        Ok(done == 1)
    }

    async fn list(
        &self,
        ns: &str,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(Vec<String>, Option<u64>), StoreError> {
        let (offset, wanted) = (cursor.to_string(), count.to_string());
        let args: [&[u8]; 3] = [prefix.as_bytes(), offset.as_bytes(), wanted.as_bytes()];
        let page: Vec<redis::Value> = self.run(ns, "list", &args).await?;
        let mut page = page.into_iter();
        let scanned = match page.next() {
            Some(redis::Value::Int(scanned)) => u64::try_from(scanned).unwrap_or(0),
            _ => return Err(StoreError::Unavailable("unexpected answer from Redis".to_owned())),
        };
        let keys = page
            .map(|k| String::from_redis_value(k).map_err(|e| StoreError::Unavailable(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        // The cursor counts keys scanned in Redis, expired ones included.
        let next = (scanned > count as u64).then_some(cursor + count as u64);
        Ok((keys, next))
    }
}
