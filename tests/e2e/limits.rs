//! Each limit over a real socket, configured from a TOML file, each answered with the
//! RFC's reply while the server goes on serving.

use crate::raw::RawClient;
use crate::server::{Server, temp_file};

fn start_with_limits(limits: &str) -> Server {
    let config = temp_file("limits.toml", &format!("hostname = \"mx.test\"\n[limits]\n{limits}"));
    Server::start(&["--config", config.to_str().unwrap(), "--plugin", "sink"])
}

#[test]
fn connections_past_the_per_address_limit_get_421_at_accept() {
    // Through a PROXY listener, which names a remote client: loopback is exempt.
    let mut server = Server::from_config(
        "hostname = \"mx.test\"\n[limits]\nmax_connections_per_ip = 2\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n",
    );
    let address = server.addresses(1)[0];
    let (_first, greeting) = RawClient::connect_as(address, "192.0.2.10");
    assert!(greeting.starts_with("220 mx.test ESMTP"), "{greeting}");
    let (_second, greeting) = RawClient::connect_as(address, "192.0.2.10");
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (mut third, greeting) = RawClient::connect_as(address, "192.0.2.10");
    // Before EHLO, so without an enhanced code (RFC 2034).
    assert_eq!(greeting, "421 Too many connections, try again later");
    third.expect_closed();
    // When one leaves, there is room again.
    drop(_first);
    let mut admitted = false;
    for _ in 0..100 {
        let (_client, greeting) = RawClient::connect_as(address, "192.0.2.10");
        if greeting.starts_with("220 ") {
            admitted = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(admitted, "no room after a client left");
}

#[test]
fn the_default_server_takes_more_parallel_sessions_from_loopback_than_the_per_address_limit() {
    let server = Server::start(&["--plugin", "sink"]);
    let clients: Vec<RawClient> = (0..80)
        .map(|i| {
            let (client, greeting) = RawClient::connect(server.addr);
            assert!(greeting.starts_with("220 "), "session {i}: {greeting}");
            client
        })
        .collect();
    drop(clients);
}

#[test]
fn connections_past_the_total_limit_get_421_at_accept() {
    let server = start_with_limits("max_connections = 1");
    let (_first, greeting) = RawClient::connect(server.addr);
    assert!(greeting.starts_with("220 "), "{greeting}");
    let (_, greeting) = RawClient::connect(server.addr);
    // Before EHLO, so without an enhanced code (RFC 2034).
    assert_eq!(greeting, "421 Too many connections, try again later");
}

#[test]
fn message_size_recipients_and_line_limits() {
    let server = start_with_limits("max_message_size = 2000\nmax_recipients = 3");
    let mut client = RawClient::ehlo(server.addr);
    let ehlo = client.expect("EHLO again.test", "250-mx.test");
    assert!(ehlo.contains("250-SIZE 2000"), "{ehlo}");
    client.expect("MAIL FROM:<a@example.org> SIZE=2001", "552 5.3.4");
    client.expect("MAIL FROM:<a@example.org> SIZE=100", "250 2.1.0");
    for n in 0..3 {
        client.expect(&format!("RCPT TO:<r{n}@example.com>"), "250 2.1.5");
    }
    client.expect("RCPT TO:<r4@example.com>", "452 4.5.3");
    client.expect("DATA", "354");
    // Larger than announced and than the limit: read to the end, then refused.
    client.expect(&format!("{}\r\n.", "x\r\n".repeat(1000)), "552 5.3.4");
    // A command line over 2048 octets.
    client.expect(&format!("NOOP {}", "n".repeat(2100)), "500 5.5.2");
    client.start_message();
    client.expect(&format!("{}\r\n.", "l".repeat(1200)), "500 5.5.2");
    client.expect("QUIT", "221 2.0.0");
    client.expect_closed();
}

#[test]
fn an_idle_client_is_closed_after_the_idle_timeout() {
    let server = start_with_limits("idle_timeout_secs = 1");
    let mut client = RawClient::ehlo(server.addr);
    let reply = client.reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    client.expect_closed();
}

#[test]
fn too_many_bad_commands_end_the_session() {
    let server = start_with_limits("max_errors = 2");
    let mut client = RawClient::ehlo(server.addr);
    client.expect("BOGUS", "500 5.5.2");
    client.send(b"BOGUS\r\n");
    assert!(client.reply().starts_with("500 5.5.2"));
    let reply = client.reply();
    assert!(reply.starts_with("421 4.7.0"), "{reply:?}");
    client.expect_closed();
    // The server still serves others.
    RawClient::ehlo(server.addr).expect("NOOP", "250");
}

#[test]
fn a_message_that_has_looped_past_max_hops_is_refused_554() {
    let mut server = start_with_limits("max_hops = 5");
    // smtplib sends a message that already went through six servers, then one through five.
    let script = r#"
import smtplib, sys
hop = "Received: from a.test by b.test; Tue, 1 Dec 2026 07:00:00 +0000\r\n"
client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
for hops in (6, 5):
    message = hop * hops + "Subject: loop\r\n\r\nround and round\r\n"
    try:
        client.sendmail("a@example.org", ["b@example.com"], message)
        print(hops, "accepted")
    except smtplib.SMTPDataError as e:
        print(hops, "refused", e.smtp_code, e.smtp_error.decode())
client.quit()
"#;
    let stdout = crate::clients::python3(&["-c", script, &server.port().to_string()]);
    assert!(
        stdout.contains("6 refused 554 5.4.6 Too many hops: routing loop detected"),
        "{stdout}"
    );
    assert!(stdout.contains("5 accepted"), "{stdout}");
    let line = server.wait_for_log("too many Received fields");
    assert!(line.contains("hops=6"), "{line}");
}
