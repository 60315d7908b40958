//! A tenant's CPU time for plugin code: a token bucket that fills at the tenant's
//! CPU-milliseconds a second and holds a tenth of a second's worth; a tenant owes a second
//! of it at most. Each epoch tick charges the guest time since the last one; under a cap,
//! each call's end also charges what it ran since its last tick (all of a call shorter
//! than a tick, for which the clock does not tick, and of its instance's start). A tenant
//! over its share pauses, at the tick or before the call answers, until the bucket is back
//! to empty. Its clients are slowed, none refused, and the threads go to the other tenants.
//!
//! The rate is either a configured cap, held to at all times, or (the default) a share:
//! all the threads' time, except while the tenant computes and another is light (one whose
//! calls are all short: sessions that wait on the threads for each answer): then a fifth
//! of it, divided among the tenants calling plugins (see [`super::share::ActiveTenants`]). On
//! one thread, a tenant that computes beside one that serves gets a tenth of it, because
//! the other's sessions wait behind each of its slices. In `bench/run tenants` the other
//! kept 0.84-0.89 of its throughput alone (six runs); with a quarter divided (an eighth
//! each) 0.80-0.89, with half (a quarter each) 0.59-0.86.
//! Computing tenants share the threads among themselves at the ticks, so that none of the
//! threads' time is left idle, and light tenants do not hold each other back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::share::{Activity, Contention};

/// What the bucket holds, in seconds of its rate: how long a tenant may run over its
/// share before it is slowed down.
const BURST: f64 = 0.1;

/// The most a tenant may owe, in seconds of its rate: a pause owed is never longer than
/// this, however much it computed meanwhile.
const MOST_OWED: f64 = 1.0;

/// While others wait, the tenants calling plugins share this part of the threads' time.
const CONTENDED: f64 = 0.2;

#[derive(Debug)]
pub struct CpuBudget {
    rate: Rate,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
enum Rate {
    /// CPU seconds a second, always.
    Cap(f64),
    /// `threads` seconds a second, and [`CONTENDED`] of that divided among the active
    /// tenants while another, light, tenant is active.
    WhileOthersWait { threads: f64, activity: Activity },
}

#[derive(Debug)]
struct Bucket {
    /// Seconds of CPU the tenant may still use; below zero, it owes.
    level: f64,
    at: Instant,
}

impl CpuBudget {
    /// `per_second`: CPU time the tenant's plugins may use each second (over 1 s, more
    /// than one thread).
    pub fn new(per_second: Duration, now: Instant) -> CpuBudget {
        CpuBudget::with_rate(Rate::Cap(per_second.as_secs_f64()), now)
    }

    /// The default share of a tenant whose calls `activity` records, on `threads` threads.
    pub fn yielding(threads: usize, activity: Activity, now: Instant) -> CpuBudget {
        let threads = threads as f64;
        CpuBudget::with_rate(Rate::WhileOthersWait { threads, activity }, now)
    }

    fn with_rate(rate: Rate, now: Instant) -> CpuBudget {
        let level = rate.at(now) * BURST;
        CpuBudget {
            rate,
            bucket: Mutex::new(Bucket { level, at: now }),
        }
    }

    /// Charges `used` of guest time at `now`; the pause the tenant owes, zero if none.
    pub fn charge(&self, used: Duration, now: Instant) -> Duration {
        let rate = self.rate.at(now);
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let filled = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.level = ((bucket.level + filled).min(rate * BURST) - used.as_secs_f64()).max(-rate * MOST_OWED);
        // A call's end may be charged after a later tick of another call: never back.
        bucket.at = bucket.at.max(now);
        if bucket.level >= 0.0 || rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.level / rate)
    }

    /// Charges `used`, what a call ran after its last tick, at the call's end; the pause
    /// owed. Only a configured cap counts it: the default share weighs tenants that
    /// compute, which the ticks measure, not short calls.
    pub fn charge_call_end(&self, used: Duration, now: Instant) -> Duration {
        match self.rate {
            Rate::Cap(_) => self.charge(used, now),
            Rate::WhileOthersWait { .. } => Duration::ZERO,
        }
    }
}

