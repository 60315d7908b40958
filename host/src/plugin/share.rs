//! How much of the runtime one tenant's plugin calls may take. Calls run on the runtime's
//! threads, interleaved with sessions' I/O (a guest yields at every epoch tick). Two caps
//! keep a plugin that computes from holding up everyone else: calls at once (half the
//! threads), and CPU time a second (half the threads' time), past which the tenant's
//! calls pause at each tick (see `cpu_budget`).

use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::cpu_budget::CpuBudget;

/// One tenant's share, used by all its chains.
#[derive(Debug)]
pub struct TenantShare {
    /// Its calls at once: calls beyond it wait.
    pub calls: Semaphore,
    /// Its CPU time for plugin code; `None`: no cap.
    pub cpu: Option<CpuBudget>,
}

impl TenantShare {
    /// `calls` at once and `cpu_ms_per_second` (0: no cap), each defaulting to half the
    /// runtime's threads.
    pub fn new(calls: Option<usize>, cpu_ms_per_second: Option<u64>) -> TenantShare {
        let calls = calls.unwrap_or_else(default_concurrent_calls).max(1);
        let cpu = cpu_ms_per_second.unwrap_or_else(default_cpu_ms_per_second);
        TenantShare {
            calls: Semaphore::new(calls),
            cpu: (cpu > 0).then(|| CpuBudget::new(Duration::from_millis(cpu), Instant::now())),
        }
    }
}

/// The runtime's worker threads (see [`crate::worker_threads`]), asked of the runtime
/// itself, so that both are right.
pub fn threads() -> usize {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.metrics().num_workers(),
        Err(_) => std::thread::available_parallelism().map_or(2, |n| n.get()),
    }
}

/// Plugin calls one chain (tenant) may run at once unless configured: half the threads.
fn default_concurrent_calls() -> usize {
    (threads() / 2).max(1)
}

/// CPU time a second one tenant's plugins may use unless configured: half the threads'.
fn default_cpu_ms_per_second() -> u64 {
    (threads() as u64 * 1000 / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_follows_the_runtimes_worker_count() {
        for workers in [1, 2, 4, 6] {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .build()
                .unwrap();
            let (threads, calls) = runtime.block_on(async { (threads(), default_concurrent_calls()) });
            assert_eq!(threads, workers);
            assert_eq!(calls, (workers / 2).max(1));
        }
    }
}
