//! LMTP (RFC 2033) on the real binary: LHLO, a reply for each recipient after the message
//! (from a plugin that answers each, or one answer repeated), on TCP and on a Unix socket,
//! with Python's smtplib.LMTP and swaks.

use std::path::Path;
use std::process::Command;

use crate::clients::python3;
use crate::raw::RawClient;
use crate::server::{Server, plugin_path, temp_dir};

/// An LMTP listener on TCP and one on a Unix socket at `socket`, both with `chain`, and
/// an SMTP listener with the same chain.
fn lmtp_server(socket: &Path, chain: &str) -> Server {
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"lmtp\"\nplugins = [{chain}]\n\
         [[listener]]\naddress = \"unix:{}\"\nprotocol = \"lmtp\"\nplugins = [{chain}]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [{chain}]\n\
         [plugin.mailboxes]\nsource = \"{}\"\n\
         [plugin.counter]\nsource = \"{}\"\n[plugin.counter.settings]\nmode = \"count\"\n\
         [plugin.debug-printer.settings]\nenvelope = true\n",
        socket.display(),
        plugin_path("mailboxes"),
        plugin_path("misbehave")
    );
    Server::from_config(&config)
}

/// smtplib.LMTP sends LHLO, and its data() reads the first recipient's reply; the others
/// are read with getreply(), in RCPT order. Prints each reply as `CODE TEXT`.
const SMTPLIB_LMTP: &str = r#"
import smtplib, sys
where, rcpts = sys.argv[1], sys.argv[2].split(",")
client = smtplib.LMTP(where) if where.startswith("/") else smtplib.LMTP("127.0.0.1", int(where))
code, _ = client.ehlo("client.test")
assert code == 250, code
client.mail("sender@example.org")
accepted = [r for r in rcpts if client.rcpt(r)[0] == 250]
code, text = client.data(b"Subject: lmtp\r\n\r\nhello\r\n")
print(code, text.decode())
for _ in accepted[1:]:
    code, text = client.getreply()
    print(code, text.decode())
client.quit()
"#;

#[test]
fn each_recipient_gets_its_own_reply_over_tcp_and_a_unix_socket() {
    let socket = temp_dir().join("lmtp.sock");
    let mut server = lmtp_server(&socket, "\"mailboxes\"");
    let tcp = server.addresses(2)[0];
    // An address given twice is two recipients, each with its reply.
    let rcpts = "alice@example.com,nobody@example.com,full@example.com,nobody@example.com,bob@example.com";
    for place in [tcp.port().to_string(), socket.display().to_string()] {
        let out = python3(&["-c", SMTPLIB_LMTP, &place, rcpts]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "250 2.0.0 delivered to alice",
                "550 5.1.1 No such mailbox",
                "452 4.2.2 Mailbox full",
                "550 5.1.1 No such mailbox",
                "250 2.0.0 delivered to bob",
            ],
            "{place}"
        );
    }
}

#[test]
fn a_plugin_with_one_answer_has_it_given_to_every_recipient_and_chains_decide_in_order() {
    let socket = temp_dir().join("lmtp.sock");
    // mailboxes leaves `pass` to the next plugin; debug-printer answers nothing (250).
    let mut server = lmtp_server(&socket, "\"mailboxes\", \"debug-printer\"");
    let tcp = server.addresses(2)[0];
    let out = python3(&[
        "-c",
        SMTPLIB_LMTP,
        &tcp.port().to_string(),
        "pass@example.com,a@example.com",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["250 2.0.0 OK", "250 2.0.0 delivered to a"]
    );
    // The printer was handed only the recipient nobody had answered for.
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("rcpt tos: ['pass@example.com']\n"), "{printed}");

    // swaks over the Unix socket reads a reply for each recipient.
    let out = Command::new("swaks")
        .args(["--protocol", "LMTP", "--socket", &socket.display().to_string()])
        .args([
            "--from",
            "sender@example.org",
            "--to",
            "one@example.com,two@example.com,three@example.com",
        ])
        .args(["--helo", "client.test"])
        .output()
        .expect("run swaks");
    let dialogue = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // mailboxes delivers all three itself; the printer is not asked.
    assert!(dialogue.contains(" -> LHLO client.test"), "{dialogue}");
    assert_eq!(dialogue.matches("<-  250 2.0.0 delivered to ").count(), 3, "{dialogue}");
}

