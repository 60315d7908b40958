//! The text CPython's `DebuggingServer.process_message` printed for a message.

pub struct Message<'a> {
    pub peer_ip: &'a str,
    pub mail_from: &'a str,
    pub rcpt_tos: &'a [String],
    pub data: &'a [u8],
    pub mail_options: &'a [String],
    pub rcpt_options: &'a [String],
    /// The TLS version and cipher suite, if the session is encrypted.
    pub tls: Option<(&'a str, &'a str)>,
    /// Who the client authenticated as, if it did.
    pub authenticated: Option<&'a str>,
}

/// The options if any, the headers, an `X-Peer:` line where the headers end, the body,
/// between two marker lines; with `envelope`, the sender and recipients after the first,
/// and how the session was protected (TLS, AUTH).
/// Lines end in LF, as Python printed them; text that is not UTF-8 is shown with U+FFFD.
/// At most `max_printed` octets of the message are printed; a line after them says how
/// many more there were, so that a cut message is never taken for a whole one.
pub fn render(message: &Message, envelope: bool, max_printed: usize) -> Vec<u8> {
    let (data, not_printed) = match message.data.split_at_checked(max_printed) {
        Some((printed, rest)) if !rest.is_empty() => (printed, rest.len()),
        _ => (message.data, 0),
    };
    let mut out = Vec::with_capacity(data.len() + 256);
    out.extend_from_slice(b"---------- MESSAGE FOLLOWS ----------\n");
    if envelope {
        out.extend_from_slice(format!("mail from: '{}'\n", message.mail_from).as_bytes());
        out.extend_from_slice(format!("rcpt tos: {}\n", python_list(message.rcpt_tos)).as_bytes());
        let tls = match message.tls {
            Some((version, cipher)) => format!("tls: {version} {cipher}\n"),
            None => "tls: none\n".to_owned(),
        };
        out.extend_from_slice(tls.as_bytes());
        if let Some(who) = message.authenticated {
            out.extend_from_slice(format!("authenticated: '{who}'\n").as_bytes());
        }
    }
    if !message.mail_options.is_empty() {
        out.extend_from_slice(format!("mail options: {}\n", python_list(message.mail_options)).as_bytes());
    }
    if !message.rcpt_options.is_empty() {
        out.extend_from_slice(format!("rcpt options: {}\n\n", python_list(message.rcpt_options)).as_bytes());
    }
    // Almost all mail is valid UTF-8 and is copied as it is; the rest is made so.
    let lossy;
    let text = match std::str::from_utf8(data) {
        Ok(_) => data,
        Err(_) => {
            lossy = String::from_utf8_lossy(data).into_owned();
            lossy.as_bytes()
        }
    };
    // smtpd's data had no final CRLF; ours keeps it.
    let text = text.strip_suffix(b"\r\n").unwrap_or(text);
    let mut in_headers = true;
    if !text.is_empty() {
        for line in crlf_lines(text) {
            if in_headers && line.is_empty() {
                push_peer_header(&mut out, message.peer_ip);
                in_headers = false;
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
    }
    // A message with no body: smtpd printed no X-Peer at all; say it after the headers.
    if in_headers {
        push_peer_header(&mut out, message.peer_ip);
    }
    if not_printed > 0 {
        let note = format!(
            "[wasmtpd: {not_printed} more octets not printed; the message has {}, the setting max_printed_bytes is {max_printed}]\n",
            message.data.len()
        );
        out.extend_from_slice(note.as_bytes());
    }
    out.extend_from_slice(b"------------ END MESSAGE ------------\n");
    out
}

fn push_peer_header(out: &mut Vec<u8>, peer_ip: &str) {
    out.extend_from_slice(b"X-Peer: ");
    out.extend_from_slice(peer_ip.as_bytes());
    out.push(b'\n');
}

/// The lines of `text` split at each CRLF (a lone CR or LF stays inside its line).
fn crlf_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut from = 0;
        while let Some(lf) = find_lf(&current[from..]).map(|i| from + i) {
            if lf > 0 && current[lf - 1] == b'\r' {
                rest = Some(&current[lf + 1..]);
                return Some(&current[..lf - 1]);
            }
            from = lf + 1;
        }
        rest = None;
        Some(current)
    })
}

/// The index of the first LF, eight octets at a time: a guest has no SIMD and no memchr,
/// and a byte-by-byte scan was most of this plugin's time per message.
fn find_lf(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_ne_bytes(chunk.try_into().expect("eight octets")) ^ LFS;
        // Non-zero exactly when some octet of `word` is zero, i.e. was an LF.
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            let at = chunk.iter().position(|&b| b == b'\n').expect("the word holds an LF");
            return Some(i * 8 + at);
        }
    }
    let tail = chunks.remainder();
    tail.iter()
        .position(|&b| b == b'\n')
        .map(|at| bytes.len() - tail.len() + at)
}

