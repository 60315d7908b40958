//! Listeners behind a load balancer: the PROXY protocol header (v1 or v2) that names the
//! real client, read before the session starts, and taken only from trusted sources.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use wasmtpd_protocol::{ProxyHeaderError, parse_proxy_header};

use crate::address_range::AddressRange;

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
