//! Events per client address per time window (connections, commands): fixed windows
//! aligned to the Unix clock, so that every node of a site agrees on when a window
//! starts. With a [`SharedRates`] store (`limits.rates_redis`) the nodes hold one limit
//! together: a node lets an event through on a lease of events it took from Redis, and
//! asks for more when its lease is used up; while Redis does not answer it counts alone
//! and adds what it let through to Redis at its next lease. The table holds the current
//! window only, and is emptied when the next one starts.

pub mod shared;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use shared::{Lease, SharedRates};

pub struct RateLimiter {
    /// Its name in the shared store's keys.
    name: &'static str,
    max: u32,
    window_ms: u64,
    table: Mutex<Table>,
    shared: Option<Arc<SharedRates>>,
}

#[derive(Default)]
struct Table {
    /// Which window the counts are of: Unix milliseconds / `window_ms`.
    window: u64,
    counts: HashMap<IpAddr, Count>,
}

/// One address's events in the current window.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Count {
    /// Let through by this node.
    here: u32,
    /// Events leased from the shared store and not yet used.
    leased: u32,
    /// The store granted nothing: the address is at its limit on all nodes together.
    exhausted: bool,
    /// Let through while the store did not answer, to add to it at the next lease.
    debt: u32,
}

/// What this node can say about an event without the shared store.
#[derive(Debug, PartialEq, Eq)]
enum Local {
    Allowed,
    Refused,
    /// The lease is used up: ask the store for more, adding `debt`.
    Ask {
        window: u64,
        debt: u32,
    },
}

impl RateLimiter {
    /// A limit this node holds with the others that use `shared`, if given.
    pub fn sharing(name: &'static str, max: u32, window: Duration, shared: Option<Arc<SharedRates>>) -> RateLimiter {
        RateLimiter {
            name,
            max,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            table: Mutex::new(Table::default()),
            shared,
        }
    }

    /// Counts one event from `ip` now: false if it is one too many in its window.
    pub async fn allow(&self, ip: IpAddr) -> bool {
        let store_up = self.shared.as_ref().is_some_and(|s| s.is_up());
        match self.decide(ip, unix_ms(), store_up) {
            Local::Allowed => true,
            Local::Refused => false,
            Local::Ask { window, debt } => {
                let shared = self.shared.as_ref().expect("only a shared limit asks");
                let lease = Lease {
                    name: self.name,
                    window,
                    window_ms: self.window_ms,
                    ip,
                    wanted: self.lease_size(),
                    max: self.max,
                    debt,
                };
                let lease = shared.lease(&lease).await;
                self.leased(ip, window, debt, lease.ok())
            }
        }
    }

    /// Events a lease asks for: one when the limit is small (each is then exact), more
    /// for a big one, so that a busy address costs a round trip every few events. A node
    /// that does not use its lease holds those events from the others until the window
    /// ends: at most (nodes - 1) x (lease - 1), about a tenth of the limit for 3 nodes.
    fn lease_size(&self) -> u32 {
        (self.max / 20).clamp(1, 100)
    }

    /// The decision from this node's counts at `now_ms`; `store_up`: whether the shared
    /// store answered lately (else the node counts alone).
    fn decide(&self, ip: IpAddr, now_ms: u64, store_up: bool) -> Local {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let window = now_ms / self.window_ms;
        if table.window != window {
            // A new table, not a cleared one: a scan's many addresses give their memory back.
            *table = Table {
                window,
                counts: HashMap::new(),
            };
        }
        let count = table.counts.entry(ip).or_default();
        if self.shared.is_none() || !store_up {
            if count.here >= self.max {
                return Local::Refused;
            }
            count.here += 1;
            if self.shared.is_some() {
                count.debt += 1;
            }
            return Local::Allowed;
        }
        if count.leased > 0 {
            count.leased -= 1;
            count.here += 1;
            return Local::Allowed;
        }
        if count.exhausted {
            return Local::Refused;
        }
        // Taken out: two asks at once must not both add it.
        Local::Ask {
            window,
            debt: std::mem::take(&mut count.debt),
        }
    }

    /// The store's answer to a lease asked with `debt` for `ip` in `window`: `Some(granted)`
    /// events (the debt was added), or `None` if it did not answer (then this node decides
    /// alone, and keeps the debt for the next lease).
    fn leased(&self, ip: IpAddr, window: u64, debt: u32, granted: Option<u32>) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.window != window {
            // The window ended while the store was asked: the event is the new window's
            // (decided on this node's count; the old window's debt is dropped with it).
            let now_ms = table.window * self.window_ms;
            drop(table);
            return self.decide(ip, now_ms, false) == Local::Allowed;
        }
        let count = table.counts.entry(ip).or_default();
        let Some(granted) = granted else {
            count.debt += debt;
            if count.here >= self.max {
                return false;
            }
            count.here += 1;
            count.debt += 1;
            return true;
        };
        if granted == 0 {
            count.exhausted = true;
            return false;
        }
        count.leased += granted - 1;
        count.here += 1;
        true
    }
}

/// Milliseconds since the Unix epoch, the clock the windows are cut from.
fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// One session's share of its address's command rate.
#[derive(Clone)]
pub struct CommandBudget {
    pub limiter: Arc<RateLimiter>,
    pub ip: IpAddr,
}

