//! The `Received:` field the server stamps on each message it passes on (RFC 5321 4.4),
//! and the id that names the message in that field and in the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use wasmtpd_protocol::Address;

/// How the message came: the `with` clause of RFC 3848.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// After HELO.
    Smtp,
    /// After EHLO, in the clear.
    Esmtp,
    /// After EHLO, over TLS.
    Esmtps,
    /// Over TLS, the client authenticated.
    Esmtpsa,
    /// LMTP (RFC 2033), and the same over TLS, authenticated or not (RFC 3848).
    Lmtp,
    Lmtps,
    Lmtpsa,
}

impl Protocol {
    pub fn of(extended: bool, lmtp: bool, tls: bool, authenticated: bool) -> Protocol {
        match (lmtp, extended, tls, authenticated) {
            (true, _, true, true) => Protocol::Lmtpsa,
            (true, _, true, false) => Protocol::Lmtps,
            (true, _, false, _) => Protocol::Lmtp,
            (false, false, _, _) => Protocol::Smtp,
            (false, true, true, true) => Protocol::Esmtpsa,
            (false, true, true, false) => Protocol::Esmtps,
            (false, true, false, _) => Protocol::Esmtp,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Smtp => "SMTP",
            Protocol::Esmtp => "ESMTP",
            Protocol::Esmtps => "ESMTPS",
            Protocol::Esmtpsa => "ESMTPSA",
            Protocol::Lmtp => "LMTP",
            Protocol::Lmtps => "LMTPS",
            Protocol::Lmtpsa => "LMTPSA",
        }
    }
}

/// What the trace says of one message.
pub struct Trace<'a> {
    /// The name the client gave at HELO/EHLO (checked by the command parser).
    pub helo: &'a str,
    pub peer: SocketAddr,
    /// Our name.
    pub by: &'a str,
    pub protocol: Protocol,
    pub id: &'a str,
    /// Named when it is the only one (RFC 5321 4.4: more would disclose Bcc recipients).
    pub recipients: &'a [Address],
    pub date: OffsetDateTime,
}

impl Trace<'_> {
    /// The field, folded, without its final CRLF.
    pub fn received(&self) -> String {
        // The client's name is written only if it is a domain or an address literal: it
        // must not be able to forge the rest of the field (`;` starts the date).
        let helo = if is_domain_or_literal(self.helo) {
            self.helo
        } else {
            "unknown"
        };
        let date = self.date.format(&Rfc2822).unwrap_or_default();
        let for_clause = match self.recipients {
            [one] => format!("\r\n\tfor <{}>", one.as_str()),
            _ => String::new(),
        };
        format!(
            "Received: from {} ([{}])\r\n\tby {} (wasmtpd) with {} id {}{for_clause};\r\n\t{date}",
            helo,
            self.peer.ip(),
            self.by,
            self.protocol.name(),
            self.id,
        )
    }
}

/// A domain (`mx.example.com`) or an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
fn is_domain_or_literal(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        let address = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !name.is_empty()
        && name.len() <= 255
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A new message id: the time in microseconds and a counter, in hex; unique within this
/// server, and practically across restarts.
pub fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{micros:X}{n:04X}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtpd_protocol::header::check_value;

    fn trace(recipients: &[Address]) -> String {
        Trace {
            helo: "client.example",
            peer: "192.0.2.7:40000".parse().unwrap(),
            by: "mx.example.com",
            protocol: Protocol::of(true, false, true, false),
            id: "61A2B3C4D5E6F0001",
            recipients,
            date: OffsetDateTime::from_unix_timestamp(1_795_000_000).unwrap(),
        }
        .received()
    }

    #[test]
    fn the_received_field_names_client_server_protocol_id_and_date() {
        let one = [Address::new_unchecked("b@example.com")];
        assert_eq!(
            trace(&one),
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.example.com (wasmtpd) with ESMTPS id 61A2B3C4D5E6F0001\r\n\tfor <b@example.com>;\r\n\tWed, 18 Nov 2026 11:06:40 +0000"
        );
        // Two recipients are not named.
        let two = [
            Address::new_unchecked("b@example.com"),
            Address::new_unchecked("c@example.com"),
        ];
        assert!(!trace(&two).contains("for <"));
        // It is a well-formed, folded field.
        let value = trace(&one).split_once(':').unwrap().1.to_owned();
        assert_eq!(check_value(&value), Ok(()));
    }

    #[test]
    fn a_helo_name_that_is_not_a_domain_is_not_written() {
        for (name, written) in [
            ("client.example", "client.example"),
            ("[192.0.2.1]", "[192.0.2.1]"),
            ("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"),
            ("x;Mon, 1 Jan 2000", "unknown"),
            ("naïve.example", "unknown"),
            ("a..b", "unknown"),
            ("", "unknown"),
        ] {
            let field = Trace {
                helo: name,
                peer: "192.0.2.7:1".parse().unwrap(),
                by: "mx",
                protocol: Protocol::Smtp,
                id: "1",
                recipients: &[],
                date: OffsetDateTime::UNIX_EPOCH,
            }
            .received();
            assert!(
                field.starts_with(&format!("Received: from {written} ([")),
                "{name:?}: {field}"
            );
        }
    }

    #[test]
    fn protocols_follow_rfc_3848() {
        assert_eq!(Protocol::of(false, false, true, true).name(), "SMTP");
        assert_eq!(Protocol::of(true, false, false, false).name(), "ESMTP");
        assert_eq!(Protocol::of(true, false, true, false).name(), "ESMTPS");
        assert_eq!(Protocol::of(true, false, true, true).name(), "ESMTPSA");
        assert_eq!(Protocol::of(true, true, false, false).name(), "LMTP");
        assert_eq!(Protocol::of(true, true, true, true).name(), "LMTPSA");
    }

    #[test]
    fn ids_differ() {
        assert_ne!(new_id(), new_id());
    }
}
