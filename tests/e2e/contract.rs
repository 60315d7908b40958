//! The WIT contract as `wit/plugin.wit` states it, checked at every hook with a plugin
//! that exports them all (plugins/testing/every-hook) and answers what it is told. Each
//! check runs twice: with the component built from the WIT of this tree, and with one
//! built from version 0.1.0 of the contract and kept in tests/fixtures, so that a change
//! to the host or the WIT that would break components already built fails here.

use crate::raw::RawClient;
use crate::server::{Server, plugin_path, repo_path};

/// The every-hook component built from this tree's WIT, and the one built from 0.1.0.
pub fn builds() -> [String; 2] {
    let kept = repo_path("tests/fixtures/contract-0.1.0/every_hook.wasm");
    [plugin_path("every-hook"), kept.to_str().unwrap().to_owned()]
}

/// A server whose chain is the every-hook plugin from `source`, answering `settings`
/// (`stage = "reply"` lines).
fn every_hook(source: &str, settings: &str) -> Server {
    let config = format!("[plugin.hooks]\nsource = {source:?}\n[plugin.hooks.settings]\n{settings}\n");
    Server::with_config(&config, &["hooks"])
}

const MESSAGE: &str = "Subject: t\r\n\r\nbody\r\n";

#[test]
fn every_hook_is_called_with_its_arguments() {
    for source in builds() {
        let mut server = every_hook(&source, "");
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org> SIZE=100", "250 2.1.0 OK");
        client.expect("RCPT TO:<b@example.com>", "250 2.1.5 OK");
        client.expect("RSET", "250");
        assert_eq!(client.send_message(MESSAGE), "250 2.0.0 OK", "{source}");
        client.expect("QUIT", "221");
        server.wait_for_log("called: quit");
        for call in [
            "called: connect 127.0.0.1",
            "called: helo client.test true",
            "called: mail <a@example.org> [\"SIZE=100\"]",
            "called: rcpt <b@example.com> []",
            "called: rset",
            "called: data",
            "called: message <a@example.org> [\"b@example.com\"] 20 octets",
        ] {
            assert!(
                server.log().contains(call),
                "{source}: no {call:?} in\n{}",
                server.log()
            );
        }
    }
}

#[test]
fn addresses_come_without_angle_brackets_and_the_null_sender_is_empty() {
    for source in builds() {
        let mut server = every_hook(&source, "");
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<>", "250 2.1.0 OK");
        client.expect("RCPT TO:<@relay.example:b@example.com>", "250 2.1.5 OK");
        client.expect("RCPT TO:<Postmaster>", "250 2.1.5 OK");
        client.expect("RCPT TO:<\"quoted user\"@example.com>", "250 2.1.5 OK");
        client.expect("DATA", "354");
        assert_eq!(client.finish_message(MESSAGE), "250 2.0.0 OK", "{source}");
        server.wait_for_log("called: message");
        // every-hook writes each address between brackets of its own.
        for call in [
            "called: mail <> []",
            "called: rcpt <b@example.com> []",
            "called: rcpt <Postmaster> []",
            "called: rcpt <\"quoted user\"@example.com> []",
            "called: message <> [\"b@example.com\", \"Postmaster\", \"\\\"quoted user\\\"@example.com\"]",
        ] {
            assert!(
                server.log().contains(call),
                "{source}: no {call:?} in\n{}",
                server.log()
            );
        }
    }
}

