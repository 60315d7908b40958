//! Listeners behind a load balancer: the PROXY protocol header (v1 or v2) that names the
//! real client, read before the session starts, and taken only from trusted sources.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use wasmtpd_protocol::{ProxyHeaderError, parse_proxy_header};

/// A listener's `[listener.proxy_protocol]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyProtocol {
    /// The load balancers' addresses or networks (`10.0.0.0/8`, `2001:db8::/32`,
    /// `127.0.0.1`). A connection from anywhere else is refused: a client that reaches
    /// the listener directly must not name its own address.
    pub trusted: Vec<AddressRange>,
}

impl ProxyProtocol {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|range| range.contains(ip))
    }
}

/// An address or a network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket is the same client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(text: &str) -> Result<AddressRange, String> {
        let bad = || format!("{text:?} is not an address or a network (like 10.0.0.0/8)");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= bits).ok_or_else(bad)?,
            None => bits,
        };
        Ok(AddressRange { network, prefix })
    }
}

impl<'de> Deserialize<'de> for AddressRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AddressRange, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why no session starts on a PROXY listener's connection.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error(transparent)]
    Malformed(#[from] ProxyHeaderError),
    #[error("no PROXY header within {0:?}")]
    TimedOut(Duration),
    #[error("closed before its PROXY header ended")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads the header: the client's address (the connection's own `peer` if the header
/// names none) and whatever the client sent after it, for the session to read first.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<(SocketAddr, BytesMut), HeaderError> {
    // Enough for any v1 header and for v2 with IPv6 addresses; the parser bounds the
    // rest (v1 at 107 octets, v2 at its 16-bit length).
    let mut input = BytesMut::with_capacity(512);
    let read = async {
        loop {
            if let Some(header) = parse_proxy_header(&input)? {
                let early = input.split_off(header.len);
                return Ok((header.source.unwrap_or(peer), early));
            }
            input.reserve(512);
            if stream.read_buf(&mut input).await? == 0 {
                return Err(HeaderError::Closed);
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| HeaderError::TimedOut(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> AddressRange {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_hold_their_networks_only() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(range("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(range("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!range("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(range("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(range("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!range("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(!range("2001:db8::/32").contains(ip("10.0.0.1")));
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0/8",
            "host.example",
            "10.0.0.0/",
            "/8",
        ] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_header_names_the_client_and_keeps_what_follows() {
        let peer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let (mut client, mut server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move { read_header(&mut server, peer, Duration::from_secs(10)).await });
        // Split across writes, with the client's first command behind it.
        use tokio::io::AsyncWriteExt;
        client.write_all(b"PROXY TCP4 192.0.2.10 10.0.0.1 ").await.unwrap();
        client.write_all(b"56324 25\r\nEHLO x\r\n").await.unwrap();
        let (source, early) = reader.await.unwrap().unwrap();
        assert_eq!(source, "192.0.2.10:56324".parse().unwrap());
        assert_eq!(&early[..], b"EHLO x\r\n");
    }

    #[tokio::test]
    async fn no_header_in_time_or_a_closed_connection_is_an_error() {
        let peer: SocketAddr = "10.0.0.2:40000".parse().unwrap();
        let (_client, mut server) = tokio::io::duplex(64);
        let waited = read_header(&mut server, peer, Duration::from_millis(50)).await;
        assert!(matches!(waited, Err(HeaderError::TimedOut(_))), "{waited:?}");
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        let closed = read_header(&mut server, peer, Duration::from_secs(10)).await;
        assert!(matches!(closed, Err(HeaderError::Closed)), "{closed:?}");
    }
}
