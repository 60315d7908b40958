//! Behind a load balancer: PROXY protocol v1 and v2 headers name the client that plugins
//! and limits see; a malformed header or an untrusted source gets no session.

use std::net::{Ipv6Addr, SocketAddr};

use crate::raw::RawClient;
use crate::server::Server;

/// A debug-printer listener that takes PROXY headers from `trusted`, one session per
/// client address.
fn behind_proxy(trusted: &str) -> (Server, SocketAddr) {
    let config = format!(
        "[limits]\nmax_connections_per_ip = 1\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         [listener.proxy_protocol]\ntrusted = [\"{trusted}\"]\n"
    );
    let mut server = Server::from_config(&config);
    let address = server.addresses(1)[0];
    (server, address)
}

fn v2_tcp6(client: &str, port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend([0x21, 0x21, 0, 36]);
    header.extend(client.parse::<Ipv6Addr>().unwrap().octets());
    header.extend(Ipv6Addr::LOCALHOST.octets());
    header.extend(port.to_be_bytes());
    header.extend(25u16.to_be_bytes());
    header
}

#[test]
fn the_client_a_v1_or_v2_header_names_is_the_peer_plugins_see() {
    let (mut server, address) = behind_proxy("127.0.0.0/8");
    let v1 = b"PROXY TCP4 192.0.2.10 127.0.0.1 56324 25\r\n";
    let (mut client, greeting) = RawClient::connect_after(address, v1);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    client.expect("EHLO client.test", "250-");
    assert!(client.send_message("Subject: one\r\n\r\nhi\r\n").starts_with("250 "));
    drop(client);
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("X-Peer: 192.0.2.10\n"), "{printed}");

    let (mut client, greeting) = RawClient::connect_after(address, &v2_tcp6("2001:db8::7", 4000));
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    client.expect("EHLO client.test", "250-");
    assert!(client.send_message("Subject: two\r\n\r\nhi\r\n").starts_with("250 "));
    let printed = server.wait_for_messages(2);
    assert!(printed.contains("X-Peer: 2001:db8::7\n"), "{printed}");
}

#[test]
fn limits_count_the_named_client_not_the_proxy() {
    // One session per client address: the proxy's own address is shared by all.
    let (_server, address) = behind_proxy("127.0.0.1");
    let header = |ip: &str| format!("PROXY TCP4 {ip} 127.0.0.1 5000 25\r\n").into_bytes();
    let (_first, greeting) = RawClient::connect_after(address, &header("192.0.2.10"));
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    let (_, greeting) = RawClient::connect_after(address, &header("192.0.2.10"));
    assert!(greeting.starts_with("421 "), "{greeting:?}");
    let (_other, greeting) = RawClient::connect_after(address, &header("192.0.2.11"));
    assert!(greeting.starts_with("220 "), "{greeting:?}");
}

#[test]
fn a_malformed_header_gets_no_session() {
    let (mut server, address) = behind_proxy("127.0.0.1");
    for bad in [
        &b"EHLO client.test\r\n"[..],
        b"PROXY TCP4 192.0.2.10 127.0.0.1 99999 25\r\n",
        b"PROXY TCP4 192.0.2.10\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x11\x11\0\x0c",
    ] {
        let (_, greeting) = RawClient::connect_after(address, bad);
        assert_eq!(greeting, "", "{bad:?} was greeted");
    }
    server.wait_for_log_count("refused a connection from a trusted proxy", 4);
}

#[test]
fn an_untrusted_source_is_refused_whatever_it_claims() {
    let (mut server, address) = behind_proxy("10.0.0.0/8");
    let claim = b"PROXY TCP4 192.0.2.10 127.0.0.1 56324 25\r\n";
    let (mut client, greeting) = RawClient::connect_after(address, claim);
    assert!(greeting.starts_with("554 "), "{greeting:?}");
    client.expect_closed();
    server.wait_for_log("not a trusted proxy");
}
