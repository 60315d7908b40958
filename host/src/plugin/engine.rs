//! The one wasmtime engine of the process: compiled-code cache, pooling allocator, epoch
//! interruption for time budgets, and the linker with WASI and the host imports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmtimeResultExt;
use super::bindings::HostSide;
use super::component_table::ComponentTable;
use super::epoch::EpochClock;
use super::state::PluginState;

/// Octets of each instance slot's linear memory, table and async stack kept resident when
/// the instance ends; past them, pages are given back to the kernel.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
const KEEP_RESIDENT_STACK: usize = 64 << 10;

/// Each linear memory reserves 4 GiB of address space and a guard after it, so that
/// guest code needs no bounds checks (wasmtime's defaults, set here because the pool's
/// size is computed from them).
const MEMORY_RESERVATION: u64 = 4 << 30;
const MEMORY_GUARD: u64 = 32 << 20;
/// Address space the instance pool may reserve at start: half of what x86-64 Linux gives
/// a process (128 TiB), so that whether a configuration gets a pool does not depend on
/// what else the process has mapped. That is 8,128 instances of two memories (8 GiB
/// each); a configuration whose sessions could hold more at once (`max_connections` ×
/// the plugins a session may call, which on a routing listener counts every tenant's)
/// has its instances made on demand.
const POOL_ADDRESS_SPACE: u64 = 64 << 40;
/// Linear memories a pool slot holds per instance: components made of several core
/// modules (componentize-py's) have more than one.
const MEMORIES_PER_INSTANCE: u32 = 2;

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
    /// Advances the epoch while a call has lasted a tick (see [`EpochClock`]).
    pub clock: Arc<EpochClock>,
    /// The components plugins hold, by content, to share between them.
    pub components: ComponentTable,
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
        config
            .memory_reservation(MEMORY_RESERVATION)
            .memory_guard_size(MEMORY_GUARD);
        let engine = new_engine(config, options.max_instances.max(1))?;
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
            components: ComponentTable::default(),
        })
    }
}

/// The engine, its instances in a pool of preallocated slots when the pool's address
/// space fits [`POOL_ADDRESS_SPACE`] and the system lets it be reserved, else made on
/// demand (each instance maps its own memory when it starts, and unmaps it at its end).
fn new_engine(mut config: wasmtime::Config, instances: u32) -> anyhow::Result<Engine> {
    match pool_address_space(instances) {
        Some(bytes) if bytes <= POOL_ADDRESS_SPACE => {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(instances)));
            match Engine::new(&config) {
                Ok(engine) => return Ok(engine),
                // An address-space limit (`ulimit -v`, a container's) can refuse the pool.
                // Each instance made on demand reserves as much, so under it few fit.
                Err(e) => tracing::warn!(
                    "plugin instances are made on demand: a pool of {instances} could not be made ({} GiB of address space): {e:#}; \
                     each memory of an instance reserves 4 GiB of address space, so under an address-space limit \
                     (ulimit -v) only a few can run at once, and calls past them get 451",
                    bytes >> 30
                ),
            }
        }
        _ => tracing::info!(
            "plugin instances are made on demand: a pool of {instances} (sessions × plugins a session may call) would reserve more than {} TiB of address space",
            POOL_ADDRESS_SPACE >> 40
        ),
    }
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Engine::new(&config)
        .anyhow()
        .context("cannot start the WebAssembly engine")
}

/// Address space a pool of `instances` reserves for their linear memories (`None`: more
/// than a u64 counts).
fn pool_address_space(instances: u32) -> Option<u64> {
    u64::from(instances)
        .checked_mul(u64::from(MEMORIES_PER_INSTANCE))?
        .checked_mul(MEMORY_RESERVATION + MEMORY_GUARD)
}

/// Instances come from preallocated slots: creating one per session is cheap.
fn pool(instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(MEMORIES_PER_INSTANCE))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances);
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
    pool
}

/// `$XDG_CACHE_HOME/wasmtpd`, else `$HOME/.cache/wasmtpd`. A relative `XDG_CACHE_HOME`
/// is ignored, as the XDG specification says.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("wasmtpd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_fits_its_budget_up_to_8128_instances() {
        let fits = |n| pool_address_space(n).is_some_and(|bytes| bytes <= POOL_ADDRESS_SPACE);
        assert!(fits(8128));
        assert!(!fits(8129));
        assert!(!fits(u32::MAX), "no overflow");
    }
}
