//! Abuse limits on the real binary: a client that talks before the greeting, too many
//! connections or commands a minute from one address. Each gets its reply and a log line.

use std::time::{Duration, Instant};

use crate::raw::RawClient;
use crate::server::Server;

fn with_limits(limits: &str) -> (Server, std::net::SocketAddr) {
    let mut server = Server::from_config(&format!(
        "[limits]\n{limits}\n[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n"
    ));
    let address = server.addresses(1)[0];
    (server, address)
}

#[test]
fn a_client_that_talks_before_the_greeting_is_refused() {
    let (mut server, address) = with_limits("greeting_delay_ms = 300");
    let (mut early, reply) = RawClient::connect_after(address, b"EHLO spam.test\r\n");
    assert!(reply.starts_with("554 "), "{reply:?}");
    early.expect_closed();
    server.wait_for_log("talked before the greeting");

    let started = Instant::now();
    let (mut patient, greeting) = RawClient::connect(address);
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
    let (mut server, address) = with_limits("connections_per_ip_per_minute = 2");
    for _ in 0..2 {
        let (mut client, greeting) = RawClient::connect(address);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        client.expect("QUIT", "221");
    }
    let (mut third, reply) = RawClient::connect(address);
    assert!(reply.starts_with("421 "), "{reply:?}");
    assert!(reply.contains("Too many connections from your address"), "{reply:?}");
    third.expect_closed();
    server.wait_for_log("TooFastFromAddress");
}

#[test]
fn commands_a_minute_from_one_address_are_limited_across_its_sessions() {
    let (mut server, address) = with_limits("commands_per_ip_per_minute = 6");
    let mut first = RawClient::ehlo(address);
    for _ in 0..3 {
        first.expect("NOOP", "250");
    }
    // Two more in another session: the count is the address's, not the session's.
    let mut second = RawClient::ehlo(address);
    second.expect("NOOP", "250");
    second.expect("NOOP", "421 4.7.0 Too many commands");
    second.expect_closed();
    server.wait_for_log("command rate");
}
