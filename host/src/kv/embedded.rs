//! The embedded store: one redb file, nothing to install. Writes commit without waiting
//! for the disk and a flusher makes them durable within a second (a commit that waits
//! for fsync costs milliseconds, a message's get+set microseconds this way): a clean exit
//! (SIGTERM) loses nothing, a crash of wasmtpd or of the machine at most that second.
//!
//! Tables: the values with their expiry, an index of expiries (so that writes sweep out
//! what has expired), and each namespace's usage (keys, octets) that the limits check.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{Backend, Limits, StoreError, now_ms, parse_counter};

/// (namespace, key) → (expires at in Unix milliseconds, 0 for never; value).
const VALUES: TableDefinition<(&str, &str), (u64, &[u8])> = TableDefinition::new("values");
/// (expires at, namespace, key) for every value that expires.
const EXPIRIES: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiries");
/// namespace → (keys, octets of keys and values).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// Expired values a write sweeps out before its own change, at most.
const SWEEP: usize = 64;
/// How long a write may stay in memory only.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub struct Embedded {
    db: Arc<Database>,
    dirty: Arc<AtomicBool>,
}

impl Embedded {
    pub fn open(path: &Path) -> anyhow::Result<Embedded> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Arc::new(Database::create(path)?);
        let txn = db.begin_write()?;
        txn.open_table(VALUES)?;
        txn.open_table(EXPIRIES)?;
        txn.open_table(USAGE)?;
        txn.commit()?;
        let dirty = Arc::new(AtomicBool::new(false));
        let (weak, flag) = (Arc::downgrade(&db), Arc::clone(&dirty));
        std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || flusher(weak, flag))?;
        Ok(Embedded { db, dirty })
    }

    /// Runs `change` in a write transaction off the async threads (a write waits for
    /// the one before, and the flusher's fsync).
    async fn write<T: Send + 'static>(
        &self,
        change: impl Fn(&WriteTransaction, u64) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (db, dirty) = (Arc::clone(&self.db), Arc::clone(&self.dirty));
        let written = tokio::task::spawn_blocking(move || {
            let attempt = || {
                let mut txn = db.begin_write().map_err(unavailable)?;
                txn.set_durability(Durability::None).map_err(unavailable)?;
                let now = now_ms();
                sweep(&txn, now)?;
                let result = change(&txn, now)?;
                txn.commit().map_err(unavailable)?;
                Ok(result)
            };
            let result = match attempt() {
                // A refused write aborts its transaction, sweep and all: sweep on its own,
                // so that expired values stop counting, and try once more.
                Err(StoreError::Full(_)) => {
                    let txn = db.begin_write().map_err(unavailable)?;
                    sweep_all(&txn, now_ms())?;
                    txn.commit().map_err(unavailable)?;
                    attempt()
                }
                other => other,
            };
            dirty.store(true, Ordering::Release);
            result
        });
        written.await.map_err(unavailable)?
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        flush_if_dirty(&self.db, &self.dirty);
    }
}

fn flusher(db: Weak<Database>, dirty: Arc<AtomicBool>) {
    loop {
        std::thread::sleep(FLUSH_EVERY);
        let Some(db) = db.upgrade() else { return };
        flush_if_dirty(&db, &dirty);
    }
}

/// Makes the writes since the last flush durable, if there are any.
fn flush_if_dirty(db: &Database, dirty: &AtomicBool) {
    if dirty.swap(false, Ordering::AcqRel)
        && let Err(e) = flush(db)
    {
        dirty.store(true, Ordering::Release);
        tracing::warn!("store: cannot flush to disk: {e}");
    }
}

/// A durable commit makes the ones before it durable too.
fn flush(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    txn.commit()?;
    Ok(())
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A stored value as (expires at, octets), if it is there and has not expired.
fn live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
}

/// Removes every expired value, a sweep at a time.
fn sweep_all(txn: &WriteTransaction, now: u64) -> Result<(), StoreError> {
    while sweep(txn, now)? == SWEEP {}
    Ok(())
}

