//! How much of the runtime one tenant's plugin calls may take. Calls run on the runtime's
//! threads, interleaved with sessions' I/O (a guest yields at every epoch tick). Two caps
//! keep a plugin that computes from holding up everyone else: calls at once (half the
//! threads), and CPU time a second (by default all the threads' time while the tenant is
//! the only one calling plugins, half of it divided among the tenants calling them
//! otherwise), past which the tenant's calls pause at each tick (see `cpu_budget`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::cpu_budget::CpuBudget;

/// How recent a tenant's last plugin call must be for it to count as active.
const ACTIVE_WITHIN: Duration = Duration::from_millis(100);

/// Every tenant's latest plugin call: how many tenants are calling plugins now.
#[derive(Default, Debug)]
pub struct ActiveTenants {
    /// Each tenant's time of its latest call start (ns since `ORIGIN`); a tenant that is
    /// gone leaves a dead entry, swept when counting.
    latest: Mutex<Vec<Weak<AtomicU64>>>,
}

/// One tenant's record in [`ActiveTenants`].
#[derive(Clone, Debug)]
pub struct Activity {
    latest: Arc<AtomicU64>,
    tenants: &'static ActiveTenants,
}

/// The tenants of this process.
static TENANTS: LazyLock<ActiveTenants> = LazyLock::new(ActiveTenants::default);
/// What the times in [`ActiveTenants`] count from.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*ORIGIN).as_nanos()).unwrap_or(u64::MAX)
}

impl ActiveTenants {
    /// A new tenant's record, never active until it calls.
    pub fn activity(&'static self) -> Activity {
        let latest = Arc::new(AtomicU64::new(0));
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&latest));
        Activity { latest, tenants: self }
    }

    /// Tenants whose latest call started within [`ACTIVE_WITHIN`] of `now`.
    fn count(&self, now: Instant) -> usize {
        let since = since_origin(now).saturating_sub(ACTIVE_WITHIN.as_nanos() as u64);
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.retain(|cell| cell.strong_count() > 0);
        latest
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|cell| {
                let at = cell.load(Ordering::Relaxed);
                at > 0 && at >= since
            })
            .count()
    }
}

impl Activity {
    /// The tenant starts a plugin call.
    pub fn call_starts(&self, now: Instant) {
        self.latest.store(since_origin(now).max(1), Ordering::Relaxed);
    }

    /// How many tenants, this one included, are calling plugins.
    pub fn active_tenants(&self, now: Instant) -> usize {
        self.tenants.count(now)
    }
}

/// One tenant's share, used by all its chains.
#[derive(Debug)]
pub struct TenantShare {
    /// Its calls at once: calls beyond it wait.
    pub calls: Semaphore,
    /// Its CPU time for plugin code; `None`: no cap.
    pub cpu: Option<CpuBudget>,
    /// When it last called a plugin, which the other tenants' default shares count.
    pub activity: Activity,
}

impl TenantShare {
    /// `calls` at once (by default half the runtime's threads) and `cpu_ms_per_second`, a
    /// cap (0: none); by default all the threads' time while no other tenant calls
    /// plugins, and half of it divided among the tenants that do while others do.
    pub fn new(calls: Option<usize>, cpu_ms_per_second: Option<u64>) -> TenantShare {
        let calls = calls.unwrap_or_else(default_concurrent_calls).max(1);
        let activity = TENANTS.activity();
        let now = Instant::now();
        let cpu = match cpu_ms_per_second {
            Some(0) => None,
            Some(cap) => Some(CpuBudget::new(Duration::from_millis(cap), now)),
            None => Some(CpuBudget::yielding(threads(), activity.clone(), now)),
        };
        TenantShare {
            calls: Semaphore::new(calls),
            cpu,
            activity,
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
