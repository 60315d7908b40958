//! CHUNKING and BINARYMIME (RFC 3030) on the real binary: Perl's Net::SMTP, which sends a
//! binary message by BDAT, and raw sockets for what no client here sends (text by BDAT,
//! a chunk past the size limit, DATA after BODY=BINARYMIME).

use std::process::Command;

use crate::raw::RawClient;
use crate::server::Server;

/// Runs a Perl script with the server's port as its argument; its stdout.
fn perl(script: &str, port: u16) -> String {
    let out = Command::new("perl")
        .args(["-e", script, &port.to_string()])
        .output()
        .expect("run perl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "perl failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn net_smtp_sends_a_binary_message_in_chunks() {
    let mut server = Server::start(&[]);
    // Bits => "binary" makes Net::SMTP send BODY=BINARYMIME, and then BDAT is its only
    // way to send the message. The chunks hold what DATA could not carry: a NUL, a bare
    // LF, and a line of a single dot.
    let script = r#"
use strict; use Net::SMTP;
my $smtp = Net::SMTP->new("127.0.0.1", Port => $ARGV[0], Hello => "client.test", Timeout => 20) or die "connect: $@";
die "no CHUNKING" unless defined $smtp->supports("CHUNKING") && defined $smtp->supports("BINARYMIME");
$smtp->mail('sender@example.org', Bits => "binary") or die "MAIL: " . $smtp->message;
$smtp->to('rcpt@example.com') or die "RCPT: " . $smtp->message;
$smtp->bdat("Subject: chunked\r\n\r\nfirst \x00 chunk\n") or die "BDAT 1: " . $smtp->message;
$smtp->bdat(".\r\nsecond chunk\r\n") or die "BDAT 2: " . $smtp->message;
$smtp->bdatlast("last chunk\r\n") or die "BDAT LAST: " . $smtp->message;
print "accepted: ", $smtp->code, " ", $smtp->message;
# DATA after BODY=BINARYMIME is out of sequence.
$smtp->mail('sender@example.org', Bits => "binary");
$smtp->to('rcpt@example.com');
$smtp->command("DATA"); $smtp->response();
print "data: ", $smtp->code, " ", $smtp->message;
$smtp->quit;
"#;
    let out = perl(script, server.addr.port());
    assert!(out.contains("accepted: 250 2.0.0 OK"), "{out}");
    assert!(out.contains("data: 503 5.5.1"), "{out}");
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("Subject: chunked\n"), "{printed}");
    assert!(
        printed.contains("first \u{0} chunk\n.\nsecond chunk\nlast chunk\n"),
        "{printed}"
    );
    assert!(printed.contains("mail options: ['BODY=BINARYMIME']"), "{printed}");
}

#[test]
fn a_chunk_past_the_size_limit_is_refused_and_the_next_message_goes_through() {
    let mut server =
        Server::from_config("[limits]\nmax_message_size = 1000\n[[listener]]\naddress = \"127.0.0.1:0\"\n");
    let address = server.addresses(1)[0];
    let mut client = RawClient::ehlo(address);
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "250");
    // Text by BDAT, pipelined: one chunk that fits, one that passes the limit, and a
    // last one the client had already sent.
    let big = format!("{}\r\n", "x".repeat(998));
    client.send(
        format!(
            "BDAT 16\r\nSubject: big\r\n\r\nBDAT {}\r\n{big}BDAT 0 LAST\r\n",
            big.len()
        )
        .as_bytes(),
    );
    assert!(client.reply().starts_with("250 2.0.0 16 octets received"));
    assert!(client.reply().starts_with("552 5.3.4"));
    assert!(client.reply().starts_with("503 5.5.1"));
    // The session goes on, and a message in one chunk is delivered.
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "250");
    let small = "Subject: small\r\n\r\nfits\r\n";
    client.send(format!("BDAT {} LAST\r\n{small}", small.len()).as_bytes());
    assert!(client.reply().starts_with("250 2.0.0 OK"));
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("Subject: small\n"), "{printed}");
    assert!(!printed.contains("Subject: big"), "{printed}");
}