/// `['A', 'B']`, as Python prints a list of strings.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(data: &str, mail_options: &[&str], envelope: bool) -> String {
        let mail_options: Vec<String> = mail_options.iter().map(|s| s.to_string()).collect();
        let message = Message {
            peer_ip: "127.0.0.1",
            mail_from: "author@example.com",
            rcpt_tos: &["recipient@example.com".to_owned()],
            data: data.as_bytes(),
            mail_options: &mail_options,
            rcpt_options: &[],
            tls: None,
            authenticated: None,
        };
        String::from_utf8(render(&message, envelope, usize::MAX)).unwrap()
    }

    #[test]
    fn finds_the_first_lf_at_every_offset() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = vec![b'a'; len];
                if at < len {
                    bytes[at] = b'\n';
                    bytes.extend_from_slice(b"\n");
                }
                let expected = (at < len).then_some(at);
                assert_eq!(find_lf(&bytes), expected, "len {len}, LF at {at}");
            }
        }
    }

    #[test]
    fn splits_at_crlf_only() {
        let lines: Vec<&[u8]> = crlf_lines(b"a\nb\r\nc\rd\r\n\r\ne").collect();
        assert_eq!(lines, [&b"a\nb"[..], b"c\rd", b"", b"e"]);
        let lines: Vec<&[u8]> = crlf_lines(b"\r\n").collect();
        assert_eq!(lines, [&b""[..], b""]);
    }

    #[test]
    fn prints_like_the_debugging_server() {
        assert_eq!(
            render_with(
                "To: r@example.com\r\nSubject: hi\r\n\r\nbody line\r\n",
                &["SIZE=44"],
                false
            ),
            "---------- MESSAGE FOLLOWS ----------\n\
             mail options: ['SIZE=44']\n\
             To: r@example.com\n\
             Subject: hi\n\
             X-Peer: 127.0.0.1\n\
             \n\
             body line\n\
             ------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn the_envelope_when_asked() {
        assert_eq!(
            render_with("Subject: x\r\n\r\nb\r\n", &[], true),
            "---------- MESSAGE FOLLOWS ----------\n\
             mail from: 'author@example.com'\n\
             rcpt tos: ['recipient@example.com']\n\
             tls: none\n\
             Subject: x\n\
             X-Peer: 127.0.0.1\n\
             \n\
             b\n\
             ------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn the_envelope_tells_how_the_session_was_protected() {
        let message = Message {
            peer_ip: "127.0.0.1",
            mail_from: "a@example.com",
            rcpt_tos: &[],
            data: b"Subject: x\r\n\r\nb\r\n",
            mail_options: &[],
            rcpt_options: &[],
            tls: Some(("TLSv1_3", "TLS13_AES_256_GCM_SHA384")),
            authenticated: Some("alice"),
        };
        let printed = String::from_utf8(render(&message, true, usize::MAX)).unwrap();
        assert!(
            printed.contains("rcpt tos: []\ntls: TLSv1_3 TLS13_AES_256_GCM_SHA384\nauthenticated: 'alice'\n"),
            "{printed}"
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_shown_with_replacement_characters() {
        let message = Message {
            peer_ip: "127.0.0.1",
            mail_from: "a@example.com",
            rcpt_tos: &[],
            data: b"Subject: \xff\r\n\r\nb\xfe\r\n",
            mail_options: &[],
            rcpt_options: &[],
            tls: None,
            authenticated: None,
        };
        assert_eq!(
            String::from_utf8(render(&message, false, usize::MAX)).unwrap(),
            "---------- MESSAGE FOLLOWS ----------\nSubject: \u{FFFD}\nX-Peer: 127.0.0.1\n\nb\u{FFFD}\n------------ END MESSAGE ------------\n"
        );
    }

    #[test]
    fn a_message_past_the_print_limit_is_cut_and_says_so() {
        let message = Message {
            peer_ip: "127.0.0.1",
            mail_from: "a@example.com",
            rcpt_tos: &[],
            data: b"Subject: x\r\n\r\n0123456789\r\n",
            mail_options: &[],
            rcpt_options: &[],
            tls: None,
            authenticated: None,
        };
        assert_eq!(
            String::from_utf8(render(&message, false, 19)).unwrap(),
            "---------- MESSAGE FOLLOWS ----------\nSubject: x\nX-Peer: 127.0.0.1\n\n01234\n\
             [wasmtpd: 7 more octets not printed; the message has 26, the setting max_printed_bytes is 19]\n\
             ------------ END MESSAGE ------------\n"
        );
        // At the limit exactly: whole, no note.
        let whole = String::from_utf8(render(&message, false, 26)).unwrap();
        assert!(
            whole.contains("0123456789\n---") && !whole.contains("not printed"),
            "{whole}"
        );
    }

    #[test]
    fn headers_only_and_empty_messages_still_name_the_peer() {
        assert_eq!(
            render_with("Subject: x\r\n", &[], false),
            "---------- MESSAGE FOLLOWS ----------\nSubject: x\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
        assert_eq!(
            render_with("", &[], false),
            "---------- MESSAGE FOLLOWS ----------\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
        );
    }
}
