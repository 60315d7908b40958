//! The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer sends
//! before the client's first byte, naming the client it connected for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's first twelve octets.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included.
pub const V1_MAX: usize = 107;

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address; `None` when the proxy speaks for itself (v2 LOCAL, v1
    /// UNKNOWN, or an address family other than TCP over IPv4/IPv6): the connection's own
    /// address stands.
    pub source: Option<SocketAddr>,
    /// Octets the header took; what follows is the client's.
    pub len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
}

/// Parses the header at the start of `input`: `Ok(None)` when more octets are needed.
pub fn parse_proxy_header(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    let prefix = |whole: &[u8]| input.len() < whole.len() && whole.starts_with(input);
    if input.starts_with(&V2_SIGNATURE) {
        parse_v2(input)
    } else if input.starts_with(b"PROXY ") {
        parse_v1(input)
    } else if prefix(&V2_SIGNATURE) || prefix(b"PROXY ") {
        Ok(None)
    } else {
        Err(ProxyHeaderError::Missing)
    }
}

fn parse_v1(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    use ProxyHeaderError::V1;
    let Some(end) = input.iter().take(V1_MAX).position(|&b| b == b'\n') else {
        return if input.len() >= V1_MAX {
            Err(V1("longer than 107 octets"))
        } else {
            Ok(None)
        };
    };
    let line = input[..end].strip_suffix(b"\r").ok_or(V1("no CR before LF"))?;
    let line = std::str::from_utf8(line).map_err(|_| V1("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let len = end + 1;
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Some(ProxyHeader { source: None, len })),
        [
            "PROXY",
            family @ ("TCP4" | "TCP6"),
            source,
            destination,
            source_port,
            destination_port,
        ] => {
            let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
                let ip: IpAddr = text.parse().map_err(|_| V1("bad address"))?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(V1("address of the wrong family")),
                }
            };
            let port = |text: &str| -> Result<u16, ProxyHeaderError> {
                // Decimal without leading zeros (the spec's own rule).
                if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
                    return Err(V1("bad port"));
                }
                text.parse().map_err(|_| V1("bad port"))
            };
            let source = SocketAddr::new(ip(source)?, port(source_port)?);
            ip(destination)?;
            port(destination_port)?;
            Ok(Some(ProxyHeader {
                source: Some(source),
                len,
            }))
        }
        ["PROXY", "TCP4" | "TCP6", ..] => Err(V1("wrong number of fields")),
        _ => Err(V1("unknown protocol")),
    }
}

