//! A bare SMTP client on a socket, for what real clients never send.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;

use crate::server::WAIT;

/// A TCP connection or a Unix socket's.
pub trait Connection: Read + Write + Send {}
impl<T: Read + Write + Send> Connection for T {}

pub struct RawClient {
    reader: BufReader<Box<dyn Connection>>,
}

impl RawClient {
    /// A client on a connected Unix socket; nothing read yet.
    pub fn from_unix(stream: UnixStream) -> RawClient {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        RawClient {
            reader: BufReader::new(Box::new(stream)),
        }
    }

    /// Connects and returns the client with the greeting read.
    pub fn connect(addr: SocketAddr) -> (RawClient, String) {
        RawClient::connect_after(addr, b"")
    }

    /// Connects to a PROXY-protocol listener as the client `ip` (a v1 header naming it).
    pub fn connect_as(addr: SocketAddr, ip: &str) -> (RawClient, String) {
        let family = if ip.contains(':') { "TCP6" } else { "TCP4" };
        let local = if ip.contains(':') { "::1" } else { "127.0.0.1" };
        RawClient::connect_after(addr, format!("PROXY {family} {ip} {local} 5000 25\r\n").as_bytes())
    }

    /// Connects, sends `prelude` (a PROXY header, say) and reads the greeting, which is
    /// empty if the server closed the connection instead.
    pub fn connect_after(addr: SocketAddr, prelude: &[u8]) -> (RawClient, String) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(prelude).unwrap();
        let mut client = RawClient {
            reader: BufReader::new(Box::new(stream)),
        };
        let greeting = client.reply();
        (client, greeting)
    }

    /// Connects, checks the greeting and says EHLO.
    pub fn ehlo(addr: SocketAddr) -> RawClient {
        let (mut client, greeting) = RawClient::connect(addr);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        client.expect("EHLO client.test", "250-");
        client
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// One whole reply, lines joined with `\n`; empty if the server closed the connection.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("reading a reply") == 0 {
                return lines.join("\n");
            }
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    pub fn expect(&mut self, command: &str, reply_start: &str) -> String {
        self.send(format!("{command}\r\n").as_bytes());
        let reply = self.reply();
        assert!(
            reply.starts_with(reply_start),
            "{command:?} got {reply:?}, wanted {reply_start:?}"
        );
        reply
    }

    /// Asserts the server closed the connection.
    pub fn expect_closed(&mut self) {
        let reply = self.reply();
        assert!(reply.is_empty(), "expected the connection closed, got {reply:?}");
    }

    /// MAIL, RCPT and DATA for one recipient, up to the 354.
    pub fn start_message(&mut self) {
        self.start_message_to("b@example.com");
    }

    /// Sends `text` as the message (after `354`) and the final dot; returns the reply.
    pub fn finish_message(&mut self, text: &str) -> String {
        self.send(format!("{text}.\r\n").as_bytes());
        self.reply()
    }

    /// A fresh session (EHLO) sending one plain message; the reply to the final dot.
    pub fn one_message(addr: SocketAddr) -> String {
        RawClient::ehlo(addr).send_message("Subject: t\r\n\r\nbody\r\n")
    }

    /// A whole transaction for one recipient, with `text` as the message; returns the
    /// reply to the final dot.
    pub fn send_message(&mut self, text: &str) -> String {
        self.start_message();
        self.finish_message(text)
    }

    pub fn start_message_to(&mut self, rcpt: &str) {
        self.expect("MAIL FROM:<a@example.org>", "250 2.1.0");
        self.expect(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5");
        self.expect("DATA", "354 ");
    }
}