impl CommandBudget {
    pub async fn allow(&self) -> bool {
        self.limiter.allow(self.ip).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn alone(max: u32) -> RateLimiter {
        RateLimiter::sharing("test", max, Duration::from_secs(60), None)
    }

    /// A limit shared through a store that is never reached (the tests answer for it).
    fn shared(max: u32) -> RateLimiter {
        let store = SharedRates::new("redis://127.0.0.1:1/0", Default::default()).unwrap();
        RateLimiter::sharing("test", max, Duration::from_secs(60), Some(store))
    }

    #[test]
    fn each_address_gets_its_count_a_window() {
        let limiter = alone(2);
        let (one, two) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let t0 = 1000 * MINUTE;
        assert_eq!(limiter.decide(one, t0, false), Local::Allowed);
        assert_eq!(limiter.decide(one, t0 + 1000, false), Local::Allowed);
        assert_eq!(limiter.decide(one, t0 + 59_999, false), Local::Refused);
        assert_eq!(limiter.decide(two, t0 + 59_999, false), Local::Allowed);
        // A new window, a new count: windows are cut from the clock, not the first event.
        assert_eq!(limiter.decide(one, t0 + MINUTE, false), Local::Allowed);
    }

    #[test]
    fn a_new_window_forgets_every_address() {
        let limiter = alone(1);
        for i in 0..1000u32 {
            assert_eq!(limiter.decide(IpAddr::from(i.to_be_bytes()), 0, false), Local::Allowed);
        }
        assert_eq!(limiter.decide(ip("198.51.100.1"), MINUTE, false), Local::Allowed);
        assert_eq!(limiter.table.lock().unwrap().counts.len(), 1);
    }

    #[test]
    fn a_shared_limit_lets_events_through_on_leases_until_the_store_has_none() {
        let limiter = shared(40);
        assert_eq!(limiter.lease_size(), 2);
        let one = ip("192.0.2.1");
        assert_eq!(limiter.decide(one, 0, true), Local::Ask { window: 0, debt: 0 });
        // Two granted: this event and the next go through without asking.
        assert!(limiter.leased(one, 0, 0, Some(2)));
        assert_eq!(limiter.decide(one, 1, true), Local::Allowed);
        assert_eq!(limiter.decide(one, 2, true), Local::Ask { window: 0, debt: 0 });
        // The others used the rest: refused, and not asked again in this window.
        assert!(!limiter.leased(one, 0, 0, Some(0)));
        assert_eq!(limiter.decide(one, 3, true), Local::Refused);
        assert_eq!(limiter.decide(one, MINUTE, true), Local::Ask { window: 1, debt: 0 });
    }

    #[test]
    fn without_the_store_a_node_counts_alone_and_pays_its_debt_at_the_next_lease() {
        let limiter = shared(3);
        let one = ip("192.0.2.1");
        assert_eq!(limiter.lease_size(), 1);
        // The store does not answer: the node decides on its own count.
        assert_eq!(limiter.decide(one, 0, true), Local::Ask { window: 0, debt: 0 });
        assert!(limiter.leased(one, 0, 0, None));
        assert_eq!(limiter.decide(one, 1, false), Local::Allowed);
        assert_eq!(limiter.decide(one, 2, false), Local::Allowed);
        assert_eq!(limiter.decide(one, 3, false), Local::Refused, "three here: the limit");
        // Back: the three are added to the store with the next lease, which is refused.
        assert_eq!(limiter.decide(one, 4, true), Local::Ask { window: 0, debt: 3 });
        assert!(!limiter.leased(one, 0, 3, Some(0)));
        assert_eq!(limiter.table.lock().unwrap().counts[&one].debt, 0);
    }

    #[test]
    fn two_asks_at_once_add_the_debt_once_and_a_failed_ask_keeps_it() {
        let limiter = shared(10);
        let one = ip("192.0.2.1");
        assert!(limiter.leased(one, 0, 0, None) && limiter.leased(one, 0, 0, None));
        // Two sessions of the address ask at once: only the first carries the debt.
        assert_eq!(limiter.decide(one, 1, true), Local::Ask { window: 0, debt: 2 });
        assert_eq!(limiter.decide(one, 2, true), Local::Ask { window: 0, debt: 0 });
        // The first fails: its debt is kept, with its own event, for the next lease.
        assert!(limiter.leased(one, 0, 2, None));
        assert!(limiter.leased(one, 0, 0, Some(1)));
        assert_eq!(limiter.decide(one, 3, true), Local::Ask { window: 0, debt: 3 });
    }

    #[test]
    fn a_lease_answered_after_its_window_ended_counts_in_the_new_one() {
        let limiter = shared(1);
        let one = ip("192.0.2.1");
        assert_eq!(limiter.decide(one, 0, true), Local::Ask { window: 0, debt: 0 });
        // Meanwhile the next window started (another event of it made the new table).
        assert_eq!(limiter.decide(ip("192.0.2.2"), MINUTE, false), Local::Allowed);
        assert!(limiter.leased(one, 0, 0, Some(1)));
        assert_eq!(limiter.table.lock().unwrap().counts[&one].here, 1);
    }
}