fn parse_v2(input: &[u8]) -> Result<Option<ProxyHeader>, ProxyHeaderError> {
    use ProxyHeaderError::V2;
    let Some(fixed) = input.get(..16) else {
        return Ok(None);
    };
    let (version_command, family) = (fixed[12], fixed[13]);
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if version_command >> 4 != 2 {
        return Err(V2("version is not 2"));
    }
    let Some(body) = input.get(16..16 + body_len) else {
        return Ok(None);
    };
    let len = 16 + body_len;
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection (a health check); the addresses are ignored.
        0x0 => Ok(Some(ProxyHeader { source: None, len })),
        0x1 => {
            let source = match family {
                // TCP over IPv4: source, destination, source port, destination port.
                0x11 => {
                    let a = body.get(..12).ok_or(V2("IPv4 addresses cut short"))?;
                    let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                    Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
                }
                0x21 => {
                    let a = body.get(..36).ok_or(V2("IPv6 addresses cut short"))?;
                    let octets: [u8; 16] = a[..16].try_into().expect("sixteen octets");
                    let ip = Ipv6Addr::from(octets);
                    Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[32], a[33]])))
                }
                // UNSPEC, UDP, UNIX sockets: no TCP client to speak of.
                _ => None,
            };
            Ok(Some(ProxyHeader { source, len }))
        }
        _ => Err(V2("unknown command")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.extend([0x20 | command, family]);
        header.extend((body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    fn source(input: &[u8]) -> Result<Option<(Option<SocketAddr>, usize)>, ProxyHeaderError> {
        parse_proxy_header(input).map(|h| h.map(|h| (h.source, h.len)))
    }

    #[test]
    fn version_1_names_the_client() {
        let line = b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\nEHLO x\r\n";
        assert_eq!(source(line), Ok(Some((Some("192.0.2.10:56324".parse().unwrap()), 45))));
        let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 25\r\n";
        assert_eq!(
            source(line),
            Ok(Some((Some("[2001:db8::1]:4000".parse().unwrap()), line.len())))
        );
        let line = b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n";
        assert_eq!(source(line), Ok(Some((None, line.len()))));
        assert_eq!(source(b"PROXY UNKNOWN\r\n"), Ok(Some((None, 15))));
    }

    #[test]
    fn version_1_waits_for_its_line_and_refuses_what_is_wrong() {
        for partial in [
            &b""[..],
            b"PRO",
            b"PROXY ",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r",
        ] {
            assert_eq!(source(partial), Ok(None), "{partial:?}");
        }
        let bad: [&[u8]; 9] = [
            b"PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 025 25\r\n",
            b"PROXY TCP4 192.0.2.999 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 1 25\n",
            b"PROXY UDP4 192.0.2.10 198.51.100.1 1 25\r\n",
            b"PROXY TCP4  192.0.2.10 198.51.100.1 1 25\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 1 25 extra\r\n",
        ];
        for line in bad {
            assert!(matches!(source(line), Err(ProxyHeaderError::V1(_))), "{line:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(source(&long), Err(ProxyHeaderError::V1("longer than 107 octets")));
        assert_eq!(source(b"EHLO client\r\n"), Err(ProxyHeaderError::Missing));
        assert_eq!(source(b"\r\n\r\nX"), Err(ProxyHeaderError::Missing));
    }

    #[test]
    fn version_2_names_the_client_and_skips_its_tlvs() {
        let mut ipv4 = vec![192, 0, 2, 10, 198, 51, 100, 1];
        ipv4.extend(56324u16.to_be_bytes());
        ipv4.extend(25u16.to_be_bytes());
        ipv4.extend([0x04, 0x00, 0x01, 0xff]); // a TLV (NOOP) after the addresses
        let mut header = v2(1, 0x11, &ipv4);
        let len = header.len();
        header.extend_from_slice(b"EHLO x\r\n");
        assert_eq!(
            source(&header),
            Ok(Some((Some("192.0.2.10:56324".parse().unwrap()), len)))
        );

        let mut ipv6 = Vec::new();
        ipv6.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        ipv6.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        ipv6.extend(4000u16.to_be_bytes());
        ipv6.extend(25u16.to_be_bytes());
        assert_eq!(
            source(&v2(1, 0x21, &ipv6)),
            Ok(Some((Some("[2001:db8::1]:4000".parse().unwrap()), 52)))
        );
        // LOCAL, and a family without a TCP client: the connection's address stands.
        assert_eq!(source(&v2(0, 0x11, &ipv4)), Ok(Some((None, len))));
        assert_eq!(source(&v2(1, 0x31, &[0; 216])), Ok(Some((None, 232))));
    }

    #[test]
    fn version_2_waits_for_its_length_and_refuses_what_is_wrong() {
        let whole = v2(1, 0x11, &[192, 0, 2, 10, 198, 51, 100, 1, 0, 1, 0, 25]);
        for cut in 0..whole.len() {
            assert_eq!(source(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        let mut version_1 = whole.clone();
        version_1[12] = 0x11;
        assert_eq!(source(&version_1), Err(ProxyHeaderError::V2("version is not 2")));
        assert_eq!(source(&v2(2, 0x11, &[])), Err(ProxyHeaderError::V2("unknown command")));
        assert_eq!(
            source(&v2(1, 0x11, &[1, 2, 3])),
            Err(ProxyHeaderError::V2("IPv4 addresses cut short"))
        );
        assert_eq!(
            source(&v2(1, 0x21, &[0; 20])),
            Err(ProxyHeaderError::V2("IPv6 addresses cut short"))
        );
    }
}
