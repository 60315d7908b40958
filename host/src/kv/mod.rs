//! The key-value store of plugins granted `store`: one per configuration, behind one
//! trait with two backends, the embedded one (redb, a file that survives restarts) and
//! Redis (what several nodes share). Every key lives in a namespace (a tenant's, or a
//! plugin's on a listener without a tenant) that nothing outside it can read or fill, and
//! each namespace is held to `max_keys` and `max_bytes`.

mod embedded;
mod redis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::StoreConfig;
use crate::shared_slot::SharedSlot;

/// How much one namespace may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_keys: u64,
    /// Octets of keys and values together.
    pub max_bytes: u64,
}

/// Why a store operation failed; the plugin gets the text.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the namespace is full: {0}")]
    Full(String),
    #[error("the stored value is not a number")]
    NotANumber,
    #[error("the sum is past the largest number the store keeps")]
    Overflow,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// A key-value store. `ns` is a namespace, `key` a key within it (the caller's bucket and
/// key, already joined); the limits are the namespace's.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `key`, expiring `ttl_ms` milliseconds from now (0: never; an expiry it had
    /// is cleared).
    async fn set(&self, ns: &str, key: &str, value: &[u8], ttl_ms: u64, limits: Limits) -> Result<(), StoreError>;
    async fn delete(&self, ns: &str, key: &str) -> Result<(), StoreError>;
    /// Adds `delta` to the decimal number at `key` (0 if missing); keeps its expiry.
    async fn increment(&self, ns: &str, key: &str, delta: u64, limits: Limits) -> Result<u64, StoreError>;
    /// Sets (0: clears) the expiry of an existing `key`; false if it has no value.
    async fn expire(&self, ns: &str, key: &str, ttl_ms: u64) -> Result<bool, StoreError>;
    /// Up to `count` keys starting with `prefix`, in octet order, from `cursor` (0 for
    /// the first page), and the cursor of the next page if there is one.
    async fn list(
        &self,
        ns: &str,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(Vec<String>, Option<u64>), StoreError>;
    /// Makes every write so far durable, for a clean exit.
    fn flush(&self) {}
}

/// What makes two configurations' stores the same one: where it is (and how long a
/// Redis call may take). The limits are not part of it: they can change on a reload.
#[derive(Clone, PartialEq, Eq)]
struct Location {
    path: Option<PathBuf>,
    redis: Option<String>,
    timeout_ms: u64,
}

impl StoreConfig {
    /// The limits of each namespace.
    pub fn limits(&self) -> Limits {
        Limits {
            max_keys: self.max_keys,
            max_bytes: self.max_bytes,
        }
    }
}

/// The store in use.
static CURRENT: SharedSlot<Location, dyn Backend> = SharedSlot::new();

/// Makes the writes to the store in use durable: the process is about to exit (the
/// embedded store would otherwise keep its last second's writes in memory only).
pub fn flush_shared() {
    if let Some(store) = CURRENT.current() {
        store.flush();
    }
}

/// The store for `config`, opened once and shared by every plugin granted it until a
/// reload names another place (an embedded database can be open only once in a
/// process). A store that cannot be opened leaves the one in use as it was.
pub fn shared(config: &StoreConfig) -> anyhow::Result<Arc<dyn Backend>> {
    let location = Location {
        path: config.path.clone(),
        redis: config.redis.clone(),
        timeout_ms: config.timeout_ms,
    };
    CURRENT.get_or_make(location, || -> anyhow::Result<Arc<dyn Backend>> {
        match &config.redis {
            Some(url) => {
                let timeout = Duration::from_millis(config.timeout_ms);
                // Not the URL in the message: it may hold a password.
                let backend = redis::RedisBackend::new(url, timeout).context("store: the redis URL")?;
                Ok(Arc::new(backend))
            }
            None => {
                let path = match &config.path {
                    Some(path) => path.clone(),
                    None => default_path().context("store: no path given, and no home directory for the default")?,
                };
                let backend = embedded::Embedded::open(&path)
                    .with_context(|| format!("store: cannot open {}", path.display()))?;
                Ok(Arc::new(backend))
            }
        }
    })
}

/// `store.redb` in the default state directory.
fn default_path() -> Option<PathBuf> {
    Some(crate::state_dir::default_state_dir()?.join("store.redb"))
}

/// Milliseconds since the Unix epoch: expiries survive restarts and are shared by nodes.
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// A decimal counter as stored, checked.
fn parse_counter(stored: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(stored)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(StoreError::NotANumber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter(b"42"), Ok(42));
        assert_eq!(parse_counter(b"-1"), Err(StoreError::NotANumber));
        assert_eq!(parse_counter(b"4 2"), Err(StoreError::NotANumber));
        assert_eq!(parse_counter(b"\xff"), Err(StoreError::NotANumber));
    }
}
