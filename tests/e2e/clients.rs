//! Real SMTP clients against the real server: the seed's smtplib example, swaks (plain
//! and pipelined) and lettre, a Rust client.

use std::process::Command;

use crate::server::{Server, repo_path};

/// The seed's client: smtplib `sendmail` of a MIMEText message with the debug level on.
/// The server prints it exactly as Python's DebuggingServer did.
#[test]
fn the_seed_smtplib_client_is_printed_like_the_debugging_server() {
    let mut server = Server::start(&[]);
    let client = Command::new("python3")
        .arg(repo_path("tests/clients/smtpd_senddata.py"))
        .arg(server.port().to_string())
        .output()
        .expect("run python3");
    let dialogue = String::from_utf8_lossy(&client.stderr);
    assert!(client.status.success(), "smtplib failed:\n{dialogue}");
    // smtplib's own debug output shows the ESMTP dialogue it had.
    assert!(dialogue.contains("send: 'ehlo "), "{dialogue}");
    assert!(dialogue.contains("reply: b'250-SIZE 33554432\\r\\n'"), "{dialogue}");
    assert!(
        dialogue.contains("send: 'mail FROM:<author@example.com> size=236\\r\\n'"),
        "{dialogue}"
    );
    assert!(
        dialogue.contains("reply: b'354 End data with <CR><LF>.<CR><LF>\\r\\n'"),
        "{dialogue}"
    );
    assert!(dialogue.contains("reply: b'221 2.0.0 Bye\\r\\n'"), "{dialogue}");

    let printed = server.wait_for_messages(1);
    let expected = [
        "---------- MESSAGE FOLLOWS ----------",
        "mail options: ['SIZE=236']",
        "Content-Type: text/plain; charset=\"us-ascii\"",
        "MIME-Version: 1.0",
        "Content-Transfer-Encoding: 7bit",
        "To: Recipient <recipient@example.com>",
        "From: Author <author@example.com>",
        "Subject: Simple test message",
        "X-Peer: 127.0.0.1",
        "",
        "This is the body of the message.",
        "------------ END MESSAGE ------------",
    ];
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines, expected, "printed:\n{printed}");
}

/// What a swaks run printed: the dialogue (stdout) and its complaints (stderr).
pub struct SwaksRun {
    pub delivered: bool,
    pub dialogue: String,
    pub errors: String,
}

/// swaks against the server on `port` with `args`.
pub fn run_swaks(port: u16, args: &[&str]) -> SwaksRun {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(args)
        .output()
        .expect("run swaks (apt install swaks)");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    SwaksRun {
        delivered: out.status.success(),
        dialogue: text(&out.stdout),
        errors: text(&out.stderr),
    }
}

/// swaks with a fixed envelope and message plus `extra`, as the tests send it.
fn swaks_message(server: &Server, extra: &[&str]) -> SwaksRun {
    let mut args = vec![
        "--from",
        "sender@example.org",
        "--to",
        "rcpt1@example.com,rcpt2@example.com",
        "--header",
        "Subject: swaks test",
        "--body",
        "Hello from swaks.\n.leading dot",
    ];
    args.extend_from_slice(extra);
    run_swaks(server.port(), &args)
}

/// The dialogue of a swaks delivery that must succeed.
pub fn swaks(server: &Server, extra: &[&str]) -> String {
    let run = swaks_message(server, extra);
    assert!(run.delivered, "swaks failed:\n{}{}", run.dialogue, run.errors);
    run.dialogue
}

/// The dialogue of a swaks delivery that must fail.
pub fn swaks_refused(server: &Server, extra: &[&str]) -> String {
    let run = swaks_message(server, extra);
    assert!(!run.delivered, "swaks delivered:\n{}", run.dialogue);
    run.dialogue
}

