//! The client side, for relaying upstream: reading replies and writing message data.

/// One whole reply from a server: its code and its lines' text (without the code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl ServerReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// The reply on one line, as a plugin or a log shows it: `550 5.1.1 No such user`.
    pub fn one_line(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" ")).trim_end().to_owned()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply longer than {0} octets")]
    TooLong(usize),
}

/// Longest reply accepted from a server, all lines together.
pub const MAX_REPLY: usize = 64 * 1024;

/// Parses the reply at the start of `input`: `Ok(Some((reply, consumed)))` when a whole
/// reply is there, `Ok(None)` when more input is needed.
pub fn parse_reply(input: &[u8]) -> Result<Option<(ServerReply, usize)>, ReplyError> {
    let mut lines = Vec::new();
    let mut code = None;
    let mut start = 0;
    while let Some(end) = memchr::memchr(b'\n', &input[start..]).map(|i| start + i) {
        let raw = &input[start..end];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = String::from_utf8_lossy(raw);
        let bytes = line.as_bytes();
        let this_code = (bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit))
            .then(|| line[..3].parse::<u16>().ok())
            .flatten()
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| ReplyError::Malformed(line.to_string()))?;
        if code.is_some_and(|c| c != this_code) {
            return Err(ReplyError::Malformed(line.to_string()));
        }
        code = Some(this_code);
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::Malformed(line.to_string())),
        };
        lines.push(text.to_owned());
        start = end + 1;
        if last {
            return Ok(Some((ServerReply { code: this_code, lines }, start)));
        }
    }
    if input.len() > MAX_REPLY {
        return Err(ReplyError::TooLong(MAX_REPLY));
    }
    Ok(None)
}

/// The message as sent after `354`: dot-stuffed (RFC 5321 4.5.2), ending in CRLF, then
/// `.<CRLF>`. Bare LFs become CRLF so that the upstream sees well-formed lines.
pub fn data_to_send(message: &[u8]) -> Vec<u8> {
    let mut out = crlf_lines(message, true);
    out.extend_from_slice(b".\r\n");
    out
}

/// The message as a server receives it once [`data_to_send`] has sent it: every line
/// ending in CRLF (bare LFs made CRLF, a last line without an ending given one).
pub fn with_crlf_endings(message: &[u8]) -> Vec<u8> {
    crlf_lines(message, false)
}

/// `message` with CRLF line endings, its lines that start with a dot given another if
/// `stuff`.
fn crlf_lines(message: &[u8], stuff: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 8);
    let mut line_start = true;
    let mut prev = 0u8;
    for &byte in message {
        if stuff && line_start && byte == b'.' {
            out.push(b'.');
        }
        if byte == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        line_start = byte == b'\n';
        prev = byte;
    }
    // What is written so far, not the message: a last line ending in a bare LF has its
    // CR now.
    if !message.is_empty() && !out.ends_with(b"\r\n") {
        if prev != b'\r' {
            out.extend_from_slice(b"\r\n");
        } else {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_single_and_multiline() {
        let (reply, used) = parse_reply(b"250 OK\r\nrest").unwrap().unwrap();
        assert_eq!((reply.code, reply.lines.clone(), used), (250, vec!["OK".to_owned()], 8));
        let input = b"250-mx.example\r\n250-SIZE 10\r\n250 HELP\r\n";
        let (reply, used) = parse_reply(input).unwrap().unwrap();
        assert_eq!(reply.lines, ["mx.example", "SIZE 10", "HELP"]);
        assert_eq!(used, input.len());
        assert_eq!(parse_reply(b"250-a\r\n250 b").unwrap(), None);
        assert_eq!(parse_reply(b"220\r\n").unwrap().unwrap().0.one_line(), "220");
        assert_eq!(
            parse_reply(b"550-5.1.1 No\r\n550 5.1.1 such user\r\n")
                .unwrap()
                .unwrap()
                .0
                .one_line(),
            "550 5.1.1 No 5.1.1 such user"
        );
    }

    #[test]
    fn malformed_replies() {
        for bad in [
            &b"hello\r\n"[..],
            b"25 x\r\n",
            b"250-a\r\n251 b\r\n",
            b"250xOK\r\n",
            b"999 x\r\n",
        ] {
            assert!(parse_reply(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_reply(&vec![b'2'; MAX_REPLY + 1]),
            Err(ReplyError::TooLong(MAX_REPLY))
        );
    }

    #[test]
    fn data_is_stuffed_and_terminated() {
        assert_eq!(data_to_send(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(data_to_send(b".x"), b"..x\r\n.\r\n");
        assert_eq!(data_to_send(b""), b".\r\n");
        assert_eq!(data_to_send(b"a\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(data_to_send(b"a\r"), b"a\r\n.\r\n");
        // A file with LF endings: its last line is not given a second ending.
        assert_eq!(data_to_send(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(data_to_send(b"a\n\n"), b"a\r\n\r\n.\r\n");
    }

    #[test]
    fn what_the_server_receives_has_crlf_endings_and_no_stuffing() {
        assert_eq!(with_crlf_endings(b"a\nb\n"), b"a\r\nb\r\n");
        assert_eq!(with_crlf_endings(b".x\n..\n"), b".x\r\n..\r\n");
        assert_eq!(with_crlf_endings(b"a"), b"a\r\n");
        assert_eq!(with_crlf_endings(b""), b"");
        assert_eq!(with_crlf_endings(b"a\r\n"), b"a\r\n");
    }
}
