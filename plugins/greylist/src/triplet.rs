//! Greylisting's decisions, pure: which triplet a recipient makes, and what its stored
//! entry says to do now.

use std::net::IpAddr;

/// How long things last, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long an unseen triplet is deferred.
    pub delay: u64,
    /// How long a deferred triplet is remembered, waiting for its retry.
    pub retry_window: u64,
    /// How long a triplet that passed is let through without delay (renewed each time).
    pub pass_lifetime: u64,
}

/// The triplet's key: the client's network (IPv4 /24, IPv6 /64, as mail farms retry
/// from a neighbouring address), the sender and the recipient, case folded.
pub fn key(client: &str, sender: &str, recipient: &str) -> String {
    // An IPv4 client of a dual-stack listener comes as ::ffff:a.b.c.d: its /24 counts.
    let network = match client.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(ip)) => {
            let [a, b, c, _] = ip.octets();
            format!("{a}.{b}.{c}")
        }
        Ok(IpAddr::V6(ip)) => {
            let s = ip.segments();
            format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
        }
        Err(_) => client.to_owned(),
    };
    format!(
        "{network}|{}|{}",
        sender.to_ascii_lowercase(),
        recipient.to_ascii_lowercase()
    )
}

/// A stored entry: when the triplet was first seen, and whether it has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Deferred { first_seen: u64 },
    Passed,
}

impl Entry {
    pub fn parse(stored: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(stored).ok()?;
        match text.split_once(' ') {
            Some(("deferred", at)) => at.parse().ok().map(|first_seen| Entry::Deferred { first_seen }),
            _ => (text == "passed").then_some(Entry::Passed),
        }
    }

    pub fn to_text(self) -> String {
        match self {
            Entry::Deferred { first_seen } => format!("deferred {first_seen}"),
            Entry::Passed => "passed".to_owned(),
        }
    }
}

/// What to do with a recipient, and what to store (the entry, and for how long).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Pass { store: (Entry, u64) },
    /// `451`: come back in `retry_in` seconds.
    Defer { store: Option<(Entry, u64)>, retry_in: u64 },
}

pub fn decide(entry: Option<Entry>, now: u64, timing: Timing) -> Decision {
    match entry {
        None => Decision::Defer {
            store: Some((Entry::Deferred { first_seen: now }, timing.retry_window)),
            retry_in: timing.delay.div_ceil(1000),
        },
        Some(Entry::Deferred { first_seen }) if now.saturating_sub(first_seen) < timing.delay => {
            // An early retry changes nothing: the first attempt's time still counts.
            let waited = now.saturating_sub(first_seen);
            Decision::Defer {
                store: None,
                retry_in: (timing.delay - waited).div_ceil(1000),
            }
        }
        Some(_) => Decision::Pass {
            store: (Entry::Passed, timing.pass_lifetime),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        delay: 300_000,
        retry_window: 86_400_000,
        pass_lifetime: 36 * 86_400_000,
    };

    #[test]
    fn the_triplet_is_the_network_and_the_addresses_case_folded() {
        assert_eq!(key("192.0.2.77", "A@X.org", "b@y.org"), "192.0.2|a@x.org|b@y.org");
        assert_eq!(key("192.0.2.1", "", "b@y.org"), "192.0.2||b@y.org");
        assert_eq!(key("2001:db8:1:2:3::9", "a@x", "b@y"), "2001:db8:1:2|a@x|b@y");
        assert_eq!(key("::ffff:192.0.2.77", "a@x", "b@y"), "192.0.2|a@x|b@y");
    }

    #[test]
    fn an_unseen_triplet_is_deferred_and_remembered() {
        assert_eq!(
            decide(None, 1_000, T),
            Decision::Defer {
                store: Some((Entry::Deferred { first_seen: 1_000 }, T.retry_window)),
                retry_in: 300
            }
        );
    }

    #[test]
    fn an_early_retry_is_deferred_for_the_rest_of_the_delay() {
        let entry = Some(Entry::Deferred { first_seen: 1_000 });
        assert_eq!(
            decide(entry, 1_000 + 100_000, T),
            Decision::Defer {
                store: None,
                retry_in: 200
            }
        );
    }

    #[test]
    fn a_retry_after_the_delay_passes_and_so_do_later_ones() {
        let entry = Some(Entry::Deferred { first_seen: 1_000 });
        let pass = Decision::Pass {
            store: (Entry::Passed, T.pass_lifetime),
        };
        assert_eq!(decide(entry, 1_000 + 300_000, T), pass);
        assert_eq!(decide(Some(Entry::Passed), 5, T), pass);
    }

    #[test]
    fn entries_read_back_as_written() {
        for entry in [Entry::Deferred { first_seen: 42 }, Entry::Passed] {
            assert_eq!(Entry::parse(entry.to_text().as_bytes()), Some(entry));
        }
        assert_eq!(Entry::parse(b"junk"), None);
    }
}
