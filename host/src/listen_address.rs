//! Where a listener listens: a TCP address, or a Unix socket (`unix:/path`), which is how
//! an LMTP server is usually reached from the same machine.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ListenAddress {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// The client address of a session that came through a Unix socket: this machine, no
/// port. Plugins see `127.0.0.1`, and the per-address limits (which spare loopback) do
/// not apply.
pub const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl ListenAddress {
    /// Whether only this machine can connect (loopback, or a Unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            ListenAddress::Tcp(address) => address.ip().is_loopback(),
            ListenAddress::Unix(_) => true,
        }
    }

    /// A Unix socket's path, for a relative one to be resolved.
    pub fn path_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            ListenAddress::Tcp(_) => None,
            ListenAddress::Unix(path) => Some(path),
        }
    }

    /// A TCP address with port 0: any free port, a new one at each bind.
    pub fn is_any_port(&self) -> bool {
        matches!(self, ListenAddress::Tcp(address) if address.port() == 0)
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::Tcp(address) => address.fmt(f),
            ListenAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenAddress, String> {
        match text.strip_prefix("unix:") {
            Some("") => Err("unix: needs a path, like unix:/run/wasmtpd/lmtp.sock".into()),
            Some(path) => Ok(ListenAddress::Unix(PathBuf::from(path))),
            None => text
                .parse()
                .map(ListenAddress::Tcp)
                .map_err(|_| format!("{text:?} is not ADDRESS:PORT (like 127.0.0.1:25) or unix:/path")),
        }
    }
}

impl From<SocketAddr> for ListenAddress {
    fn from(address: SocketAddr) -> ListenAddress {
        ListenAddress::Tcp(address)
    }
}

impl<'de> Deserialize<'de> for ListenAddress {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ListenAddress, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses_and_unix_paths_parse_and_print_as_written() {
        for text in [
            "127.0.0.1:25",
            "[::1]:24",
            "unix:/run/wasmtpd/lmtp.sock",
            "unix:relative.sock",
        ] {
            let address: ListenAddress = text.parse().unwrap();
            assert_eq!(address.to_string(), text);
        }
        for bad in ["unix:", "localhost:25", "127.0.0.1", "/run/lmtp.sock"] {
            assert!(bad.parse::<ListenAddress>().is_err(), "{bad}");
        }
        assert!("unix:/x".parse::<ListenAddress>().unwrap().is_local());
        assert!("127.0.0.1:0".parse::<ListenAddress>().unwrap().is_any_port());
        assert!(!"0.0.0.0:25".parse::<ListenAddress>().unwrap().is_local());
    }
}
