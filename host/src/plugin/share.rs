//! How much of the runtime one tenant's plugin calls may take. Calls run on the runtime's
//! threads, interleaved with sessions' I/O (a guest yields at every epoch tick). Two caps
//! keep a plugin that computes from holding up everyone else: calls at once (half the
//! threads), and CPU time a second (by default all the threads' time, except while the
//! tenant computes and another is light: then a fifth of it divided among the tenants
//! calling plugins), past which the tenant's calls pause at each tick, and under a cap
//! at the end of a call too short to tick (see `cpu_budget`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::cpu_budget::CpuBudget;
use super::epoch::EPOCH_TICK;

/// How recent a tenant's last plugin call must be for it to count as active.
const ACTIVE_WITHIN: Duration = Duration::from_millis(100);
/// How long a count of the active tenants is used before it is made again: it is asked
/// at every epoch tick of every computing call.
const RECOUNT_AFTER: Duration = Duration::from_millis(1);

/// A call that ran less guest time than this is short: its session was waiting on the
/// thread for an answer it got at once; a call that ran more computes.
/// While a tenant whose calls in the last [`ACTIVE_WITHIN`] were all short (a light one)
/// is active, a computing tenant gives way (see [`super::cpu_budget`]); computing tenants
/// share the threads among themselves at the ticks.
const SHORT_CALL: Duration = EPOCH_TICK;

/// Every tenant's latest plugin calls: how many tenants are calling plugins now, and how
/// many of them are light.
#[derive(Default, Debug)]
pub struct ActiveTenants {
    /// Each tenant's calls, by name, so that a tenant's shares old and new (across
    /// reloads) and its listeners' are one tenant.
    latest: Mutex<HashMap<String, Weak<LatestCalls>>>,
    /// The last count ([`Counted`], packed), and when it was made (ns since `ORIGIN`).
    counted: AtomicU64,
    counted_at: AtomicU64,
}

/// When a tenant last started a call, last ended a short one, and was last seen computing
/// (ns since `ORIGIN`; 0: never).
#[derive(Default, Debug)]
struct LatestCalls {
    started: AtomicU64,
    short_ended: AtomicU64,
    computing: AtomicU64,
}

impl LatestCalls {
    /// Active since `since` (a call started, or one computing, maybe a long one that
    /// started before), and light: short calls, none computing.
    fn seen(&self, since: u64) -> (bool, bool) {
        let computing = within(self.computing.load(Ordering::Relaxed), since);
        let active = computing || within(self.started.load(Ordering::Relaxed), since);
        let light = within(self.short_ended.load(Ordering::Relaxed), since) && !computing;
        (active, light)
    }
}

/// Tenants that started a call within [`ACTIVE_WITHIN`], and those of them that are light.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    active: u32,
    light: u32,
}

impl Counted {
    fn pack(self) -> u64 {
        u64::from(self.active) << 32 | u64::from(self.light)
    }

    fn unpack(packed: u64) -> Counted {
        Counted {
            active: (packed >> 32) as u32,
            light: packed as u32,
        }
    }
}

/// What one tenant sees of the others when its plugin computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contention {
    /// Tenants calling plugins, the one asking included.
    pub active: usize,
    /// Other tenants that are light: their sessions wait on the threads for each answer.
    pub others_waiting: usize,
    /// This tenant is light itself: a short call of its crossed a tick. Light tenants
    /// are not held back for each other.
    pub light_itself: bool,
}

/// One tenant's record in [`ActiveTenants`].
#[derive(Clone, Debug)]
pub struct Activity {
    latest: Arc<LatestCalls>,
    tenants: &'static ActiveTenants,
}

/// The tenants of this process.
static TENANTS: LazyLock<ActiveTenants> = LazyLock::new(ActiveTenants::default);
/// What the times in [`ActiveTenants`] count from.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_origin(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*ORIGIN).as_nanos()).unwrap_or(u64::MAX)
}

/// Whether `at` (ns since `ORIGIN`, 0: never) is at or after `since`.
fn within(at: u64, since: u64) -> bool {
    at > 0 && at >= since
}

impl ActiveTenants {
    /// The record of the tenant `name`: the one it has if it is still held.
    pub fn activity(&'static self, name: &str) -> Activity {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.retain(|_, calls| calls.strong_count() > 0);
        let calls = latest.get(name).and_then(Weak::upgrade).unwrap_or_else(|| {
            let calls = Arc::new(LatestCalls::default());
            latest.insert(name.to_owned(), Arc::downgrade(&calls));
            calls
        });
        Activity {
            latest: calls,
            tenants: self,
        }
    }

