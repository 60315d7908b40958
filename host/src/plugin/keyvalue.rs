//! The key-value store as plugins see it: `wasi:keyvalue` (store, atomics, batch) and
//! `keyvalue-extras` (expiry, listing by prefix), answered from the configuration's
//! [`KvStore`] in the namespace of the instance's tenant. Buckets are names within the
//! namespace: a bucket's key is stored as `bucket NUL key`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Resource;

use super::bindings::keyvalue_extras;
use super::bindings::kv::{atomics, batch, store};
use super::state::PluginState;
use crate::kv::{KvStore, Limits, StoreError};

/// Keys a page of `list-keys` holds at most.
const PAGE: usize = 1000;
/// The longest bucket name, in octets.
const MAX_BUCKET_NAME: usize = 255;

/// What an instance granted `store` reaches: the store, its namespace in it, and the
/// namespace's limits.
#[derive(Clone)]
pub struct KvGrant {
    pub store: Arc<KvStore>,
    pub namespace: Arc<str>,
    pub limits: Limits,
}

/// Keys one batch call may name: a batch is bounded like a call.
const MAX_BATCH: usize = 1000;

/// An open bucket: its name, joined to each key.
pub struct Bucket {
    prefix: String,
}

type Answer<T> = wasmtime::Result<Result<T, store::Error>>;

fn error(plugin: &str, e: StoreError) -> store::Error {
    if let StoreError::Unavailable(why) = &e {
        tracing::warn!(plugin, "store unavailable: {why}");
    }
    store::Error::Other(e.to_string())
}

