//! SMTP smuggling over a real socket: only `<CRLF>.<CRLF>` ends DATA, so a second message
//! hidden behind a bare-LF or bare-CR "end" is never delivered.

use crate::raw::RawClient;
use crate::server::Server;

#[test]
fn a_message_hidden_behind_a_bare_line_ending_is_never_delivered() {
    let mut server = Server::start(&[]);
    for fake_end in ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r.\r\n"] {
        let mut client = RawClient::ehlo(server.addr);
        client.start_message();
        let smuggled = format!(
            "Subject: outer\r\n\r\nouter body{fake_end}MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
        );
        client.send(smuggled.as_bytes());
        // One reply, for the whole thing, which has a bare line ending in it: refused.
        let reply = client.reply();
        assert!(reply.starts_with("550 5.6.0"), "{fake_end:?}: {reply:?}");
        // The hidden commands were message text: no transaction is open.
        client.expect("RCPT TO:<b@example.com>", "503");
    }
    // A clean message afterwards is the only thing ever printed.
    let mut client = RawClient::ehlo(server.addr);
    client.start_message();
    client.expect("Subject: clean\r\n\r\nclean\r\n.", "250 2.0.0");
    let printed = server.wait_for_messages(1);
    assert_eq!(printed.matches("MESSAGE FOLLOWS").count(), 1, "{printed}");
    assert!(!printed.contains("smuggled"), "{printed}");
}

#[test]
fn dot_stuffing_is_undone() {
    let mut server = Server::start(&[]);
    let mut client = RawClient::ehlo(server.addr);
    client.start_message();
    client.expect("Subject: dots\r\n\r\n..one\r\n...two\r\n..\r\nend\r\n.", "250 2.0.0");
    let printed = server.wait_for_messages(1);
    assert!(
        printed.contains("\nX-Peer: 127.0.0.1\n\n.one\n..two\n.\nend\n"),
        "{printed}"
    );
}

/// A command ended by a bare LF, then a NOOP ended by CRLF: the two replies.
fn bare_lf_replies(client: &mut RawClient) -> (String, String) {
    client.send(b"NOOP\nNOOP\r\n");
    (client.reply(), client.reply())
}

#[test]
fn a_command_ended_by_a_bare_lf_is_refused_unless_the_listener_is_local() {
    let mut server = Server::from_config(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\nbare_lf = \"reject\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\nbare_lf = \"accept\"\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n",
    );
    let [local, remote, strict, lenient] = server.addresses(4)[..] else {
        unreachable!()
    };
    let ehlo_as = |address, ip: &str| {
        let (mut client, greeting) = RawClient::connect_as(address, ip);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
        client.expect("EHLO client.test", "250-");
        client
    };
    // Loopback by default: taken.
    let (first, second) = bare_lf_replies(&mut RawClient::ehlo(local));
    assert!(
        first.starts_with("250 ") && second.starts_with("250 "),
        "{first:?} {second:?}"
    );
    // A listener remote clients reach (here through a balancer), by default: refused, and
    // the session goes on.
    let mut client = ehlo_as(remote, "192.0.2.10");
    let (first, second) = bare_lf_replies(&mut client);
    assert!(first.starts_with("500 5.5.2") && first.contains("bare LF"), "{first:?}");
    assert!(second.starts_with("250 "), "{second:?}");
    assert!(client.send_message("Subject: after\r\n\r\nx\r\n").starts_with("250 "));
    // Each choice made explicitly.
    let (first, _) = bare_lf_replies(&mut RawClient::ehlo(strict));
    assert!(first.starts_with("500 5.5.2"), "{first:?}");
    let (first, _) = bare_lf_replies(&mut ehlo_as(lenient, "192.0.2.10"));
    assert!(first.starts_with("250 "), "{first:?}");
}
