//! Events per client address per time window (connections, commands): fixed windows
//! aligned to the Unix clock, so that every node of a site agrees on when a window
//! starts and, with `rates_redis`, can add its counts to the others' ([`shared`]). The
//! table holds the current window only, and is emptied when the next one starts.

pub mod shared;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Addresses with nothing new whose totals one exchange asks again, at most.
const REFRESHED: usize = 1000;

pub struct RateLimiter {
    max: u32,
    window_ms: u64,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Which window the counts are of: Unix milliseconds / `window_ms`.
    window: u64,
    counts: HashMap<IpAddr, Count>,
}

/// One address's events in the current window.
#[derive(Clone, Copy, Default)]
struct Count {
    /// Allowed by this node.
    here: u32,
    /// Of those, how many the shared store has been told of.
    shared: u32,
    /// The other nodes' events, as the store said at the last exchange.
    others: u32,
}

/// This node's new events of one window, to add to the shared counts.
#[derive(Debug, PartialEq, Eq)]
pub struct Unshared {
    pub window: u64,
    pub counts: Vec<(IpAddr, u32)>,
}

impl RateLimiter {
    pub fn new(max: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            max,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Counts one event from `ip` at `now_ms` (Unix milliseconds): false if it is one too
    /// many in its window, this node's and the others' together.
    pub fn allow(&self, ip: IpAddr, now_ms: u64) -> bool {
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
        if count.here.saturating_add(count.others) >= self.max {
            return false;
        }
        count.here += 1;
        true
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The events counted here that the shared store has not been told of, and, with
    /// nothing new to add, the addresses past half their limit: their totals are asked
    /// again, so that a node learns of what an address does on the others before that
    /// address comes back (at most [`REFRESHED`] of them an exchange).
    pub fn unshared(&self) -> Unshared {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let near_limit = |c: &Count| u64::from(c.here) + u64::from(c.others) >= u64::from(self.max).div_ceil(2);
        let new = table.counts.iter().filter(|(_, c)| c.here > c.shared);
        let refreshed = table
            .counts
            .iter()
            .filter(|(_, c)| c.here == c.shared && near_limit(c))
            .take(REFRESHED);
        let counts = new.chain(refreshed).map(|(ip, c)| (*ip, c.here - c.shared)).collect();
        Unshared {
            window: table.window,
            counts,
        }
    }

    /// The store added `sent` and answered each address's total of all nodes: what is not
    /// this node's is the others'. An answer for a window that has ended is dropped.
    pub fn learn(&self, sent: &Unshared, totals: &[u64]) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.window != sent.window {
            return;
        }
        for ((ip, added), total) in sent.counts.iter().zip(totals) {
            if let Some(count) = table.counts.get_mut(ip) {
                count.shared += added;
                let others = total.saturating_sub(u64::from(count.shared));
                count.others = u32::try_from(others).unwrap_or(u32::MAX);
            }
        }
    }
}

/// Milliseconds since the Unix epoch, the clock the windows are cut from.
pub fn unix_ms() -> u64 {
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
    pub fn allow(&self) -> bool {
        self.limiter.allow(self.ip, unix_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_address_gets_its_count_a_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let (one, two) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let t0 = 1000 * MINUTE;
        assert!(limiter.allow(one, t0));
        assert!(limiter.allow(one, t0 + 1000));
        assert!(!limiter.allow(one, t0 + 59_999));
        assert!(limiter.allow(two, t0 + 59_999));
        // A new window, a new count: windows are cut from the clock, not the first event.
        assert!(limiter.allow(one, t0 + MINUTE));
    }

    #[test]
    fn a_new_window_forgets_every_address() {
        let limiter = RateLimiter::new(1, Duration::from_secs(60));
        for i in 0..1000u32 {
            assert!(limiter.allow(IpAddr::from(i.to_be_bytes()), 0));
        }
        assert!(limiter.allow(ip("198.51.100.1"), MINUTE));
        assert_eq!(limiter.table.lock().unwrap().counts.len(), 1);
    }

    #[test]
    fn the_other_nodes_counts_use_up_the_same_limit() {
        let limiter = RateLimiter::new(5, Duration::from_secs(60));
        let (one, two) = (ip("192.0.2.1"), ip("2001:db8::1"));
        assert!(limiter.allow(one, 0) && limiter.allow(one, 1) && limiter.allow(two, 2));
        let sent = limiter.unshared();
        let mut counts = sent.counts.clone();
        counts.sort();
        assert_eq!(counts, vec![(one, 2), (two, 1)]);
        // The store has 4 for `one` now: 2 of them another node's. `two` is ours alone.
        let totals: Vec<u64> = sent
            .counts
            .iter()
            .map(|(ip, _)| if *ip == one { 4 } else { 1 })
            .collect();
        limiter.learn(&sent, &totals);
        // Nothing new: `one` is past half its limit, so its total is asked again.
        assert_eq!(limiter.unshared().counts, vec![(one, 0)]);
        assert!(limiter.allow(one, 3), "2 here + 2 there + this one = 5");
        assert!(!limiter.allow(one, 4), "a sixth");
        assert_eq!(limiter.unshared().counts, vec![(one, 1)]);
        assert!(limiter.allow(two, 5));
    }

    #[test]
    fn a_node_learns_what_an_address_did_elsewhere_before_it_comes_back() {
        let limiter = RateLimiter::new(4, Duration::from_secs(60));
        let one = ip("192.0.2.1");
        assert!(limiter.allow(one, 0) && limiter.allow(one, 1));
        let sent = limiter.unshared();
        limiter.learn(&sent, &[2]);
        // Another node took the other two; this one hears it with nothing of its own to add.
        let asked = limiter.unshared();
        assert_eq!(asked.counts, vec![(one, 0)]);
        limiter.learn(&asked, &[4]);
        assert!(!limiter.allow(one, 2));
        // An address far from its limit is not asked again.
        let two = ip("192.0.2.2");
        assert!(limiter.allow(two, 3));
        let sent = limiter.unshared();
        limiter.learn(&sent, &[1]);
        assert!(limiter.unshared().counts.iter().all(|(ip, _)| *ip != two));
    }

    #[test]
    fn an_answer_for_an_ended_window_is_dropped_and_unsent_counts_wait() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let one = ip("192.0.2.1");
        assert!(limiter.allow(one, 0));
        let sent = limiter.unshared();
        // The store was away: nothing learnt, the count is still to be sent.
        assert_eq!(limiter.unshared(), sent);
        assert!(limiter.allow(one, MINUTE));
        limiter.learn(&sent, &[3]);
        assert!(limiter.allow(one, MINUTE + 1), "the old window's total did not count");
        assert_eq!(limiter.unshared().counts, vec![(one, 2)]);
    }
}
