//! How much of the runtime one tenant's plugin calls may take. Calls run on the runtime's
//! threads, interleaved with sessions' I/O (a guest yields at every epoch tick). Two caps
//! keep a plugin that computes from holding up everyone else: calls at once (half the
//! threads), and CPU time a second (by default all the threads' time while the tenant is
//! the only one calling plugins, half of it divided among the tenants calling them
//! otherwise), past which the tenant's calls pause at each tick (see `cpu_budget`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::cpu_budget::CpuBudget;

/// How recent a tenant's last plugin call must be for it to count as active.
const ACTIVE_WITHIN: Duration = Duration::from_millis(100);
/// How long a count of the active tenants is used before it is made again: it is asked
/// at every epoch tick of every computing call.
const RECOUNT_AFTER: Duration = Duration::from_millis(1);

/// Every tenant's latest plugin call: how many tenants are calling plugins now.
#[derive(Default, Debug)]
pub struct ActiveTenants {
    /// Each tenant's time of its latest call start (ns since `ORIGIN`), by name, so that
    /// a tenant's shares old and new (across reloads) and its listeners' are one tenant.
    latest: Mutex<HashMap<String, Weak<AtomicU64>>>,
    /// The last count, and when it was made (ns since `ORIGIN`).
    counted: AtomicU64,
    counted_at: AtomicU64,
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
    /// The record of the tenant `name`: the one it has if it is still held.
    pub fn activity(&'static self, name: &str) -> Activity {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.retain(|_, cell| cell.strong_count() > 0);
        let cell = latest.get(name).and_then(Weak::upgrade).unwrap_or_else(|| {
            let cell = Arc::new(AtomicU64::new(0));
            latest.insert(name.to_owned(), Arc::downgrade(&cell));
            cell
        });
        Activity {
            latest: cell,
            tenants: self,
        }
    }

    /// Tenants whose latest call started within [`ACTIVE_WITHIN`] of `now`, counted
    /// again at most every [`RECOUNT_AFTER`].
    fn count(&self, now: Instant) -> usize {
        let at = since_origin(now);
        let counted_at = self.counted_at.load(Ordering::Relaxed);
        if counted_at != 0 && at.saturating_sub(counted_at) < RECOUNT_AFTER.as_nanos() as u64 {
            return self.counted.load(Ordering::Relaxed) as usize;
        }
        let since = at.saturating_sub(ACTIVE_WITHIN.as_nanos() as u64);
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let count = latest
            .values()
            .filter_map(Weak::upgrade)
            .filter(|cell| {
                let started = cell.load(Ordering::Relaxed);
                started > 0 && started >= since
            })
            .count();
        self.counted.store(count as u64, Ordering::Relaxed);
        self.counted_at.store(at.max(1), Ordering::Relaxed);
        count
    }
}

impl Activity {
    #[cfg(test)]
    pub fn latest_cell(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.latest)
    }

    /// The tenant starts a plugin call.
    pub fn call_starts(&self, now: Instant) {
        self.latest.store(since_origin(now).max(1), Ordering::Relaxed);
    }

    /// How many tenants are calling plugins, this one counted whatever it last did (it
    /// is computing when it asks, maybe in a call that started long ago).
    pub fn active_tenants(&self, now: Instant) -> usize {
        let since = since_origin(now).saturating_sub(ACTIVE_WITHIN.as_nanos() as u64);
        let started = self.latest.load(Ordering::Relaxed);
        let counted_itself = started > 0 && started >= since;
        self.tenants.count(now) + usize::from(!counted_itself)
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
    /// `tenant` names it among the tenants whose activity the default share counts.
    pub fn new(tenant: &str, calls: Option<usize>, cpu_ms_per_second: Option<u64>) -> TenantShare {
        let calls = calls.unwrap_or_else(default_concurrent_calls).max(1);
        let activity = TENANTS.activity(tenant);
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