#[test]
fn one_answer_from_process_message_is_every_recipients() {
    let socket = temp_dir().join("lmtp.sock");
    let mut server = lmtp_server(&socket, "\"counter\"");
    let tcp = server.addresses(2)[0];
    let out = python3(&[
        "-c",
        SMTPLIB_LMTP,
        &tcp.port().to_string(),
        "a@example.com,b@example.com",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["250 2.0.0 call 1 of this instance", "250 2.0.0 call 1 of this instance"]
    );
}

#[test]
fn bdat_on_lmtp_answers_each_recipient_at_last_and_once_for_a_chunk() {
    let socket = temp_dir().join("lmtp.sock");
    let config = format!(
        "[limits]\nmax_message_size = 100\n[[listener]]\naddress = \"unix:{}\"\nprotocol = \"lmtp\"\nplugins = [\"mailboxes\"]\n\
         [plugin.mailboxes]\nsource = \"{}\"\n",
        socket.display(),
        plugin_path("mailboxes")
    );
    let mut server = Server::from_config(&config);
    server.wait_for_log("listening on unix:");
    let stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut client = RawClient::from_unix(stream);
    assert!(client.reply().starts_with("220 "));
    client.expect("LHLO client.test", "250-");
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<alice@example.com>", "250");
    client.expect("RCPT TO:<nobody@example.com>", "250");
    client.send(b"BDAT 10\r\nSubject: x");
    assert_eq!(client.reply(), "250 2.0.0 10 octets received");
    client.send(b"BDAT 8 LAST\r\n\r\nbody\r\n");
    assert!(client.reply().starts_with("250 2.0.0 delivered to alice"));
    assert!(client.reply().starts_with("550 5.1.1"));
    // A chunk that passes the size limit is answered once: the message did not end there.
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<alice@example.com>", "250");
    client.expect("RCPT TO:<bob@example.com>", "250");
    client.send(format!("BDAT 200\r\n{}", "x".repeat(200)).as_bytes());
    assert!(client.reply().starts_with("552 5.3.4"));
    client.expect("NOOP", "250");
}

#[test]
fn a_unix_socket_file_is_replaced_only_when_nobody_listens_and_only_if_it_is_a_socket() {
    let dir = temp_dir();
    // A file that is not a socket is never removed.
    let plain = dir.join("plain.sock");
    std::fs::write(&plain, "precious").unwrap();
    let refused = run_briefly(&plain);
    assert!(refused.contains("a file that is not a socket is there"), "{refused}");
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "precious");
    // A socket somebody listens on is refused.
    let busy = dir.join("busy.sock");
    let listener = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    let refused = run_briefly(&busy);
    assert!(refused.contains("another process listens on it"), "{refused}");
    drop(listener);
    // The same file once nobody listens (a crash leaves it): replaced, and served.
    assert!(busy.exists());
    let mut server = Server::from_config(&format!(
        "[[listener]]\naddress = \"unix:{}\"\nplugins = [\"sink\"]\n",
        busy.display()
    ));
    server.wait_for_log("listening on unix:");
    let stream = std::os::unix::net::UnixStream::connect(&busy).unwrap();
    assert!(RawClient::from_unix(stream).reply().starts_with("220 "));
}

/// Starts the server on the Unix socket `path` and returns what it says on stderr when
/// it refuses to start.
fn run_briefly(path: &Path) -> String {
    let out = Command::new(crate::server::binary())
        .args(["--listen", &format!("unix:{}", path.display()), "--plugin", "sink"])
        .output()
        .expect("run wasmtpd");
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn process_message_alone_is_repeated_for_each_recipient_and_greetings_are_checked() {
    let socket = temp_dir().join("lmtp.sock");
    let mut server = lmtp_server(&socket, "\"debug-printer\"");
    let addresses = server.addresses(3);
    let (lmtp, smtp) = (addresses[0], addresses[1]);
    let (mut client, greeting) = RawClient::connect(lmtp);
    assert!(
        greeting.starts_with("220 ") && greeting.contains(" LMTP "),
        "{greeting}"
    );
    // RFC 2033 4.1: no HELO or EHLO on LMTP.
    client.expect("EHLO client.test", "500 Error: this is an LMTP server");
    client.expect("HELO client.test", "500 Error: this is an LMTP server");
    client.expect("LHLO client.test", "250-");
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    client.expect("RCPT TO:<two@example.com>", "250");
    client.expect("DATA", "354");
    client.send(b"Subject: twice\r\n\r\nx\r\n.\r\n");
    assert!(client.reply().starts_with("250 2.0.0 OK"));
    assert!(client.reply().starts_with("250 2.0.0 OK"));
    // A message refused before any plugin (a bare LF in it) is refused for each.
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    client.expect("RCPT TO:<two@example.com>", "250");
    client.expect("DATA", "354");
    client.send(b"Subject: bad\r\n\r\nbare\nLF\r\n.\r\n");
    assert!(client.reply().starts_with("550 5.6.0"));
    assert!(client.reply().starts_with("550 5.6.0"));
    client.expect("NOOP", "250");
    // And LHLO is not SMTP.
    let (mut smtp_client, _) = RawClient::connect(smtp);
    smtp_client.expect("LHLO client.test", "500");
}

#[test]
fn on_smtp_a_plugins_answers_for_each_recipient_are_combined_into_one() {
    let socket = temp_dir().join("lmtp.sock");
    let mut server = lmtp_server(&socket, "\"mailboxes\"");
    let smtp = server.addresses(3)[1];
    let mut client = RawClient::ehlo(smtp);
    client.expect("MAIL FROM:<a@example.org>", "250");
    for rcpt in ["alice", "nobody", "full"] {
        client.expect(&format!("RCPT TO:<{rcpt}@example.com>"), "250");
    }
    client.expect("DATA", "354");
    // The first 4xx, so that the client retries them all.
    assert!(
        client
            .finish_message("Subject: one reply\r\n\r\nx\r\n")
            .starts_with("452 4.2.2 Mailbox full")
    );
    client.expect("MAIL FROM:<a@example.org>", "250");
    for rcpt in ["alice", "nobody"] {
        client.expect(&format!("RCPT TO:<{rcpt}@example.com>"), "250");
    }
    client.expect("DATA", "354");
    assert!(
        client
            .finish_message("Subject: one reply\r\n\r\nx\r\n")
            .starts_with("550 5.1.1")
    );
}