/// `python3 ARGS...` (a script file, or `-c SCRIPT`) that must succeed; its stdout.
pub fn python3(args: &[&str]) -> String {
    let out = Command::new("python3").args(args).output().expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn swaks_delivers_with_and_without_pipelining() {
    let mut server = Server::start(&[]);
    let plain = swaks(&server, &[]);
    assert!(plain.contains("<-  250 2.1.5 OK"), "{plain}");
    assert!(plain.contains("<-  250 2.0.0 OK"), "{plain}");

    // swaks --pipeline sends MAIL, both RCPTs and DATA in one write, then reads the four
    // replies, in order.
    let pipelined = swaks(&server, &["--pipeline"]);
    assert!(pipelined.contains("<-  250-PIPELINING"), "{pipelined}");
    let position = |line: &str| {
        pipelined
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} in:\n{pipelined}"))
    };
    assert!(
        position(" -> DATA") < position("<-  250 2.1.0 OK"),
        "swaks did not pipeline:\n{pipelined}"
    );
    let replies: Vec<&str> = pipelined.lines().filter(|l| l.starts_with("<-  ")).collect();
    // After the greeting and the EHLO reply, however many extensions it lists.
    let after_ehlo = replies.iter().rposition(|l| l.starts_with("<-  250-")).unwrap() + 2;
    assert_eq!(
        replies[after_ehlo..],
        [
            "<-  250 2.1.0 OK",
            "<-  250 2.1.5 OK",
            "<-  250 2.1.5 OK",
            "<-  354 End data with <CR><LF>.<CR><LF>",
            "<-  250 2.0.0 OK",
            "<-  221 2.0.0 Bye"
        ]
    );

    let printed = server.wait_for_messages(2);
    for message in printed.split("---------- MESSAGE FOLLOWS ----------").skip(1) {
        assert!(message.contains("\nSubject: swaks test\n"), "{message}");
        assert!(
            message.contains("\nX-Peer: 127.0.0.1\n\nHello from swaks.\n.leading dot\n"),
            "{message}"
        );
    }
}

#[test]
fn lettre_delivers_and_sees_the_handler_reply() {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};

    let mut server = Server::start(&[]);
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port())
        .build();
    let email = Message::builder()
        .from("Rust <rust@example.org>".parse().unwrap())
        .to("Someone <someone@example.com>".parse().unwrap())
        .subject("from lettre")
        .header(ContentType::TEXT_PLAIN)
        .body("Sent by lettre.\r\n".to_owned())
        .unwrap();
    let response = mailer.send(&email).expect("lettre send");
    assert_eq!(response.code().to_string(), "250");
    assert_eq!(response.message().collect::<Vec<_>>(), ["2.0.0 OK"]);
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("\nSubject: from lettre\n"), "{printed}");
    assert!(
        printed.contains("\nX-Peer: 127.0.0.1\n\nSent by lettre.\n"),
        "{printed}"
    );
}

/// After QUIT's 221 the server closes: the client reads the reply, then the end of the
/// stream (a FIN, not a reset and not a connection left open).
#[test]
fn after_quit_the_client_reads_221_then_the_end_of_the_stream() {
    use std::io::{Read, Write};
    let server = Server::start(&[]);
    let mut client = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    client
        .set_read_timeout(Some(crate::server::WAIT))
        .expect("read timeout");
    let mut greeting = [0; 512];
    let n = client.read(&mut greeting).expect("greeting");
    assert!(
        greeting[..n].starts_with(b"220 "),
        "{:?}",
        String::from_utf8_lossy(&greeting[..n])
    );
    client.write_all(b"QUIT\r\n").expect("QUIT");
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("the reply, then the end of the stream");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("221 ") && rest.ends_with("\r\n"), "{rest}");
}

/// The connection ends with the 221, not with the plugins' last hook: a quit hook that
/// computes for 1.5 s runs after the client has read the end of the stream.
#[test]
fn the_client_reads_the_end_of_the_stream_before_a_slow_quit_hook_ends() {
    use std::time::{Duration, Instant};
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"hooks\"]\n\
         [plugin.hooks]\nsource = \"{}\"\ntime_budget_ms = 5000\n\
         [plugin.hooks.settings]\nquit-spin-ms = \"1500\"\n",
        crate::server::plugin_path("every-hook")
    );
    let mut server = Server::from_config(&config);
    let mut client = crate::raw::RawClient::ehlo(server.addr);
    let reply = client.send_message("Subject: then QUIT\r\n\r\nx\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    let asked = Instant::now();
    client.expect("QUIT", "221 ");
    client.expect_closed();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "the stream ended {took:?} after QUIT"
    );
    // The hook did run, after.
    server.wait_for_log("called: quit");
}
