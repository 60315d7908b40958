//! `wasmtpd health`: asks a running server's metrics listener whether it is alive
//! (`/healthz`) or ready (`/readyz`), for a container's HEALTHCHECK or an orchestrator's
//! exec probe where no HTTP client is installed. Exit 0 on 200, 1 otherwise.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// How long the whole probe may take: a probe that hangs is a failed one.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Where to ask: a server listening on every address (`0.0.0.0`, `::`) answers on loopback.
pub fn probe_address(metrics: SocketAddr) -> SocketAddr {
    match metrics.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), metrics.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), metrics.port()),
        _ => metrics,
    }
}

/// The status line of an HTTP response, if it is one.
pub fn status_line(response: &[u8]) -> Option<&str> {
    let line = response.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    line.starts_with("HTTP/1.").then_some(line)
}

/// Asks `metrics` for `/readyz` (`ready`) or `/healthz`; prints the answer.
pub fn probe(metrics: SocketAddr, ready: bool) -> anyhow::Result<ExitCode> {
    let address = probe_address(metrics);
    let path = if ready { "/readyz" } else { "/healthz" };
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)
        .with_context(|| format!("health: cannot connect to the metrics listener on {address}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut response)
        .with_context(|| format!("health: no answer from {address}"))?;
    let status = status_line(&response).with_context(|| format!("health: {address} did not answer HTTP"))?;
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |end| &response[end + 4..]);
    println!("{path}: {status}: {}", String::from_utf8_lossy(body).trim());
    Ok(match status.split(' ').nth(1) {
        Some("200") => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_every_address_is_asked_on_loopback() {
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        assert_eq!(probe_address(any), "127.0.0.1:9090".parse().unwrap());
        let any6: SocketAddr = "[::]:9090".parse().unwrap();
        assert_eq!(probe_address(any6), "[::1]:9090".parse().unwrap());
        let one: SocketAddr = "10.0.0.5:9090".parse().unwrap();
        assert_eq!(probe_address(one), one);
    }

    #[test]
    fn the_status_line_is_read_from_the_response() {
        assert_eq!(
            status_line(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nready\n"),
            Some("HTTP/1.1 200 OK")
        );
        assert_eq!(
            status_line(b"HTTP/1.1 503 Service Unavailable\r\n"),
            Some("HTTP/1.1 503 Service Unavailable")
        );
        assert_eq!(status_line(b"220 mx ESMTP\r\n"), None);
        assert_eq!(status_line(b""), None);
    }
}
