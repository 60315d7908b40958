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

/// A 5xx from the upstream is final and passed back as the upstream worded it (the
/// client must know why its mail was refused); anything else is a `451`, so that the
/// client keeps the message and retries. Our own replies never name the upstream nor say
/// why it failed: that is internal, and goes to the log.
pub fn reply_for(error: &RelayError) -> String {
    match error {
        // A reply line is at most 512 octets with its CRLF.
        RelayError::Rejected(reply) if reply.starts_with('5') => truncate(reply.clone(), 500),
        RelayError::Rejected(_) => "451 4.4.0 Upstream deferred the message, try again later".into(),
        RelayError::Unavailable(_) => "451 4.4.1 Upstream unavailable, try again later".into(),
        RelayError::NotAllowed(_) => "451 4.3.5 Cannot relay this message, try again later".into(),
    }
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
        assert_eq!(reply_for(&rejected), "550 5.1.1 No such user");
        let long = RelayError::Rejected(format!("550 {}", "x".repeat(1000)));
        assert_eq!(reply_for(&long).len(), 500);
        let deferred = RelayError::Rejected("452 4.2.2 Mailbox full".into());
        assert_eq!(
            reply_for(&deferred),
            "451 4.4.0 Upstream deferred the message, try again later"
        );
    }

    #[test]
    fn our_replies_never_name_the_upstream_nor_why() {
        for error in [
            RelayError::Rejected("421 4.3.2 mx.internal.example shutting down".into()),
            RelayError::Unavailable("connect 10.0.0.5:25: Connection refused (os error 111)".into()),
            RelayError::NotAllowed("10.0.0.5:25 is not in this plugin's `relay` list".into()),
        ] {
            let reply = reply_for(&error);
            assert!(reply.starts_with("451 4."), "{reply}");
            for internal in ["10.0.0.5", "internal", "os error", "relay` list"] {
                assert!(!reply.contains(internal), "{reply}");
            }
        }
    }
}
