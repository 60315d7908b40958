//! Table tests: every command case through the framing with each accepted line ending,
//! and the DATA receiver against the oracle under every way of chunking its input.

use crate::*;

/// Frames `line + ending` and parses it; `Err(None)` when the framing refuses it.
fn parse_with(line: &str, ending: &str) -> Result<String, Option<u16>> {
    let wire = format!("{line}{ending}");
    match next_command_line(wire.as_bytes(), 512) {
        Frame::Line { len, consumed } => {
            assert_eq!(consumed, wire.len(), "{line:?}");
            parse_command(&wire.as_bytes()[..len])
                .map(|c| format!("{c:?}"))
                .map_err(|e| Some(e.reply().code()))
        }
        _ => Err(None),
    }
}

#[test]
fn command_table() {
    let ok = |s: &str| Ok::<_, Option<u16>>(s.to_owned());
    let cases: &[(&str, Result<String, Option<u16>>)] = &[
        ("HELO client.example", ok("Helo(\"client.example\")")),
        ("helo client.example", ok("Helo(\"client.example\")")),
        ("EHLO [192.0.2.1]", ok("Ehlo(\"[192.0.2.1]\")")),
        ("EHLO", Err(Some(501))),
        ("LHLO client.example", ok("Lhlo(\"client.example\")")),
        ("lhlo", Err(Some(501))),
        ("HELO two words", Err(Some(501))),
        (
            "MAIL FROM:<a@example.com>",
            ok(
                r#"Mail { from: Some(Address("a@example.com")), params: MailParams { size: None, body: None, smtputf8: false, ret: false, envid: None, raw: [] } }"#,
            ),
        ),
        (
            "mail from: <a@example.com> size=236",
            ok(
                r#"Mail { from: Some(Address("a@example.com")), params: MailParams { size: Some(236), body: None, smtputf8: false, ret: false, envid: None, raw: ["SIZE=236"] } }"#,
            ),
        ),
        (
            "MAIL FROM:<> BODY=8BITMIME SMTPUTF8",
            ok(
                r#"Mail { from: None, params: MailParams { size: None, body: Some(EightBitMime), smtputf8: true, ret: false, envid: None, raw: ["BODY=8BITMIME", "SMTPUTF8"] } }"#,
            ),
        ),
        (
            "MAIL FROM:<a@example.com> BODY=7bit",
            ok(
                r#"Mail { from: Some(Address("a@example.com")), params: MailParams { size: None, body: Some(SevenBit), smtputf8: false, ret: false, envid: None, raw: ["BODY=7BIT"] } }"#,
            ),
        ),
        ("MAIL FROM:a@example.com", Err(Some(501))),
        ("MAIL FROM <a@example.com>", Err(Some(501))),
        ("MAIL TO:<a@example.com>", Err(Some(501))),
        ("MAIL FROM:<a@@example.com>", Err(Some(501))),
        ("MAIL FROM:<a@example.com>SIZE=1", Err(Some(501))),
        (
            "MAIL FROM:<a@example.com> BODY=binarymime",
            ok(
                r#"Mail { from: Some(Address("a@example.com")), params: MailParams { size: None, body: Some(BinaryMime), smtputf8: false, ret: false, envid: None, raw: ["BODY=BINARYMIME"] } }"#,
            ),
        ),
        (
            "MAIL FROM:<a@example.com> BODY=BINARYMIME BODY=8BITMIME",
            Err(Some(501)),
        ),
        // DSN (RFC 3461): RET upper-cased, ENVID (xtext, case kept) as sent.
        (
            "MAIL FROM:<a@example.com> ret=hdrs ENVID=QQ+2B314159",
            ok(
                r#"Mail { from: Some(Address("a@example.com")), params: MailParams { size: None, body: None, smtputf8: false, ret: true, envid: Some("QQ+2B314159"), raw: ["RET=HDRS", "ENVID=QQ+2B314159"] } }"#,
            ),
        ),
        ("MAIL FROM:<a@example.com> RET=ALL", Err(Some(501))),
        ("MAIL FROM:<a@example.com> RET", Err(Some(501))),
        ("MAIL FROM:<a@example.com> RET=FULL RET=HDRS", Err(Some(501))),
        ("MAIL FROM:<a@example.com> ENVID=a+zz", Err(Some(501))),
        ("MAIL FROM:<a@example.com> ENVID=1 ENVID=2", Err(Some(501))),
        ("MAIL FROM:<a@example.com> SIZE=abc", Err(Some(501))),
        ("MAIL FROM:<a@example.com> SIZE=1 SIZE=2", Err(Some(501))),
        ("MAIL FROM:<a@example.com> SMTPUTF8=yes", Err(Some(501))),
        ("MAIL FROM:<a@example.com> SIZE", Err(Some(501))),
        ("MAIL FROM:<a@example.com> FOO=bar", Err(Some(555))),
        ("MAIL FROM:<a@example.com> =bar", Err(Some(501))),
        (
            "RCPT TO:<b@example.com>",
            ok(r#"Rcpt { to: Address("b@example.com"), params: RcptParams { notify: false, orcpt: false, raw: [] } }"#),
        ),
        (
            "RCPT TO:<Postmaster>",
            ok(r#"Rcpt { to: Address("Postmaster"), params: RcptParams { notify: false, orcpt: false, raw: [] } }"#),
        ),
        ("RCPT TO:<>", Err(Some(501))),
        (
            "RCPT TO:<b@example.com> notify=success,delay ORCPT=rfc822;Bob+2B1@Example.org",
            ok(
                r#"Rcpt { to: Address("b@example.com"), params: RcptParams { notify: true, orcpt: true, raw: ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Bob+2B1@Example.org"] } }"#,
            ),
        ),
        (
            "RCPT TO:<b@example.com> NOTIFY=NEVER",
            ok(
                r#"Rcpt { to: Address("b@example.com"), params: RcptParams { notify: true, orcpt: false, raw: ["NOTIFY=NEVER"] } }"#,
            ),
        ),
        ("RCPT TO:<b@example.com> NOTIFY=NEVER,SUCCESS", Err(Some(501))),
        ("RCPT TO:<b@example.com> NOTIFY=SUCCESS NOTIFY=DELAY", Err(Some(501))),
        ("RCPT TO:<b@example.com> NOTIFY", Err(Some(501))),
        ("RCPT TO:<b@example.com> ORCPT=b@example.com", Err(Some(501))),
        ("RCPT TO:<b@example.com> ORCPT=rfc822;a=b", Err(Some(501))),
        ("RCPT TO:<b@example.com> FOO=bar", Err(Some(555))),
        ("RCPT TO:<b@example.com>NOTIFY=NEVER", Err(Some(501))),
        ("RCPT FROM:<b@example.com>", Err(Some(501))),
        ("DATA", ok("Data")),
        ("BDAT 86", ok("Bdat { size: 86, last: false }")),
        ("bdat 0 last", ok("Bdat { size: 0, last: true }")),
        (
            "BDAT 18446744073709551615 LAST",
            ok("Bdat { size: 18446744073709551615, last: true }"),
        ),
        ("BDAT 18446744073709551616", Err(Some(501))),
        ("BDAT", Err(Some(501))),
        ("BDAT -1", Err(Some(501))),
        ("BDAT 1x", Err(Some(501))),
        ("BDAT 10 FIRST", Err(Some(501))),
        ("BDAT 10 LAST more", Err(Some(501))),
        ("DATA x", Err(Some(501))),
        ("RSET", ok("Rset")),
        ("RSET now", Err(Some(501))),
        ("NOOP", ok("Noop")),
        ("NOOP anything at all", ok("Noop")),
        ("QUIT", ok("Quit")),
        ("VRFY user", ok("Vrfy(\"user\")")),
        ("VRFY", Err(Some(501))),
        ("EXPN list", ok("Expn")),
        ("HELP", ok("Help(None)")),
        ("HELP MAIL", ok("Help(Some(\"MAIL\"))")),
        ("", Err(Some(500))),
        ("FOO", Err(Some(500))),
        ("MAILX FROM:<a@example.com>", Err(Some(500))),
        ("STARTTLS", ok("StartTls")),
        ("starttls", ok("StartTls")),
        ("STARTTLS now", Err(Some(501))),
        ("STARTTLSX", Err(Some(500))),
        ("AUTH plain", ok(r#"Auth { mechanism: "PLAIN", initial: None }"#)),
        (
            "AUTH PLAIN AGFsaWNlAHM=",
            ok(r#"Auth { mechanism: "PLAIN", initial: Some("AGFsaWNlAHM=") }"#),
        ),
        ("AUTH LOGIN =", ok(r#"Auth { mechanism: "LOGIN", initial: Some("=") }"#)),
        ("AUTH", Err(Some(501))),
        ("AUTH PLAIN a b", Err(Some(501))),
    ];
    for ending in ["\r\n", "\n"] {
        for (line, want) in cases {
            assert_eq!(&parse_with(line, ending), want, "{line:?} ending {ending:?}");
        }
    }
}

#[test]
fn a_bdat_lines_chunk_is_framed_even_when_the_line_is_refused() {
    for (line, want) in [
        ("BDAT 17 FIRST", Some(ChunkFraming::Size(17))),
        ("bdat 5", Some(ChunkFraming::Size(5))),
        ("BDAT 5 LAST extra", Some(ChunkFraming::Size(5))),
        ("BDAT", Some(ChunkFraming::Unknown)),
        ("BDAT x LAST", Some(ChunkFraming::Unknown)),
        ("BDAT 18446744073709551616", Some(ChunkFraming::Unknown)),
        ("BDATA 5", None),
        ("DATA", None),
        ("NOOP BDAT 5", None),
    ] {
        assert_eq!(chunk_framing(line.as_bytes()), want, "{line}");
    }
}

#[test]
fn a_cr_inside_a_command_line_is_not_an_ending() {
    // One line, so one command (unrecognized), never NOOP followed by QUIT.
    assert_eq!(parse_with("NOOP\rQUIT", "\r\n"), Err(Some(500)));
    assert_eq!(parse_with("RSET \rQUIT", "\r\n"), Err(Some(501)));
}

#[test]
fn non_utf8_arguments_are_a_syntax_error() {
    assert_eq!(
        parse_command(b"MAIL FROM:<\xff@example.com>")
            .unwrap_err()
            .reply()
            .code(),
        501
    );
}

#[test]
fn utf8_addresses_parse() {
    let cmd = parse_command("RCPT TO:<用户@例子.广告>".as_bytes()).unwrap();
    assert_eq!(
        cmd,
        Command::Rcpt {
            to: Address::new_unchecked("用户@例子.广告"),
            params: RcptParams::default(),
        }
    );
}

/// Feeds `input` to a receiver in chunks of `size` octets; returns the body, summary and consumed count.
fn receive_in_chunks(
    input: &[u8],
    chunk: usize,
    max_size: usize,
    max_line: usize,
) -> Option<(Vec<u8>, DataSummary, usize)> {
    let mut rx = DataReceiver::new(max_size, max_line);
    let mut body = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(chunk.max(1)) {
        if let Some(n) = rx.feed(piece, &mut body) {
            return Some((body, rx.summary(), offset + n));
        }
        offset += piece.len();
    }
    None
}

fn assert_like_oracle(input: &[u8], max_size: usize, max_line: usize) {
    let want = oracle::receive(input, max_size, max_line);
    for chunk in [1, 2, 3, 7, input.len().max(1)] {
        assert_eq!(
            receive_in_chunks(input, chunk, max_size, max_line),
            want,
            "input {:?} chunk {chunk}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn data_table() {
    // (input after 354, message, consumed)
    let ends: &[(&[u8], &[u8], usize)] = &[
        (b".\r\n", b"", 3),
        (b"\r\n.\r\n", b"\r\n", 5),
        (
            b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            b"Subject: x\r\n\r\nbody\r\n",
            23,
        ),
        (b"..leading dot\r\n.\r\n", b".leading dot\r\n", 18),
        (b".x\r\n..\r\n.\r\n", b"x\r\n.\r\n", 11),
        (b"a.\r\n.b\r\n.\r\n", b"a.\r\nb\r\n", 11),
    ];
    for (input, body, consumed) in ends {
        let (got, summary, n) = receive_in_chunks(input, 1, 1 << 20, 1000).expect("ends");
        assert_eq!(
            (got.as_slice(), n),
            (*body, *consumed),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(!summary.bare_line_ending && !summary.too_big && !summary.long_line);
        assert_like_oracle(input, 1 << 20, 1000);
    }
}

/// Every way of writing "end of data" with a bare CR or LF somewhere: none ends DATA.
#[test]
fn only_crlf_dot_crlf_ends_data() {
    let endings = ["\r\n", "\n", "\r", "\r\r\n", "\n\r"];
    for before in endings {
        for after in endings {
            let input = format!("line{before}.{after}more\r\n");
            // "\r\r\n" holds a real CRLF after its bare CR.
            let ends = before.ends_with("\r\n") && after == "\r\n";
            let got = receive_in_chunks(input.as_bytes(), 1, 1 << 20, 1000);
            assert_eq!(got.is_some(), ends, "{input:?}");
            if !ends || before != "\r\n" {
                // Smuggled "ends" are kept as message text, and the message is refused later.
                let rest = format!("{input}.\r\n");
                let (_, summary, consumed) = receive_in_chunks(rest.as_bytes(), 1, 1 << 20, 1000).unwrap();
                assert!(summary.bare_line_ending, "{input:?}");
                if !ends {
                    assert_eq!(consumed, rest.len());
                }
            }
            assert_like_oracle(input.as_bytes(), 1 << 20, 1000);
        }
    }
}

#[test]
fn bare_line_endings_are_flagged_but_kept() {
    for input in [
        &b"a\nb\r\n.\r\n"[..],
        b"a\rb\r\n.\r\n",
        b"a\r\r\n.\r\n",
        b"\n.\r\n.\r\n",
    ] {
        let (_, summary, _) = receive_in_chunks(input, 1, 1 << 20, 1000).unwrap();
        assert!(summary.bare_line_ending, "{:?}", String::from_utf8_lossy(input));
        assert_like_oracle(input, 1 << 20, 1000);
    }
}

#[test]
fn size_limit_counts_unstuffed_octets_and_drops_the_body() {
    let at_limit = b"12345678\r\n.\r\n";
    let (body, summary, _) = receive_in_chunks(at_limit, 3, 10, 1000).unwrap();
    assert_eq!((body.len(), summary.too_big), (10, false));
    let stuffed = b"..345678\r\n.\r\n";
    assert!(!receive_in_chunks(stuffed, 3, 9, 1000).unwrap().1.too_big);
    let over = b"123456789\r\n.\r\n";
    let (body, summary, consumed) = receive_in_chunks(over, 3, 10, 1000).unwrap();
    assert_eq!((body.len(), summary.too_big, summary.size, consumed), (0, true, 11, 14));
}

#[test]
fn text_line_limit_includes_the_crlf() {
    let line = |n: usize| format!("{}\r\n.\r\n", "x".repeat(n));
    assert!(
        !receive_in_chunks(line(998).as_bytes(), 64, 1 << 20, 1000)
            .unwrap()
            .1
            .long_line
    );
    assert!(
        receive_in_chunks(line(999).as_bytes(), 64, 1 << 20, 1000)
            .unwrap()
            .1
            .long_line
    );
    assert_like_oracle(line(999).as_bytes(), 1 << 20, 1000);
}

/// A small deterministic generator, so the differential test needs no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn receiver_matches_oracle_on_random_input() {
    let alphabet = b"\r\n.a";
    let mut rng = Lcg(0x5eed);
    for _ in 0..20_000 {
        let len = (rng.next() % 24) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % 4) as usize]).collect();
        if rng.next().is_multiple_of(2) {
            input.extend_from_slice(b"\r\n.\r\n");
        }
        let max_size = (rng.next() % 16) as usize;
        let max_line = 3 + (rng.next() % 8) as usize;
        assert_like_oracle(&input, max_size, max_line);
    }
}

#[test]
fn chunk_receiver_matches_oracle_on_random_input_and_chunking() {
    let alphabet = b"\r\n.a\0";
    let mut rng = Lcg(0xb0a7);
    for _ in 0..20_000 {
        let len = (rng.next() % 24) as usize;
        let input: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % 5) as usize]).collect();
        let max_size = (rng.next() % 24) as usize;
        let max_line = (!rng.next().is_multiple_of(4)).then(|| 2 + (rng.next() % 8) as usize);
        let mut receiver = ChunkReceiver::new(max_size, max_line);
        let mut body = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + (rng.next() as usize % rest.len());
            receiver.feed(&rest[..n], &mut body);
            rest = &rest[n..];
        }
        let summary = receiver.finish(&mut body);
        assert_eq!(
            (body, summary),
            oracle::receive_chunks(&input, max_size, max_line),
            "{input:?} max_size {max_size} max_line {max_line:?}"
        );
    }
}
