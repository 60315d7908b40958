//! Message edits (the `message-edit` interface) with smtplib as the client: the editor
//! test plugin edits as its settings say, and debug-printer after it (envelope on) shows
//! what the rest of the chain, and so what leaves the server, is handed.

use crate::clients::python3;
use crate::server::{Server, plugin_path, temp_dir};

/// Sends the seed-like message below with smtplib; prints the outcome.
const SEND: &str = r#"
import smtplib, sys
message = "Subject: hello\r\nX-Old: 1\r\nX-Old: 2\r\n\r\nthe body\r\n"
client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
try:
    client.sendmail("a@example.org", ["b@example.com", "c@example.com"], message)
    print("accepted")
except smtplib.SMTPDataError as e:
    print("refused", e.smtp_code, e.smtp_error.decode())
client.quit()
"#;

fn send(server: &Server) -> String {
    python3(&["-c", SEND, &server.port().to_string()])
}

/// `[plugin.NAME]` tables of editors, each `(name, settings)`, then debug-printer with the
/// envelope, in a chain in that order.
fn chain(editors: &[(&str, &str)]) -> Server {
    chain_quarantining(editors, None)
}

/// As [`chain`], on a listener whose quarantine is `quarantine`.
fn chain_quarantining(editors: &[(&str, &str)], quarantine: Option<&std::path::Path>) -> Server {
    let mut config = String::from("[[listener]]\naddress = \"127.0.0.1:0\"\n");
    if let Some(dir) = quarantine {
        config.push_str(&format!("quarantine = \"{}\"\n", dir.display()));
    }
    config.push_str("plugins = [");
    for (name, _) in editors {
        config.push_str(&format!("\"{name}\", "));
    }
    config.push_str(
        "\"printer\"]\n[plugin.printer]\nsource = \"debug-printer\"\n[plugin.printer.settings]\nenvelope = true\n",
    );
    for (name, settings) in editors {
        config.push_str(&format!(
            "[plugin.{name}]\nsource = \"{}\"\n[plugin.{name}.settings]\n{settings}\n",
            plugin_path("editor")
        ));
    }
    Server::from_config(&config)
}

#[test]
fn every_edit_kind_arrives_as_asked() {
    let edits = r#"
"edit.1" = "add-header|X-Spam-Flag|YES"
"edit.2" = "insert-header|0|X-First|at the top"
"edit.3" = "change-header|Subject|1|[SPAM] hello"
"edit.4" = "delete-header|X-Old|2"
"edit.5" = "replace-body|a new body\nwith two lines\n"
"edit.6" = "change-sender|bounce@example.net"
"edit.7" = "add-recipient|d@example.com"
"edit.8" = "remove-recipient|b@example.com"
"edit.9" = "change-header|X-Folded|1|never there"
"#;
    let mut server = chain(&[("editor", edits)]);
    assert_eq!(send(&server).trim(), "accepted");
    let printed = server.wait_for_messages(1);
    assert!(
        printed.contains(
            "X-First: at the top\nSubject: [SPAM] hello\nX-Old: 1\nX-Spam-Flag: YES\nX-Peer: 127.0.0.1\n\na new body\nwith two lines\n"
        ),
        "{printed}"
    );
    assert!(printed.contains("mail from: 'bounce@example.net'"), "{printed}");
    assert!(
        printed.contains("rcpt tos: ['c@example.com', 'd@example.com']"),
        "{printed}"
    );
    assert!(!printed.contains("X-Folded"), "{printed}");
}

#[test]
fn the_next_plugin_is_handed_the_edits_of_the_one_before() {
    let first = "\"edit.1\" = \"add-header|X-First|1\"\n\"edit.2\" = \"change-header|Subject|1|edited\"";
    let second = "\"edit.1\" = \"add-header|X-Second|2\"";
    let mut server = chain(&[("first", first), ("second", second)]);
    assert_eq!(send(&server).trim(), "accepted");
    let handed = server.wait_for_log("plugin=\"second\"");
    assert!(handed.contains("handed: <a@example.org>"), "{handed}");
    assert!(
        handed.contains("Subject: edited / X-Old: 1 / X-Old: 2 / X-First: 1"),
        "{handed}"
    );
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("X-First: 1\nX-Second: 2\n"), "{printed}");
}

#[test]
fn an_edit_that_would_inject_lines_is_a_tempfail_naming_the_edit() {
    for edit in [
        "add-header|X-Bad|v\r\nBcc: victim@example.com",
        "add-header|Bad Name|v",
        "change-sender|a@example.org> SIZE=1",
        "add-recipient|not an address",
        "add-recipient|d@example.com|NOTIFY=NEVER\r\nDATA",
        "replace-body|smuggled\r.\rMAIL FROM:<x@example.net>",
    ] {
        let settings = format!("\"edit.1\" = {edit:?}");
        let mut server = chain(&[("editor", &settings)]);
        let sent = send(&server);
        assert!(sent.contains("refused 451 4.3.0"), "{edit}: {sent}");
        let line = server.wait_for_log("answering 451");
        assert!(
            line.contains("handler=\"editor\"") && line.contains("edit refused: "),
            "{line}"
        );
        let name = edit.split('|').next().unwrap();
        assert!(line.contains(name), "{edit}: {line}");
        assert!(server.stdout().is_empty(), "{}", server.stdout());
    }
}

#[test]
fn removing_every_recipient_without_refusing_is_a_tempfail() {
    let settings = "\"edit.1\" = \"remove-recipient|b@example.com\"\n\"edit.2\" = \"remove-recipient|c@example.com\"";
    let mut server = chain(&[("editor", settings)]);
    assert!(send(&server).contains("refused 451 4.3.0"));
    assert!(
        server
            .wait_for_log("answering 451")
            .contains("every recipient was removed")
    );
}