impl Rate {
    /// CPU seconds a second at `now`.
    fn at(&self, now: Instant) -> f64 {
        match self {
            Rate::Cap(rate) => *rate,
            Rate::WhileOthersWait { threads, activity } => match activity.contention(now) {
                Contention { others_waiting: 0, .. } | Contention { light_itself: true, .. } => *threads,
                Contention { active, .. } => threads * CONTENDED / active.max(1) as f64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Equal to a microsecond: the bucket counts in floating point.
    fn assert_close(got: Duration, want: Duration) {
        let off = got.abs_diff(want);
        assert!(off < Duration::from_micros(1), "{got:?}, not {want:?}");
    }

    #[test]
    fn within_its_share_a_tenant_never_pauses() {
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 500, t0);
        // 1 ms of guest time every 2 ms is its share exactly.
        for i in 1..=1000 {
            assert_close(budget.charge(MS, t0 + MS * (2 * i)), Duration::ZERO);
        }
    }

    #[test]
    fn over_its_share_it_pauses_for_what_it_owes() {
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 500, t0);
        // The burst: 50 ms of CPU at once is allowed ...
        assert_eq!(budget.charge(MS * 50, t0), Duration::ZERO);
        // ... 10 ms more owes 10 ms, which takes 20 ms to earn at half a CPU.
        assert_close(budget.charge(MS * 10, t0), MS * 20);
        // Running on without pausing, the debt grows by what it used beyond what it earned.
        assert_close(budget.charge(MS * 10, t0 + MS * 10), MS * 30);
    }

    #[test]
    fn what_it_owes_is_a_second_at_most_and_time_never_runs_back() {
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 10, t0);
        // 5 s of computing at 10 ms a second would owe 500 s: a second at most.
        assert_close(budget.charge(MS * 5000, t0), Duration::from_secs(1));
        // A call's end charged after a later tick does not refill the time between.
        assert_close(budget.charge(Duration::ZERO, t0 + MS * 100), MS * 900);
        assert_close(budget.charge(Duration::ZERO, t0 + MS * 50), MS * 900);
    }

    #[test]
    fn the_default_share_gives_way_only_while_a_light_tenant_is_active() {
        let t0 = Instant::now();
        let tenants: &'static _ = Box::leak(Box::new(super::super::share::ActiveTenants::default()));
        let (busy, other) = (tenants.activity("busy"), tenants.activity("other"));
        // The same name is the same tenant (a reload's new share, a listener's).
        assert!(tenants.activity("busy").is_the_same_tenant_as(&busy));
        assert!(!other.is_the_same_tenant_as(&busy));
        busy.call_starts(t0);
        let budget = CpuBudget::yielding(1, busy.clone(), t0);
        // Alone, the whole thread: 1 ms of guest time each ms never pauses.
        for i in 1..=500 {
            busy.call_starts(t0 + MS * i);
            assert_eq!(budget.charge(MS, t0 + MS * i), Duration::ZERO, "alone, at {i} ms");
        }
        // Another tenant that computes too, with short calls between (a hook that answers
        // at once): they share the thread at the ticks, and neither is held back.
        let t1 = t0 + MS * 500;
        for i in 1..=200 {
            let now = t1 + MS * i;
            other.call_starts(now);
            if i % 2 == 0 {
                other.short_call_ends(now);
            } else {
                other.computes(now);
            }
            assert_eq!(
                budget.charge(MS, now),
                Duration::ZERO,
                "beside a computing tenant, at {i} ms"
            );
        }
        // Once it has computed nothing for longer than the window, it is light: a fifth
        // of the thread divided between the two, so 1 ms a ms owes, even in one call that
        // started long before. 100 ms used against 10 earned, and a burst of 10, owe
        // 80 ms: 800 ms to earn at a tenth.
        let t2 = t1 + MS * 300;
        let owed = (1..=100)
            .map(|i| {
                other.call_starts(t2 + MS * i);
                other.short_call_ends(t2 + MS * i);
                budget.charge(MS, t2 + MS * i)
            })
            .last()
            .unwrap();
        assert!(owed > MS * 795 && owed < MS * 805, "{owed:?}");
        // The other quiet for longer than the window: alone again.
        let t3 = t2 + Duration::from_secs(5);
        busy.call_starts(t3);
        assert_eq!(budget.charge(MS * 50, t3), Duration::ZERO);
    }

    #[test]
    fn a_light_tenant_neither_counts_itself_nor_gives_way_to_another() {
        let t0 = Instant::now();
        let tenants: &'static _ = Box::leak(Box::new(super::super::share::ActiveTenants::default()));
        let (light, computing) = (tenants.activity("light"), tenants.activity("computing"));
        let also_light = tenants.activity("also light");
        // Its ticks charge 1 ms a ms, more than any share.
        let budget = CpuBudget::yielding(1, light.clone(), t0);
        for i in 1..=300 {
            let now = t0 + MS * i;
            light.call_starts(now);
            light.short_call_ends(now);
            also_light.call_starts(now);
            also_light.short_call_ends(now);
            computing.call_starts(now);
            computing.computes(now);
            assert_eq!(budget.charge(MS, now), Duration::ZERO, "at {i} ms");
        }
    }

    #[test]
    fn a_bucket_left_alone_fills_to_its_burst_only() {
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 200, t0);
        // An hour idle earns 20 ms (a tenth of a second at 200 ms a second), no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(budget.charge(MS * 20, later), Duration::ZERO);
        assert_close(budget.charge(MS * 2, later), MS * 10);
    }
}
