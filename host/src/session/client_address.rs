//! The client's address, with its text made once a session: the session's log lines name
//! it, the message's line among them, and std's formatter took about 2,500 instructions an `ip:port`.

use std::fmt;
use std::net::SocketAddr;

use crate::ip_text::socket_addr_text;

pub(super) struct ClientAddress {
    pub(super) addr: SocketAddr,
    text: Box<str>,
}

impl ClientAddress {
    pub(super) fn new(addr: SocketAddr) -> ClientAddress {
        ClientAddress {
            addr,
            text: socket_addr_text(addr).into_boxed_str(),
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.text)
    }
}