#[test]
fn a_2xx_is_sent_at_mail_rcpt_and_the_message_and_the_hosts_reply_elsewhere() {
    let settings = "connect = \"250 2.0.0 plugin connect\"\nhelo = \"250 2.0.0 plugin helo\"\n\
                    mail = \"250 2.1.0 plugin mail\"\nrcpt = \"251 2.1.5 plugin rcpt\"\n\
                    data = \"250 2.0.0 plugin data\"\nmessage = \"250 2.6.0 plugin message\"";
    for source in builds() {
        let server = every_hook(&source, settings);
        let (mut client, greeting) = RawClient::connect(server.addr);
        // The greeting, EHLO's extensions and DATA's 354 are the protocol's.
        assert!(
            greeting.starts_with("220 ") && !greeting.contains("plugin"),
            "{greeting}"
        );
        let ehlo = client.expect("EHLO client.test", "250-");
        assert!(ehlo.contains("250-PIPELINING") && !ehlo.contains("plugin"), "{ehlo}");
        let helo = client.expect("HELO client.test", "250 ");
        assert!(!helo.contains("plugin"), "{helo}");
        client.expect("EHLO client.test", "250-");
        // MAIL's, RCPT's and the message's are the plugin's.
        client.expect("MAIL FROM:<a@example.org>", "250 2.1.0 plugin mail");
        client.expect("RCPT TO:<b@example.com>", "251 2.1.5 plugin rcpt");
        client.expect("DATA", "354 ");
        assert_eq!(client.finish_message(MESSAGE), "250 2.6.0 plugin message", "{source}");
    }
}

#[test]
fn a_refusal_is_sent_at_every_hook_that_answers() {
    for source in builds() {
        let server = every_hook(&source, "connect = \"554 5.7.1 plugin connect\"");
        let (mut client, greeting) = RawClient::connect(server.addr);
        assert_eq!(greeting, "554 plugin connect", "{source}");
        client.expect_closed();

        let server = every_hook(&source, "helo = \"550 5.7.1 plugin helo\"");
        let (mut client, _) = RawClient::connect(server.addr);
        client.expect("EHLO client.test", "550 5.7.1 plugin helo");
        client.expect("MAIL FROM:<a@example.org>", "503");

        let server = every_hook(&source, "mail = \"550 5.7.1 plugin mail\"");
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "550 5.7.1 plugin mail");
        client.expect("RCPT TO:<b@example.com>", "503");

        let server = every_hook(
            &source,
            "rcpt = \"450 4.2.1 plugin rcpt\"\ndata = \"554 5.7.1 plugin data\"",
        );
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "250");
        client.expect("RCPT TO:<b@example.com>", "450 4.2.1 plugin rcpt");
        client.expect("DATA", "503");

        let server = every_hook(&source, "data = \"554 5.7.1 plugin data\"");
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "250");
        client.expect("RCPT TO:<b@example.com>", "250");
        client.expect("DATA", "554 5.7.1 plugin data");

        let server = every_hook(&source, "message = \"552 5.2.2 plugin message\"");
        let mut client = RawClient::ehlo(server.addr);
        assert_eq!(client.send_message(MESSAGE), "552 5.2.2 plugin message", "{source}");
    }
}

#[test]
fn a_reply_over_510_octets_as_sent_is_a_tempfail() {
    // 510 octets as the plugin wrote it, 516 once the host adds the enhanced code.
    let long = format!("550 {}", "x".repeat(506));
    let fits = format!("550 {}", "x".repeat(500));
    for source in builds() {
        let mut server = every_hook(&source, &format!("rcpt = {long:?}"));
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "250");
        client.expect("RCPT TO:<b@example.com>", "451 4.3.0");
        let line = server.wait_for_log("answering 451");
        assert!(line.contains("is longer than 510 octets as sent"), "{line}");
        assert!(line.contains("kind=\"malformed\""), "{line}");
        // One that fits as sent goes out whole: 512 octets with its CRLF.
        let server = every_hook(&source, &format!("message = {fits:?}"));
        let mut client = RawClient::ehlo(server.addr);
        client.start_message();
        let reply = client.finish_message(MESSAGE);
        assert_eq!(reply, format!("550 5.0.0 {}", "x".repeat(500)), "{source}");
    }
}

#[test]
fn the_log_names_every_hook_a_plugin_exports() {
    for source in builds() {
        let server = every_hook(&source, "");
        let line = server
            .log()
            .lines()
            .find(|l| l.contains("plugin loaded"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            line.contains("hooks=connect,helo,mail,rcpt,data,auth,rset,quit"),
            "{source}: {line}"
        );
    }
}