    /// The tenants active within [`ACTIVE_WITHIN`] of `now`, counted again at most every
    /// [`RECOUNT_AFTER`].
    fn count(&self, now: Instant) -> Counted {
        let at = since_origin(now);
        let counted_at = self.counted_at.load(Ordering::Relaxed);
        if counted_at != 0 && at.saturating_sub(counted_at) < RECOUNT_AFTER.as_nanos() as u64 {
            return Counted::unpack(self.counted.load(Ordering::Relaxed));
        }
        let since = at.saturating_sub(ACTIVE_WITHIN.as_nanos() as u64);
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted = Counted { active: 0, light: 0 };
        for calls in latest.values().filter_map(Weak::upgrade) {
            let (active, light) = calls.seen(since);
            counted.active += u32::from(active);
            counted.light += u32::from(light);
        }
        self.counted.store(counted.pack(), Ordering::Relaxed);
        self.counted_at.store(at.max(1), Ordering::Relaxed);
        counted
    }
}

impl Activity {
    #[cfg(test)]
    pub fn is_the_same_tenant_as(&self, other: &Activity) -> bool {
        Arc::ptr_eq(&self.latest, &other.latest)
    }

    /// The tenant starts a plugin call.
    pub fn call_starts(&self, now: Instant) {
        self.latest.started.store(since_origin(now).max(1), Ordering::Relaxed);
    }

    /// A call of the tenant's ended at `now`, having run `ran` of guest time: short, or
    /// computing (known at its end even for a call no tick saw).
    pub fn call_ends(&self, ran: Duration, now: Instant) {
        match ran < SHORT_CALL {
            true => self.short_call_ends(now),
            false => self.computes(now),
        }
    }

    /// A call of the tenant's has run `ran` of guest time at a tick: computing, past
    /// [`SHORT_CALL`].
    pub fn ticked(&self, ran: Duration, now: Instant) {
        if ran >= SHORT_CALL {
            self.computes(now);
        }
    }

    /// A call of the tenant's ended having computed less than [`SHORT_CALL`].
    pub fn short_call_ends(&self, now: Instant) {
        self.latest
            .short_ended
            .store(since_origin(now).max(1), Ordering::Relaxed);
    }

    /// A call of the tenant's has computed [`SHORT_CALL`] or more, and goes on.
    pub fn computes(&self, now: Instant) {
        let at = since_origin(now).max(1);
        let before = self.latest.computing.swap(at, Ordering::Relaxed);
        // It may have been counted light: the next count must not see it so, or it would
        // hold itself back as a light "other" for up to RECOUNT_AFTER.
        if !within(before, at.saturating_sub(ACTIVE_WITHIN.as_nanos() as u64)) {
            self.tenants.counted_at.store(0, Ordering::Relaxed);
        }
    }

    /// The other tenants as this one sees them while it computes: counted active itself
    /// whatever it last did (it is computing when it asks, maybe in a call that started
    /// long ago), and not among those waiting.
    pub fn contention(&self, now: Instant) -> Contention {
        let since = since_origin(now).saturating_sub(ACTIVE_WITHIN.as_nanos() as u64);
        let counted = self.tenants.count(now);
        let (counted_itself, light_itself) = self.latest.seen(since);
        Contention {
            active: counted.active as usize + usize::from(!counted_itself),
            // A count up to RECOUNT_AFTER old may not have it light yet.
            others_waiting: (counted.light as usize).saturating_sub(usize::from(light_itself)),
            light_itself,
        }
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
    /// cap (0: none); by default a share (see [`super::cpu_budget`]).
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
    fn a_tenant_that_starts_computing_is_not_taken_for_light_by_the_last_count() {
        let t0 = Instant::now();
        let tenants: &'static _ = Box::leak(Box::new(ActiveTenants::default()));
        let (turning, other) = (tenants.activity("turning"), tenants.activity("other"));
        turning.call_starts(t0);
        turning.short_call_ends(t0);
        // Counted: it is light, and active.
        let seen = other.contention(t0);
        assert_eq!((seen.active, seen.others_waiting), (2, 1));
        // In the same millisecond, a call of its computes: the count is made again.
        turning.computes(t0);
        let itself = turning.contention(t0);
        assert_eq!(
            (itself.active, itself.others_waiting, itself.light_itself),
            (1, 0, false)
        );
        assert_eq!(other.contention(t0).others_waiting, 0);
        // Long after its call started, still computing: still active.
        let later = t0 + Duration::from_secs(5);
        turning.computes(later);
        assert_eq!(other.contention(later).active, 2);
    }

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
