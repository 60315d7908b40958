//! Which recipients the proxy relays for, and what our client hears when the upstream
//! did not take a message.

use crate::wasmtpd::plugin::host::RelayError;

/// Whether `domains` (a `,`-separated list, `*` for any) covers the recipient's domain.
pub fn relays_for(domains: &str, rcpt_to: &str) -> bool {
    let Some((_, domain)) = rcpt_to.rsplit_once('@') else {
        // `postmaster` without a domain is ours, never relayed.
        return false;
    };
    domains
        .split(',')
        .map(str::trim)
        .any(|d| d == "*" || d.eq_ignore_ascii_case(domain))
}

/// A 5xx from the upstream is final and passed back; anything else is a `451`, so that
/// the client keeps the message and retries.
pub fn reply_for(upstream: &str, error: &RelayError) -> String {
    let reply = match error {
        RelayError::Rejected(reply) if reply.starts_with('5') => return reply.clone(),
        RelayError::Rejected(reply) => format!("451 4.4.0 Upstream {upstream} deferred: {reply}"),
        RelayError::Unavailable(why) => format!("451 4.4.1 Upstream {upstream} unavailable: {why}"),
        RelayError::NotAllowed(why) => format!("451 4.3.5 Relay to {upstream} not allowed: {why}"),
    };
    // A reply line is at most 512 octets with its CRLF.
    truncate(reply, 500)
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_only_for_listed_domains() {
        assert!(relays_for("example.com, example.net", "a@EXAMPLE.com"));
        assert!(!relays_for("example.com", "a@example.org"));
        assert!(!relays_for("", "a@example.com"));
        assert!(!relays_for("example.com", "postmaster"));
        assert!(relays_for("*", "a@anything.example"));
    }

    #[test]
    fn only_an_upstream_5xx_is_final() {
        let rejected = RelayError::Rejected("550 5.1.1 No such user".into());
        assert_eq!(reply_for("u:25", &rejected), "550 5.1.1 No such user");
        let deferred = RelayError::Rejected("452 4.2.2 Mailbox full".into());
        assert_eq!(
            reply_for("u:25", &deferred),
            "451 4.4.0 Upstream u:25 deferred: 452 4.2.2 Mailbox full"
        );
        let down = RelayError::Unavailable("connection refused".into());
        assert!(reply_for("u:25", &down).starts_with("451 4.4.1 "));
        let long = RelayError::Unavailable("x".repeat(1000));
        assert_eq!(reply_for("u:25", &long).len(), 500);
    }
}