/// Removes up to [`SWEEP`] expired values, and their usage; returns how many.
fn sweep(txn: &WriteTransaction, now: u64) -> Result<usize, StoreError> {
    let mut expiries = txn.open_table(EXPIRIES).map_err(unavailable)?;
    let mut due = Vec::new();
    for entry in expiries.range((0, "", "")..(now + 1, "", "")).map_err(unavailable)? {
        let (key, _) = entry.map_err(unavailable)?;
        let (at, ns, key) = key.value();
        due.push((at, ns.to_owned(), key.to_owned()));
        if due.len() == SWEEP {
            break;
        }
    }
    let swept = due.len();
    for (at, ns, key) in due {
        expiries.remove((at, ns.as_str(), key.as_str())).map_err(unavailable)?;
        remove(txn, &ns, &key, false)?;
    }
    Ok(swept)
}

/// Removes a value, if there is one, and gives back its usage; with `indexed`, its
/// expiry entry too.
fn remove(txn: &WriteTransaction, ns: &str, key: &str, indexed: bool) -> Result<(), StoreError> {
    let mut values = txn.open_table(VALUES).map_err(unavailable)?;
    let Some(old) = values.remove((ns, key)).map_err(unavailable)? else {
        return Ok(());
    };
    let (expires, size) = {
        let (expires, value) = old.value();
        (expires, (key.len() + value.len()) as u64)
    };
    drop(old);
    if indexed && expires != 0 {
        let mut expiries = txn.open_table(EXPIRIES).map_err(unavailable)?;
        expiries.remove((expires, ns, key)).map_err(unavailable)?;
    }
    add_usage(txn, ns, -1, -(size as i64))?;
    Ok(())
}

fn add_usage(txn: &WriteTransaction, ns: &str, keys: i64, bytes: i64) -> Result<(u64, u64), StoreError> {
    let mut usage = txn.open_table(USAGE).map_err(unavailable)?;
    let (k, b) = usage.get(ns).map_err(unavailable)?.map_or((0, 0), |g| g.value());
    let new = (k.saturating_add_signed(keys), b.saturating_add_signed(bytes));
    if new == (0, 0) {
        usage.remove(ns).map_err(unavailable)?;
    } else {
        usage.insert(ns, new).map_err(unavailable)?;
    }
    Ok(new)
}

/// Writes `value` at `key` in place of what was there (whose usage was given back),
/// within the limits.
fn put(
    txn: &WriteTransaction,
    ns: &str,
    key: &str,
    value: &[u8],
    expires: u64,
    limits: Limits,
) -> Result<(), StoreError> {
    let size = (key.len() + value.len()) as u64;
    let (keys, bytes) = add_usage(txn, ns, 1, size as i64)?;
    if keys > limits.max_keys {
        return Err(StoreError::Full(format!(
            "it holds its maximum of {} keys",
            limits.max_keys
        )));
    }
    if bytes > limits.max_bytes {
        return Err(StoreError::Full(format!(
            "{} more octets would pass its maximum of {}",
            size, limits.max_bytes
        )));
    }
    let mut values = txn.open_table(VALUES).map_err(unavailable)?;
    values.insert((ns, key), (expires, value)).map_err(unavailable)?;
    if expires != 0 {
        let mut expiries = txn.open_table(EXPIRIES).map_err(unavailable)?;
        expiries.insert((expires, ns, key), ()).map_err(unavailable)?;
    }
    Ok(())
}

/// The value at `key` if live, as (expires at, octets).
fn current(txn: &WriteTransaction, ns: &str, key: &str, now: u64) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let values = txn.open_table(VALUES).map_err(unavailable)?;
    let found = values.get((ns, key)).map_err(unavailable)?;
    Ok(found
        .map(|g| {
            let (expires, value) = g.value();
            (expires, value.to_vec())
        })
        .filter(|(expires, _)| live(*expires, now)))
}

/// When a value set now with `ttl_ms` expires: 0 (never) for 0.
fn expiry_at(ttl_ms: u64, now: u64) -> u64 {
    match ttl_ms {
        0 => 0,
        ttl => now.saturating_add(ttl),
    }
}

