//! Abuse limits on the real binary: a client that talks before the greeting, too many
//! connections or commands a minute from one address. Each gets its reply and a log line.
//! Loopback is exempt from the per-address limits, so the clients here come through a
//! PROXY-protocol listener that names a remote address.

use std::time::{Duration, Instant};

use crate::raw::RawClient;
use crate::server::Server;

/// A remote client, as a PROXY header names it.
const REMOTE: &str = "192.0.2.10";

fn with_limits(limits: &str) -> (Server, std::net::SocketAddr) {
    let mut server = Server::from_config(&format!(
        "[limits]\n{limits}\n[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n"
    ));
    let address = server.addresses(1)[0];
    (server, address)
}

/// Connects as `ip` and says EHLO.
fn ehlo_as(address: std::net::SocketAddr, ip: &str) -> RawClient {
    let (mut client, greeting) = RawClient::connect_as(address, ip);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    client.expect("EHLO client.test", "250-");
    client
}

#[test]
fn a_client_that_talks_before_the_greeting_is_refused() {
    let (mut server, address) = with_limits("greeting_delay_ms = 300");
    let proxy_header = format!("PROXY TCP4 {REMOTE} 127.0.0.1 5000 25\r\n");
    let (mut early, reply) = RawClient::connect_after(address, format!("{proxy_header}EHLO spam.test\r\n").as_bytes());
    assert!(reply.starts_with("554 "), "{reply:?}");
    early.expect_closed();
    server.wait_for_log("talked before the greeting");

    let started = Instant::now();
    let (mut patient, greeting) = RawClient::connect_as(address, REMOTE);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "greeted after {:?}",
        started.elapsed()
    );
    patient.expect("EHLO client.test", "250-");
    assert!(patient.send_message("Subject: hi\r\n\r\nhi\r\n").starts_with("250 "));
}

#[test]
fn connections_a_minute_from_one_address_are_limited() {
    let (mut server, address) = with_limits("connections_per_ip_per_minute = 2\ntrusted_networks = [\"10.0.0.0/8\"]");
    for _ in 0..2 {
        let (mut client, greeting) = RawClient::connect_as(address, REMOTE);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        client.expect("QUIT", "221");
    }
    // A trusted network and loopback have no such limit.
    for ip in ["10.1.2.3", "127.0.0.1"] {
        for _ in 0..4 {
            ehlo_as(address, ip).expect("QUIT", "221");
        }
    }
    let (mut third, reply) = RawClient::connect_as(address, REMOTE);
    assert!(reply.starts_with("421 "), "{reply:?}");
    assert!(reply.contains("Too many connections from your address"), "{reply:?}");
    third.expect_closed();
    server.wait_for_log("TooFastFromAddress");
}

#[test]
fn commands_a_minute_from_one_address_are_limited_across_its_sessions() {
    let (mut server, address) = with_limits("commands_per_ip_per_minute = 6");
    let mut first = ehlo_as(address, REMOTE);
    for _ in 0..3 {
        first.expect("NOOP", "250");
    }
    // Loopback's commands are not counted.
    let mut local = ehlo_as(address, "127.0.0.1");
    for _ in 0..10 {
        local.expect("NOOP", "250");
    }
    // Two more in another session: the count is the address's, not the session's.
    let mut second = ehlo_as(address, REMOTE);
    second.expect("NOOP", "250");
    second.expect("NOOP", "421 4.7.0 Too many commands");
    second.expect_closed();
    server.wait_for_log("command rate");
}
