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
