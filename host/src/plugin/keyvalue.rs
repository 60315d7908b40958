//! The key-value store as plugins see it: `wasi:keyvalue` (store, atomics, batch) and
//! `keyvalue-extras` (expiry, listing by prefix), answered from the configuration's
//! store ([`Backend`]) in the namespace of the instance's tenant. Buckets are names within the
//! namespace: a bucket's key is stored as `bucket NUL key`.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::bindings::keyvalue_extras;
use super::bindings::kv::{atomics, batch, store};
use super::state::PluginState;
use crate::kv::{Backend, Limits, StoreError};

/// Keys a page of `list-keys` holds at most.
const PAGE: usize = 1000;
/// The longest bucket name, in octets.
const MAX_BUCKET_NAME: usize = 255;
/// Keys one batch call may name: a batch is bounded like a call.
const MAX_BATCH: usize = 1000;

/// What an instance granted `store` reaches: the store, its namespace in it, and the
/// namespace's limits.
#[derive(Clone)]
pub struct KvGrant {
    pub store: Arc<dyn Backend>,
    pub namespace: Arc<str>,
    pub limits: Limits,
}

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

impl PluginState {
    /// The grant and `key` as the store keeps it (the bucket's name joined), or
    /// `access-denied`.
    fn key_in(
        &self,
        bucket: &Resource<Bucket>,
        key: &str,
    ) -> wasmtime::Result<Result<(&KvGrant, String), store::Error>> {
        let Some(grant) = self.kv.as_ref() else {
            return Ok(Err(store::Error::AccessDenied));
        };
        let prefix = &self.table.get(bucket)?.prefix;
        Ok(Ok((grant, [prefix.as_str(), key].concat())))
    }
}

/// Runs `op` on the store with the bucket's key for `key`, its errors mapped to the WIT's.
macro_rules! with_key {
    ($state:expr, $bucket:expr, $key:expr, |$grant:ident, $full:ident| $op:expr) => {{
        let ($grant, $full) = match $state.key_in(&$bucket, $key)? {
            Ok(found) => found,
            Err(denied) => return Ok(Err(denied)),
        };
        let done = $op.await;
        Ok(done.map_err(|e| error(&$state.info.name, e)))
    }};
}

impl PluginState {
    async fn get_value(&mut self, bucket: &Resource<Bucket>, key: &str) -> Answer<Option<Vec<u8>>> {
        with_key!(self, *bucket, key, |grant, full| grant
            .store
            .get(&grant.namespace, &full))
    }

    async fn set_value(&mut self, bucket: &Resource<Bucket>, key: &str, value: &[u8], ttl_ms: u64) -> Answer<()> {
        with_key!(self, *bucket, key, |grant, full| grant.store.set(
            &grant.namespace,
            &full,
            value,
            ttl_ms,
            grant.limits
        ))
    }

    async fn delete_value(&mut self, bucket: &Resource<Bucket>, key: &str) -> Answer<()> {
        with_key!(self, *bucket, key, |grant, full| grant
            .store
            .delete(&grant.namespace, &full))
    }

    /// A page of the bucket's keys that start with `prefix`, the bucket's name taken off.
    async fn list(
        &mut self,
        bucket: &Resource<Bucket>,
        prefix: &str,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        let listed: Answer<(Vec<String>, Option<u64>, usize)> = with_key!(self, *bucket, prefix, |grant, full| async {
            let page = grant
                .store
                .list(&grant.namespace, &full, cursor.unwrap_or(0), PAGE)
                .await;
            page.map(|(keys, next)| (keys, next, full.len() - prefix.len()))
        });
        Ok(listed?.map(|(keys, cursor, own)| store::KeyResponse {
            keys: keys.into_iter().map(|k| k[own..].to_owned()).collect(),
            cursor,
        }))
    }

    /// A batch call's refusal, if it names too many keys or the call's time is up (each
    /// key is a call to the store: a batch cannot outlast its budget).
    fn batch_refused(&self, keys: usize, done: usize) -> Option<store::Error> {
        if keys > MAX_BATCH {
            return Some(store::Error::Other(format!("a batch names at most {MAX_BATCH} keys")));
        }
        (done > 0 && std::time::Instant::now() >= self.clock.deadline())
            .then(|| store::Error::Other("the call's time budget is spent".to_owned()))
    }
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
        self.get_value(&bucket, &key).await
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Answer<()> {
        self.set_value(&bucket, &key, &value, 0).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<()> {
        self.delete_value(&bucket, &key).await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<bool> {
        Ok(self.get_value(&bucket, &key).await?.map(|value| value.is_some()))
    }

    async fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Answer<store::KeyResponse> {
        self.list(&bucket, "", cursor).await
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for PluginState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Answer<u64> {
        with_key!(self, bucket, &key, |grant, full| grant.store.increment(
            &grant.namespace,
            &full,
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
            if let Some(refused) = self.batch_refused(count, done) {
                return Ok(Err(refused));
            }
            match self.get_value(&bucket, &key).await? {
                Ok(value) => found.push(value.map(|v| (key, v))),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(found))
    }

    async fn set_many(&mut self, bucket: Resource<Bucket>, key_values: Vec<(String, Vec<u8>)>) -> Answer<()> {
        let count = key_values.len();
        for (done, (key, value)) in key_values.iter().enumerate() {
            if let Some(refused) = self.batch_refused(count, done) {
                return Ok(Err(refused));
            }
            if let Err(e) = self.set_value(&bucket, key, value, 0).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Answer<()> {
        let count = keys.len();
        for (done, key) in keys.iter().enumerate() {
            if let Some(refused) = self.batch_refused(count, done) {
                return Ok(Err(refused));
            }
            if let Err(e) = self.delete_value(&bucket, key).await? {
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
        self.set_value(&bucket, &key, &value, ttl_ms).await
    }

    async fn expire(&mut self, bucket: Resource<Bucket>, key: String, ttl_ms: u64) -> Answer<bool> {
        with_key!(self, bucket, &key, |grant, full| grant.store.expire(
            &grant.namespace,
            &full,
            ttl_ms
        ))
    }

    async fn list_keys_with_prefix(
        &mut self,
        bucket: Resource<Bucket>,
        prefix: String,
        cursor: Option<u64>,
    ) -> Answer<store::KeyResponse> {
        self.list(&bucket, &prefix, cursor).await
    }
}