#[async_trait::async_trait]
impl Backend for Embedded {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // Readers do not wait for writers (MVCC): read here, on the async thread.
        let txn = self.db.begin_read().map_err(unavailable)?;
        let values = txn.open_table(VALUES).map_err(unavailable)?;
        let found = values.get((ns, key)).map_err(unavailable)?;
        Ok(found.and_then(|g| {
            let (expires, value) = g.value();
            live(expires, now_ms()).then(|| value.to_vec())
        }))
    }

    async fn set(&self, ns: &str, key: &str, value: &[u8], ttl_ms: u64, limits: Limits) -> Result<(), StoreError> {
        let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
        self.write(move |txn, now| {
            remove(txn, &ns, &key, true)?;
            put(txn, &ns, &key, &value, expiry_at(ttl_ms, now), limits)
        })
        .await
    }

    async fn delete(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.write(move |txn, _| remove(txn, &ns, &key, true)).await
    }

    async fn increment(&self, ns: &str, key: &str, delta: u64, limits: Limits) -> Result<u64, StoreError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.write(move |txn, now| {
            let (expires, before) = match current(txn, &ns, &key, now)? {
                Some((expires, stored)) => (expires, parse_counter(&stored)?),
                None => (0, 0),
            };
            let sum = before.checked_add(delta).ok_or(StoreError::Overflow)?;
            remove(txn, &ns, &key, true)?;
            put(txn, &ns, &key, sum.to_string().as_bytes(), expires, limits)?;
            Ok(sum)
        })
        .await
    }

    async fn expire(&self, ns: &str, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.write(move |txn, now| {
            let Some((_, value)) = current(txn, &ns, &key, now)? else {
                return Ok(false);
            };
            remove(txn, &ns, &key, true)?;
            // Its own octets were just given back: the limits cannot refuse it.
            let no_limit = Limits {
                max_keys: u64::MAX,
                max_bytes: u64::MAX,
            };
            put(txn, &ns, &key, &value, expiry_at(ttl_ms, now), no_limit)?;
            Ok(true)
        })
        .await
    }

    async fn list(
        &self,
        ns: &str,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(Vec<String>, Option<u64>), StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        let values = txn.open_table(VALUES).map_err(unavailable)?;
        let now = now_ms();
        // The cursor counts the live keys before the page.
        let mut keys = Vec::new();
        let mut skipped = 0;
        for entry in values.range((ns, prefix)..).map_err(unavailable)? {
            let (k, v) = entry.map_err(unavailable)?;
            let (entry_ns, key) = k.value();
            if entry_ns != ns || !key.starts_with(prefix) {
                break;
            }
            if !live(v.value().0, now) {
                continue;
            }
            if skipped < cursor {
                skipped += 1;
                continue;
            }
            if keys.len() == count {
                // One more exists: there is a next page.
                return Ok((keys, Some(cursor + count as u64)));
            }
            keys.push(key.to_owned());
        }
        Ok((keys, None))
    }

    fn flush(&self) {
        flush_if_dirty(&self.db, &self.dirty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits {
        max_keys: 100,
        max_bytes: 10_000,
    };

    fn store() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn values_are_set_read_and_deleted_per_namespace() {
        let (_dir, s) = store();
        s.set("a", "k", b"one", 0, ROOMY).await.unwrap();
        s.set("b", "k", b"two", 0, ROOMY).await.unwrap();
        assert_eq!(s.get("a", "k").await.unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(s.get("b", "k").await.unwrap().as_deref(), Some(&b"two"[..]));
        s.delete("a", "k").await.unwrap();
        assert_eq!(s.get("a", "k").await.unwrap(), None);
        assert_eq!(s.get("b", "k").await.unwrap().as_deref(), Some(&b"two"[..]));
    }

    #[tokio::test]
    async fn limits_count_keys_and_octets_and_give_them_back() {
        let (_dir, s) = store();
        let two = Limits {
            max_keys: 2,
            max_bytes: 20,
        };
        s.set("n", "a", b"12345", 0, two).await.unwrap();
        s.set("n", "b", b"12345", 0, two).await.unwrap();
        let full = s.set("n", "c", b"1", 0, two).await.unwrap_err();
        assert!(
            matches!(full, StoreError::Full(ref why) if why.contains("2 keys")),
            "{full:?}"
        );
        // Overwriting is not a new key; 1 + 14 octets would pass 20 with "a"'s 6.
        s.set("n", "b", b"123", 0, two).await.unwrap();
        let big = s.set("n", "b", b"12345678901234", 0, two).await.unwrap_err();
        assert!(
            matches!(big, StoreError::Full(ref why) if why.contains("octets")),
            "{big:?}"
        );
        // A refused write changed nothing; another namespace has its own room.
        assert_eq!(s.get("n", "b").await.unwrap().as_deref(), Some(&b"123"[..]));
        s.set("other", "c", b"1", 0, two).await.unwrap();
        s.delete("n", "a").await.unwrap();
        s.set("n", "c", b"1", 0, two).await.unwrap();
    }

    #[tokio::test]
    async fn expired_values_are_gone_and_swept_from_the_usage() {
        let (_dir, s) = store();
        let one = Limits {
            max_keys: 1,
            max_bytes: 100,
        };
        s.set("n", "k", b"v", 30, one).await.unwrap();
        assert!(s.get("n", "k").await.unwrap().is_some());
        assert!(s.set("n", "k2", b"v", 0, one).await.is_err());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(s.get("n", "k").await.unwrap(), None);
        assert_eq!(s.list("n", "", 0, 10).await.unwrap(), (Vec::<String>::new(), None));
        s.set("n", "k2", b"v", 0, one).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_namespace_makes_room_from_its_expired_values_even_when_others_expire_first() {
        let (_dir, s) = store();
        let one = Limits {
            max_keys: 1,
            max_bytes: 1000,
        };
        // More expired values elsewhere than one write's sweep takes, and older.
        for i in 0..(SWEEP + 10) {
            s.set("idle", &format!("k{i}"), b"v", 10, ROOMY).await.unwrap();
        }
        s.set("full", "k", b"v", 30, one).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        s.set("full", "other", b"v", 0, one).await.unwrap();
    }

    #[tokio::test]
    async fn counters_increment_and_keep_their_expiry() {
        let (_dir, s) = store();
        assert_eq!(s.increment("n", "c", 5, ROOMY).await.unwrap(), 5);
        assert_eq!(s.increment("n", "c", 2, ROOMY).await.unwrap(), 7);
        assert_eq!(s.get("n", "c").await.unwrap().as_deref(), Some(&b"7"[..]));
        assert!(s.expire("n", "c", 30).await.unwrap());
        assert_eq!(s.increment("n", "c", 1, ROOMY).await.unwrap(), 8);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(s.increment("n", "c", 1, ROOMY).await.unwrap(), 1);
        s.set("n", "t", b"text", 0, ROOMY).await.unwrap();
        assert_eq!(s.increment("n", "t", 1, ROOMY).await, Err(StoreError::NotANumber));
        s.set("n", "m", u64::MAX.to_string().as_bytes(), 0, ROOMY)
            .await
            .unwrap();
        assert_eq!(s.increment("n", "m", 1, ROOMY).await, Err(StoreError::Overflow));
        assert!(!s.expire("n", "missing", 0).await.unwrap());
    }

    #[tokio::test]
    async fn keys_are_listed_by_prefix_in_pages() {
        let (_dir, s) = store();
        for key in ["b\0x", "a\0z", "a\0x", "a\0y", "ab\0x"] {
            s.set("n", key, b"", 0, ROOMY).await.unwrap();
        }
        s.set("m", "a\0w", b"", 0, ROOMY).await.unwrap();
        let page = |keys: &[&str], next| (keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(), next);
        assert_eq!(
            s.list("n", "a\0", 0, 10).await.unwrap(),
            page(&["a\0x", "a\0y", "a\0z"], None)
        );
        assert_eq!(s.list("n", "a\0", 1, 1).await.unwrap(), page(&["a\0y"], Some(2)));
        assert_eq!(s.list("n", "a\0", 2, 1).await.unwrap(), page(&["a\0z"], None));
        assert_eq!(s.list("n", "a\0", 3, 10).await.unwrap(), page(&[], None));
    }

    #[tokio::test]
    async fn what_was_written_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Embedded::open(&path).unwrap();
        s.set("n", "k", b"kept", 0, ROOMY).await.unwrap();
        drop(s);
        let s = Embedded::open(&path).unwrap();
        assert_eq!(s.get("n", "k").await.unwrap().as_deref(), Some(&b"kept"[..]));
    }
}
