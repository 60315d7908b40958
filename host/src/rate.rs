//! Events per client address per time window (connections, commands): a fixed window a
//! client, started by its first event. Addresses whose window has passed are forgotten
//! when the table grows, so a scan from many addresses cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses remembered before the table is swept of expired windows.
const SWEEP_AT: usize = 4096;

pub struct RateLimiter {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event from `ip` at `now`: false if it is one too many in its window.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
        }
        let window = windows.entry(ip).or_insert(Window { started: now, count: 0 });
        if now.duration_since(window.started) >= self.window {
            *window = Window { started: now, count: 0 };
        }
        if window.count >= self.max {
            return false;
        }
        window.count += 1;
        true
    }
}

/// One session's share of its address's command rate.
#[derive(Clone)]
pub struct CommandBudget {
    pub limiter: Arc<RateLimiter>,
    pub ip: IpAddr,
}

impl CommandBudget {
    pub fn allow(&self) -> bool {
        self.limiter.allow(self.ip, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_its_count_a_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let (one, two): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.allow(one, t0));
        assert!(limiter.allow(one, t0 + Duration::from_secs(1)));
        assert!(!limiter.allow(one, t0 + Duration::from_secs(59)));
        assert!(limiter.allow(two, t0 + Duration::from_secs(59)));
        // A new window, a new count.
        assert!(limiter.allow(one, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn expired_windows_are_swept_when_the_table_is_full() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            assert!(limiter.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        let later = t0 + Duration::from_secs(61);
        assert!(limiter.allow("198.51.100.1".parse().unwrap(), later));
        assert_eq!(limiter.windows.lock().unwrap().len(), 1);
    }
}
