//! Addresses as text, written without `core::fmt`: every session names its client in the
//! log and to its plugins, and std's formatters (a `write!` and a padded integer for each
//! octet) took about 2,000 instructions an address, 2-3% of a small message's.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Appends the address as `Display` writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        // Rarer, and its shortest form (RFC 5952) is std's to get right.
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// The address as `Display` writes it: `192.0.2.1`, `2001:db8::1`.
pub fn ip_text(ip: IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, ip);
    out
}

/// The socket address as `Display` writes it: `192.0.2.1:25`, `[2001:db8::1]:25`.
pub fn socket_addr_text(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(21);
    match addr {
        SocketAddr::V4(_) => push_ip(&mut out, addr.ip()),
        SocketAddr::V6(v6) => {
            // Display writes the scope of a link-local address too; rare enough for std.
            if v6.scope_id() != 0 {
                return addr.to_string();
            }
            out.push('[');
            push_ip(&mut out, addr.ip());
            out.push(']');
        }
    }
    out.push(':');
    out.push_str(itoa::Buffer::new().format(addr.port()));
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, SocketAddrV6};

    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let addresses = [
            "0.0.0.0:0",
            "127.0.0.1:25",
            "192.0.2.255:65535",
            "10.20.30.40:2525",
            "[::1]:25",
            "[2001:db8::1]:587",
            "[::ffff:192.0.2.1]:25",
            "[2001:db8:0:0:1:0:0:1]:25",
        ];
        for text in addresses {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(socket_addr_text(addr), addr.to_string(), "{text}");
            assert_eq!(ip_text(addr.ip()), addr.ip().to_string(), "{text}");
        }
        let scoped = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 25, 0, 3));
        assert_eq!(socket_addr_text(scoped), "[fe80::1%3]:25");
    }
}