fn ttl(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl PluginState {
    /// The grant and the open bucket's key prefix, or `access-denied`.
    fn bucket(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<Result<(KvGrant, String), store::Error>> {
        let Some(grant) = self.kv.clone() else {
            return Ok(Err(store::Error::AccessDenied));
        };
        let prefix = self.table.get(bucket)?.prefix.clone();
        Ok(Ok((grant, prefix)))
    }
}

/// Runs `op` against the bucket's store, mapping its errors to the WIT's.
macro_rules! with_bucket {
    ($state:expr, $bucket:expr, |$grant:ident, $prefix:ident| $op:expr) => {{
        let ($grant, $prefix) = match $state.bucket(&$bucket)? {
            Ok(found) => found,
            Err(denied) => return Ok(Err(denied)),
        };
        let plugin = $state.info.name.clone();
        Ok($op.await.map_err(|e| error(&plugin, e)))
    }};
}

impl store::Host for PluginState {
    async fn open(&mut self, identifier: String) -> Answer<Resource<Bucket>> {
        if self.kv.is_none() {
            return Ok(Err(store::Error::AccessDenied));
        }
        if identifier.contains('\0') || identifier.len() > MAX_BUCKET_NAME {
            return Ok(Err(store::Error::Other(format!(
                "a bucket name holds no NUL and at most {MAX_BUCKET_NAME} octets"
            ))));
        }
        let bucket = Bucket {
            prefix: format!("{identifier}\0"),
        };
        Ok(Ok(self.table.push(bucket)?))
    }
}

impl store::HostBucket for PluginState {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Vec<u8>>> {
        with_bucket!(self, bucket, |grant, prefix| grant
            .store
            .backend
            .get(&grant.namespace, &[prefix.as_str(), &key].concat()))
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        with_bucket!(self, bucket, |grant, prefix| grant.store.backend.set(
            &grant.namespace,
            &[prefix.as_str(), &key].concat(),
            &value,
            None,
            grant.limits
        ))
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        with_bucket!(self, bucket, |grant, prefix| grant
            .store
            .backend
            .delete(&grant.namespace, &[prefix.as_str(), &key].concat()))
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        let found = self.get(bucket, key).await?;
        Ok(found.map(|value| value.is_some()))
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Answer<store::KeyResponse> {
        let listed = list(self, &bucket, "", cursor).await?;
        Ok(listed)
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

/// A page of the bucket's keys that start with `prefix`, the bucket's own prefix taken
/// off; the cursor is how many came before.
async fn list(
    state: &mut PluginState,
    bucket: &Resource<Bucket>,
    prefix: &str,
    cursor: Option<u64>,
) -> Answer<store::KeyResponse> {
    let listed: Answer<(Vec<String>, Option<u64>)> =
        with_bucket!(state, *bucket, |grant, own| grant.store.backend.list(
            &grant.namespace,
            &[own.as_str(), prefix].concat(),
            cursor.unwrap_or(0),
            PAGE
        ));
    let (keys, cursor) = match listed? {
        Ok(page) => page,
        Err(e) => return Ok(Err(e)),
    };
    let own_len = state.table.get(bucket)?.prefix.len();
    Ok(Ok(store::KeyResponse {
        keys: keys.into_iter().map(|k| k[own_len..].to_owned()).collect(),
        cursor,
    }))
}

/// A batch call's refusal, if it names too many keys or the call's time is up (each
/// key is a call to the store: a batch cannot outlast its budget).
fn batch_refused(state: &PluginState, keys: usize, done: usize) -> Option<store::Error> {
    if keys > MAX_BATCH {
        return Some(store::Error::Other(format!("a batch names at most {MAX_BATCH} keys")));
    }
    (done > 0 && std::time::Instant::now() >= state.clock.deadline())
        .then(|| store::Error::Other("the call's time budget is spent".to_owned()))
}

impl atomics::Host for PluginState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Answer<u64> {
        with_bucket!(self, bucket, |grant, prefix| grant.store.backend.increment(
            &grant.namespace,
            &[prefix.as_str(), &key].concat(),
            delta,
            grant.limits
        ))
    }
}

impl batch::Host for PluginState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<(String, Vec<u8>)>>> {
        let mut found = Vec::with_capacity(keys.len());
        let count = keys.len();
        for (done, key) in keys.into_iter().enumerate() {
            if let Some(refused) = batch_refused(self, count, done) {
                return Ok(Err(refused));
            }
            let bucket = Resource::new_borrow(bucket.rep());
            match store::HostBucket::get(self, bucket, key.clone()).await? {
                Ok(value) => found.push(value.map(|v| (key, v))),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(found))
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Answer<()> {
        let count = key_values.len();
        for (done, (key, value)) in key_values.into_iter().enumerate() {
            if let Some(refused) = batch_refused(self, count, done) {
                return Ok(Err(refused));
            }
            let bucket = Resource::new_borrow(bucket.rep());
            if let Err(e) = store::HostBucket::set(self, bucket, key, value).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let count = keys.len();
        for (done, key) in keys.into_iter().enumerate() {
            if let Some(refused) = batch_refused(self, count, done) {
                return Ok(Err(refused));
            }
            let bucket = Resource::new_borrow(bucket.rep());
            if let Err(e) = store::HostBucket::delete(self, bucket, key).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

impl keyvalue_extras::Host for PluginState {
    async fn set_with_expiry(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> Answer<()> {
        with_bucket!(self, bucket, |grant, prefix| grant.store.backend.set(
            &grant.namespace,
            &[prefix.as_str(), &key].concat(),
            &value,
            ttl(ttl_ms),
            grant.limits
        ))
    }

    async fn expire(&mut self, bucket: Resource<Bucket>, key: String, ttl_ms: u64) -> Answer<bool> {
        with_bucket!(self, bucket, |grant, prefix| grant.store.backend.expire(
            &grant.namespace,
            &[prefix.as_str(), &key].concat(),
            ttl(ttl_ms)
        ))
    }

    async fn list_keys_with_prefix(
        &mut self,
        bucket: Resource<Bucket>,
        prefix: String,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        list(self, &bucket, &prefix, cursor).await
    }
}
