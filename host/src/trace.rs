//! The `Received:` field the server stamps on each message it passes on (RFC 5321 4.4),
//! and the id that names the message in that field and in the log.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc2822;
use time::{OffsetDateTime, UtcOffset};
use wasmtpd_protocol::Address;

use crate::ip_text::push_ip;

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
        // Written piece by piece: every message gets one, and `format!` with the date's
        // and the address's formatters was 4,000 instructions of a small message's 100,000.
        let named = self.recipients.first().map_or(0, |r| r.as_str().len());
        let mut field = String::with_capacity(160 + helo.len() + self.by.len() + self.id.len() + named);
        field.push_str("Received: from ");
        field.push_str(helo);
        field.push_str(" ([");
        push_ip(&mut field, self.peer.ip());
        field.push_str("])\r\n\tby ");
        field.push_str(self.by);
        field.push_str(" (wasmtpd) with ");
        field.push_str(self.protocol.name());
        field.push_str(" id ");
        field.push_str(self.id);
        if let [one] = self.recipients {
            field.push_str("\r\n\tfor <");
            field.push_str(one.as_str());
            field.push('>');
        }
        field.push_str(";\r\n\t");
        push_date(&mut field, self.date);
        field
    }
}

/// The date as RFC 5322 writes it, formatted once a second: messages that arrive in the
/// same second share it.
fn push_date(field: &mut String, date: OffsetDateTime) {
    thread_local! {
        static LAST: RefCell<(i64, UtcOffset, String)> = const { RefCell::new((i64::MIN, UtcOffset::UTC, String::new())) };
    }
    LAST.with_borrow_mut(|(second, offset, text)| {
        if (*second, *offset) != (date.unix_timestamp(), date.offset()) {
            *text = date.format(&Rfc2822).unwrap_or_default();
            (*second, *offset) = (date.unix_timestamp(), date.offset());
        }
        field.push_str(text);
    });
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
    // Not `format!`: its hex formatting of a u128 was 2,000 instructions a message.
    let mut id = String::with_capacity(24);
    push_upper_hex(&mut id, micros, 1);
    push_upper_hex(&mut id, u128::from(n), 4);
    id
}

/// Appends `value` as `{value:0width$X}` would (for a `width` of at most 32).
fn push_upper_hex(out: &mut String, mut value: u128, width: usize) {
    let mut digits = [b'0'; 32];
    let mut start = digits.len();
    while value > 0 {
        start -= 1;
        digits[start] = b"0123456789ABCDEF"[(value & 0xf) as usize];
        value >>= 4;
    }
    start = start.min(digits.len().saturating_sub(width.max(1)));
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtpd_protocol::header::check_value;

    #[test]
    fn hex_digits_are_written_as_format_writes_them() {
        for value in [
            0u128,
            1,
            0xf,
            0x10,
            0xabc,
            0xffff,
            0x1_0000,
            0x6_2A1B_3C4D_5E6F,
            u128::MAX,
        ] {
            for width in [1, 4] {
                let mut out = String::new();
                push_upper_hex(&mut out, value, width);
                assert_eq!(out, format!("{value:0width$X}"), "{value} {width}");
            }
        }
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(
            a.len() >= 17 && a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{a}"
        );
    }

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
    fn each_message_gets_its_own_date_and_address() {
        let field = |peer: &str, at: i64| {
            Trace {
                helo: "c",
                peer: peer.parse().unwrap(),
                by: "mx",
                protocol: Protocol::Smtp,
                id: "1",
                recipients: &[],
                date: OffsetDateTime::from_unix_timestamp(at).unwrap(),
            }
            .received()
        };
        // The date written once a second is not kept past its second.
        assert!(field("10.0.0.1:1", 0).ends_with("\tThu, 01 Jan 1970 00:00:00 +0000"));
        assert!(field("10.0.0.1:1", 0).ends_with("\tThu, 01 Jan 1970 00:00:00 +0000"));
        assert!(field("10.0.0.1:1", 1).ends_with("\tThu, 01 Jan 1970 00:00:01 +0000"));
        assert!(field("10.0.0.1:1", 86_400).ends_with("\tFri, 02 Jan 1970 00:00:00 +0000"));
        // The same second at another offset is another text.
        let offset = Trace {
            helo: "c",
            peer: "10.0.0.1:1".parse().unwrap(),
            by: "mx",
            protocol: Protocol::Smtp,
            id: "1",
            recipients: &[],
            date: OffsetDateTime::from_unix_timestamp(86_400)
                .unwrap()
                .to_offset(UtcOffset::from_hms(2, 0, 0).unwrap()),
        }
        .received();
        assert!(offset.ends_with("\tFri, 02 Jan 1970 02:00:00 +0200"), "{offset}");
        for (peer, written) in [
            ("0.0.0.0:1", "[0.0.0.0]"),
            ("9.10.99.100:1", "[9.10.99.100]"),
            ("255.255.255.255:1", "[255.255.255.255]"),
            ("[2001:db8::7]:25", "[2001:db8::7]"),
        ] {
            assert!(
                field(peer, 0).starts_with(&format!("Received: from c ({written})\r\n")),
                "{peer}"
            );
        }
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
