//! The one wasmtime engine of the process: compiled-code cache, pooling allocator, epoch
//! interruption for time budgets, and the linker with WASI and the host imports.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmtimeResultExt;
use super::bindings::HostSide;
use super::epoch::EpochClock;
use super::state::PluginState;

/// Octets of each instance slot's linear memory, table and async stack kept resident when
/// the instance ends; past them, pages are given back to the kernel.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 64 << 10;

pub struct EngineOptions {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Plugin instances that may be alive at once (sessions × plugins in their chain).
    pub max_instances: u32,
}

pub struct PluginEngine {
    pub engine: Engine,
    /// Where compiled components are cached, if anywhere.
    pub cache_dir: Option<PathBuf>,
    pub linker: Linker<PluginState>,
    /// Advances the epoch while guests run.
    pub clock: Arc<EpochClock>,
}

impl PluginEngine {
    pub fn new(options: &EngineOptions) -> anyhow::Result<PluginEngine> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        if let Some(dir) = &options.cache_dir {
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(
                Cache::new(cache)
                    .anyhow()
                    .with_context(|| format!("plugin cache in {}", dir.display()))?,
            ));
        }
        // Instances come from preallocated slots: creating one per session is cheap.
        let n = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n);
        // Where Linux's PAGEMAP_SCAN is there (6.7 and later), a slot given back keeps its
        // pages and only the ones the instance dirtied are reset in place. Page faults and
        // madvise's TLB shootdowns were most of a session's instantiation: 43 µs → 23 µs
        // for `sink`. Without it, keeping pages means zeroing all of them, which is slower
        // than giving them back (79 µs).
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
                .table_keep_resident(KEEP_RESIDENT_TABLE)
                .async_stack_keep_resident(KEEP_RESIDENT_STACK);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .anyhow()
            .context("cannot start the WebAssembly engine")?;
        let clock = EpochClock::start(&engine);

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .anyhow()
            .context("WASI imports")?;
        // wasi:http's types and outgoing handler; what a plugin may reach is its grant's.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .anyhow()
            .context("wasi:http imports")?;
        HostSide::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .anyhow()
            .context("host imports")?;
        Ok(PluginEngine {
            engine,
            cache_dir: options.cache_dir.clone(),
            linker,
            clock,
        })
    }
}

/// `$XDG_CACHE_HOME/wasmtpd`, else `$HOME/.cache/wasmtpd`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wasmtpd"))
}