#[test]
fn quarantine_keeps_the_edited_message_and_accepts_it() {
    let dir = temp_dir();
    let settings = "\"edit.1\" = \"add-header|X-Spam-Flag|YES\"\n\"edit.2\" = \"quarantine|spam score 12\"";
    let mut server = chain_quarantining(&[("editor", settings)], Some(&dir));
    assert_eq!(send(&server).trim(), "accepted");
    let line = server.wait_for_log("message quarantined");
    assert!(line.contains("reason=\"spam score 12\""), "{line}");
    let kept: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1);
    let text = std::fs::read_to_string(&kept[0]).unwrap();
    // Who and why, then the envelope (every recipient) and the trace, then the message.
    assert!(
        text.starts_with(
            "X-Wasmtpd-Quarantine: by editor: spam score 12\r\nReturn-Path: <a@example.org>\r\n\
             X-Wasmtpd-Envelope-To: <b@example.com>\r\nX-Wasmtpd-Envelope-To: <c@example.com>\r\nReceived: from "
        ),
        "{text}"
    );
    assert!(text.contains(" +0000\r\nSubject: hello\r\n"), "{text}");
    let id = line.split(" id=").nth(1).unwrap().split(' ').next().unwrap();
    assert!(text.contains(&format!(" id {id};")), "{id}: {text}");
    assert!(text.contains("X-Spam-Flag: YES\r\n\r\nthe body\r\n"), "{text}");
    // It went no further down the chain.
    assert!(server.stdout().is_empty(), "{}", server.stdout());
}

#[test]
fn a_quarantine_without_a_quarantine_configured_is_a_tempfail() {
    let settings = "\"edit.1\" = \"quarantine|suspicious\"";
    let mut server = chain(&[("editor", settings)]);
    assert!(send(&server).contains("refused 451 4.3.0"));
    assert!(
        server
            .wait_for_log("answering 451")
            .contains("no quarantine is configured")
    );
}

#[test]
fn a_refusal_discards_the_calls_edits_its_quarantine_too() {
    let dir = temp_dir();
    let settings = "\"edit.1\" = \"quarantine|spam\"\nanswer = \"550 5.7.1 no thanks\"";
    let server = chain_quarantining(&[("editor", settings)], Some(&dir));
    assert!(send(&server).contains("refused 550 5.7.1 no thanks"));
    assert!(!dir.join("new").exists(), "quarantined despite the refusal");
}

/// The shipped filter tagging and quarantining in front of the shipped store, with swaks:
/// what a real deployment would run.
#[test]
fn the_filter_tags_and_quarantines_and_the_store_keeps_the_edited_message() {
    let (mailbox, quarantine) = (temp_dir(), temp_dir());
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"filter\", \"store\"]\nquarantine = \"{}\"\n\
         [plugin.filter.settings]\ntag_rules = [\"Subject:cheap\"]\nquarantine_rules = [\"Subject:lottery\"]\n\
         [plugin.store]\ndirs = [{{ host = \"{}\", guest = \"/maildir\", writable = true }}]\n",
        quarantine.display(),
        mailbox.display()
    );
    let mut server = Server::from_config(&config);
    let send = |subject: &str| {
        let run = crate::clients::run_swaks(
            server.port(),
            &[
                "--from",
                "a@example.org",
                "--to",
                "b@example.com",
                "--header",
                subject,
                "--body",
                "hello",
            ],
        );
        assert!(run.delivered, "{}{}", run.dialogue, run.errors);
    };
    send("Subject: cheap watches");
    send("Subject: you won the lottery");
    send("Subject: lunch");
    let files = |dir: &std::path::Path| -> Vec<String> {
        let mut texts: Vec<String> = std::fs::read_dir(dir.join("new"))
            .map(|d| d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
            .unwrap_or_default();
        texts.sort();
        texts
    };
    let stored = files(&mailbox);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let tagged = stored.iter().find(|t| t.contains("cheap watches")).unwrap();
    assert!(tagged.contains("Subject: [SPAM] cheap watches\r\n"), "{tagged}");
    assert!(tagged.contains("X-Spam-Flag: YES\r\n"), "{tagged}");
    assert!(
        tagged.starts_with("Return-Path: <a@example.org>\r\nReceived: from "),
        "{tagged}"
    );
    let clean = stored.iter().find(|t| t.contains("Subject: lunch")).unwrap();
    assert!(!clean.contains("X-Spam-Flag"), "{clean}");
    let kept = files(&quarantine);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].starts_with(
            "X-Wasmtpd-Quarantine: by filter: quarantine_rules matched Subject:lottery\r\nReturn-Path: <a@example.org>\r\n\
             X-Wasmtpd-Envelope-To: <b@example.com>\r\n"
        ),
        "{}",
        kept[0]
    );
    assert!(kept[0].contains("Subject: you won the lottery"), "{}", kept[0]);
    server.wait_for_log("message quarantined");
}

#[test]
fn an_edit_at_a_hook_fails_that_command() {
    let config = format!(
        "[plugin.p]\nsource = \"{}\"\n[plugin.p.settings]\nmode = \"edit\"\nstage = \"rcpt\"\n",
        plugin_path("misbehave")
    );
    let mut server = Server::with_config(&config, &["p"]);
    let mut client = crate::raw::RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "451 4.3.0");
    let line = server.wait_for_log("answering 451");
    assert!(line.contains("message-edit is only for process-message"), "{line}");
}
