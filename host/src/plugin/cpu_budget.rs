//! A tenant's CPU time for plugin code: a token bucket that fills at the tenant's
//! CPU-milliseconds a second and holds a tenth of a second's worth. Each epoch tick charges
//! the guest time since the last one (so calls shorter than a tick, most of them, are
//! free); a tenant over its share pauses at the tick until the bucket is back to empty.
//! Its clients are slowed, none refused, and the threads go to the other tenants.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the bucket holds, in seconds of its rate: how long a tenant may run over its
/// share before it is slowed down.
const BURST: f64 = 0.1;

#[derive(Debug)]
pub struct CpuBudget {
    /// CPU seconds a second.
    rate: f64,
    bucket: Mutex<Bucket>,
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
        let rate = per_second.as_secs_f64();
        CpuBudget {
            rate,
            bucket: Mutex::new(Bucket {
                level: rate * BURST,
                at: now,
            }),
        }
    }

    /// Charges `used` of guest time at `now`; the pause the tenant owes, zero if none.
    pub fn charge(&self, used: Duration, now: Instant) -> Duration {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let filled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.level = (bucket.level + filled).min(self.rate * BURST) - used.as_secs_f64();
        bucket.at = now;
        if bucket.level >= 0.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.level / self.rate)
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
    fn a_bucket_left_alone_fills_to_its_burst_only() {
        let t0 = Instant::now();
        let budget = CpuBudget::new(MS * 200, t0);
        // An hour idle earns 20 ms (a tenth of a second at 200 ms a second), no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(budget.charge(MS * 20, later), Duration::ZERO);
        assert_close(budget.charge(MS * 2, later), MS * 10);
    }
}
