//! SMTP replies as values (code, enhanced status code, text) with one writer for
//! single- and multi-line forms, and the check applied to replies that handlers supply.

use std::borrow::Cow;
use std::fmt;

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply: a three-digit code, an optional enhanced code, and text whose lines are
/// separated by `\n` (the writer turns them into a multi-line reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    code: u16,
    enhanced: Option<EnhancedCode>,
    text: Cow<'static, str>,
}

const fn esc(class: u8, subject: u16, detail: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode { class, subject, detail })
}

impl Reply {
    /// A reply with an enhanced code, for the constants below.
    pub const fn fixed(code: u16, enhanced: (u8, u16, u16), text: &'static str) -> Reply {
        Reply {
            code,
            enhanced: esc(enhanced.0, enhanced.1, enhanced.2),
            text: Cow::Borrowed(text),
        }
    }

    /// A reply that never carries an enhanced code (the greeting, EHLO, 354).
    pub const fn plain(code: u16, text: &'static str) -> Reply {
        Reply {
            code,
            enhanced: None,
            text: Cow::Borrowed(text),
        }
    }

    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// The reply on one line as a handler would answer it, e.g.
    /// `552 5.3.4 Message size exceeds fixed maximum message size`.
    pub fn one_line(&self) -> String {
        match self.enhanced {
            Some(e) => format!("{} {e} {}", self.code, self.text.replace('\n', " ")),
            None => format!("{} {}", self.code, self.text.replace('\n', " ")),
        }
    }

    /// The same code and enhanced code with other text.
    pub fn with_text(&self, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            text: text.into(),
            ..self.clone()
        }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> Option<EnhancedCode> {
        self.enhanced
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 5xx: the client must not retry as is.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the wire form. `with_enhanced` is true once the client has said EHLO
    /// (RFC 2034: enhanced codes go on every reply after that, except to EHLO itself).
    pub fn write_to(&self, out: &mut Vec<u8>, with_enhanced: bool) {
        // Written octet by octet, not with `format!`: every reply of every session comes
        // through here. The code and the enhanced code (`250 2.0.0 `) are put together
        // once for all the lines, and the room for all of them is reserved at once.
        // The longest: `65535-255.65535.65535 `, 22 octets.
        let mut prefix = [0u8; 22];
        let mut len = put(&mut prefix, 0, decimal(self.code, &mut [0; 5]));
        let separator = len;
        len = put(&mut prefix, len, b" ");
        if let Some(e) = self.enhanced.filter(|_| with_enhanced) {
            len = put(&mut prefix, len, decimal(u16::from(e.class), &mut [0; 5]));
            len = put(&mut prefix, len, b".");
            len = put(&mut prefix, len, decimal(e.subject, &mut [0; 5]));
            len = put(&mut prefix, len, b".");
            len = put(&mut prefix, len, decimal(e.detail, &mut [0; 5]));
            len = put(&mut prefix, len, b" ");
        }
        let text = self.text.as_bytes();
        let lines = 1 + text.iter().filter(|&&b| b == b'\n').count();
        out.reserve(text.len() + lines * (len + 2));
        let mut rest = text;
        loop {
            let (line, more) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], Some(&rest[end + 1..])),
                None => (rest, None),
            };
            // The separator after the code: `-` on every line but the last.
            prefix[separator] = if more.is_some() { b'-' } else { b' ' };
            out.extend_from_slice(&prefix[..len]);
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            match more {
                Some(next) => rest = next,
                None => break,
            }
        }
    }

    /// Checks a reply string that a message handler returned (smtpd's contract:
    /// `"550 No such user"`). The code must be 2xx, 4xx or 5xx; an enhanced code of the same
    /// class may follow; there must be no CR or LF, nor any other control character but
    /// tab (RFC 5321 4.2's textstring; UTF-8 past ASCII is let through, as RFC 6531 allows).
    /// A missing enhanced code becomes `X.0.0`. The reply as sent, enhanced code included,
    /// must fit a reply line (RFC 5321 4.5.3.1.5).
    pub fn from_handler(s: &str) -> Result<Reply, BadReply> {
        if s.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(BadReply::LineBreak);
        }
        if s.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(BadReply::Control);
        }
        // What is sent is never shorter than what the handler wrote: a cheap first check.
        if s.len() > MAX_REPLY_LINE {
            return Err(BadReply::TooLong);
        }
        let b = s.as_bytes();
        let code_ok = b.len() >= 3
            && matches!(b[0], b'2' | b'4' | b'5')
            && (b'0'..=b'5').contains(&b[1])
            && b[2].is_ascii_digit()
            && (b.len() == 3 || b[3] == b' ');
        if !code_ok {
            return Err(BadReply::Code);
        }
        let code: u16 = s[..3].parse().map_err(|_| BadReply::Code)?;
        let class = b[0] - b'0';
        let rest = s.get(4..).unwrap_or("");
        let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (enhanced, text) = match parse_enhanced(first) {
            Some(e) if e.class != class => return Err(BadReply::EnhancedClass),
            Some(e) => (e, after),
            None => {
                let default = EnhancedCode {
                    class,
                    subject: 0,
                    detail: 0,
                };
                (default, rest)
            }
        };
        let reply = Reply::new(code, Some(enhanced), text.to_owned());
        if reply.line_len(true) > MAX_REPLY_LINE {
            return Err(BadReply::TooLong);
        }
        Ok(reply)
    }

    /// The octets of the reply's longest line as sent, without its CRLF.
    fn line_len(&self, with_enhanced: bool) -> usize {
        let enhanced = match self.enhanced.filter(|_| with_enhanced) {
            Some(e) => decimal_len(e.class.into()) + decimal_len(e.subject) + decimal_len(e.detail) + 3,
            None => 0,
        };
        let longest = self.text.split('\n').map(str::len).max().unwrap_or(0);
        3 + 1 + enhanced + longest
    }
}

/// Longest reply line, without its CRLF: a reply line is at most 512 octets with it
/// (RFC 5321 4.5.3.1.5).
const MAX_REPLY_LINE: usize = 510;

fn decimal_len(n: u16) -> usize {
    n.checked_ilog10().map_or(1, |digits| digits as usize + 1)
}

fn parse_enhanced(s: &str) -> Option<EnhancedCode> {
    let mut parts = s.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next().filter(|p| p.len() <= 3)?.parse().ok()?;
    let detail: u16 = parts.next().filter(|p| p.len() <= 3)?.parse().ok()?;
    (parts.next().is_none() && matches!(class, 2 | 4 | 5)).then_some(EnhancedCode { class, subject, detail })
}

/// Why a handler's reply string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadReply {
    /// It does not start with a 2xx, 4xx or 5xx code followed by a space or the end.
    Code,
    /// Its enhanced code's class differs from the reply code's first digit.
    EnhancedClass,
    /// It contains CR or LF, which would let it inject protocol lines.
    LineBreak,
    /// It contains another control character (NUL, ESC, DEL, ...), which no reply may
    /// carry and which would reach the client and the log as it is.
    Control,
    TooLong,
}

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadReply::Code => "does not start with a 2xx, 4xx or 5xx reply code",
            BadReply::EnhancedClass => "its enhanced status code's class differs from the reply code",
            BadReply::LineBreak => "contains CR or LF",
            BadReply::Control => "contains a control character",
            BadReply::TooLong => "is longer than 510 octets as sent",
        })
    }
}

impl std::error::Error for BadReply {}

/// The replies the server sends, by name. Text follows CPython's smtpd where it had one.
pub mod replies {
    use super::Reply;

    pub const OK: Reply = Reply::fixed(250, (2, 0, 0), "OK");
    pub const SENDER_OK: Reply = Reply::fixed(250, (2, 1, 0), "OK");
    pub const RECIPIENT_OK: Reply = Reply::fixed(250, (2, 1, 5), "OK");
    pub const MESSAGE_ACCEPTED: Reply = Reply::fixed(250, (2, 0, 0), "OK");
    pub const START_DATA: Reply = Reply::plain(354, "End data with <CR><LF>.<CR><LF>");
    pub const BYE: Reply = Reply::fixed(221, (2, 0, 0), "Bye");
    pub const CANNOT_VRFY: Reply = Reply::fixed(
        252,
        (2, 5, 0),
        "Cannot VRFY user, but will accept message and attempt delivery",
    );
    pub const EXPN_NOT_IMPLEMENTED: Reply = Reply::fixed(502, (5, 5, 1), "EXPN not implemented");
    pub const HELP: Reply = Reply::fixed(
        214,
        (2, 0, 0),
        "Supported commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP",
    );
    pub const HELP_UNKNOWN_TOPIC: Reply = Reply::fixed(504, (5, 5, 1), "HELP topic not recognized");

    pub const UNRECOGNIZED: Reply = Reply::fixed(500, (5, 5, 2), "Error: command not recognized");
    pub const LINE_TOO_LONG: Reply = Reply::fixed(500, (5, 5, 2), "Error: line too long");
    pub const BARE_LF_COMMAND: Reply = Reply::fixed(
        500,
        (5, 5, 2),
        "Error: command line ended by a bare LF; end lines with CRLF (RFC 5321 2.3.8)",
    );
    /// RFC 2033 4.1: an LMTP server takes LHLO, not HELO or EHLO.
    pub const USE_LHLO: Reply = Reply::fixed(500, (5, 5, 1), "Error: this is an LMTP server: greet with LHLO");
    pub const NEED_HELO: Reply = Reply::fixed(503, (5, 5, 1), "Error: send HELO/EHLO first");
    pub const NESTED_MAIL: Reply = Reply::fixed(503, (5, 5, 1), "Error: nested MAIL command");
    pub const NEED_MAIL: Reply = Reply::fixed(503, (5, 5, 1), "Error: need MAIL command");
    /// RFC 3463 4.3.1: the server has no room for the message now; the client retries.
    pub const NO_ROOM: Reply = Reply::fixed(452, (4, 3, 1), "Insufficient system storage, try again later");
    /// A BDAT line whose size cannot be read: where its chunk ends is unknown, so the
    /// session cannot go on without reading the chunk as commands.
    pub const CHUNK_UNFRAMED: Reply = Reply::fixed(
        421,
        (4, 5, 2),
        "Error: a BDAT command whose chunk size cannot be read; closing the connection",
    );
    pub const DATA_AFTER_BDAT: Reply = Reply::fixed(503, (5, 5, 1), "Error: DATA in a transaction that BDAT started");
    pub const BINARYMIME_NEEDS_BDAT: Reply =
        Reply::fixed(503, (5, 5, 1), "Error: BODY=BINARYMIME is sent with BDAT, not DATA");
    pub const NEED_RCPT: Reply = Reply::fixed(503, (5, 5, 1), "Error: need RCPT command");
    pub const PARAMS_NEED_EHLO: Reply = Reply::fixed(555, (5, 5, 4), "MAIL/RCPT parameters need EHLO, not HELO");
    pub const SIZE_EXCEEDED: Reply = Reply::fixed(552, (5, 3, 4), "Message size exceeds fixed maximum message size");
    pub const TOO_MANY_RECIPIENTS: Reply = Reply::fixed(452, (4, 5, 3), "Too many recipients");
    pub const NON_ASCII_NEEDS_SMTPUTF8: Reply =
        Reply::fixed(553, (5, 6, 7), "Non-ASCII address needs the SMTPUTF8 parameter");
    pub const TEXT_LINE_TOO_LONG: Reply =
        Reply::fixed(500, (5, 5, 2), "Error: message has a line longer than the limit");
    /// More `Received:` fields than the hop limit: a routing loop (RFC 5321 6.3).
    pub const TOO_MANY_HOPS: Reply = Reply::fixed(554, (5, 4, 6), "Too many hops: routing loop detected");
    pub const BARE_LINE_ENDING: Reply = Reply::fixed(
        550,
        (5, 6, 0),
        "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 2.3.8)",
    );

    pub const LOCAL_ERROR: Reply = Reply::fixed(451, (4, 3, 0), "Requested action aborted: local error in processing");
    pub const TOO_MANY_ERRORS: Reply = Reply::fixed(421, (4, 7, 0), "Too many errors, closing connection");
    pub const TOO_MANY_CONNECTIONS: Reply = Reply::fixed(421, (4, 7, 0), "Too many connections, try again later");
    pub const TIMEOUT: Reply = Reply::fixed(421, (4, 4, 2), "Error: timeout exceeded, closing connection");
    pub const CONNECTION_RATE: Reply = Reply::fixed(
        421,
        (4, 7, 0),
        "Too many connections from your address, try again later",
    );
    pub const COMMAND_RATE: Reply = Reply::fixed(
        421,
        (4, 7, 0),
        "Too many commands from your address, closing connection",
    );
    pub const EARLY_TALKER: Reply = Reply::fixed(554, (5, 5, 1), "Error: talking before the greeting");
    pub const NOT_THROUGH_PROXY: Reply = Reply::fixed(
        554,
        (5, 7, 1),
        "No SMTP service here: connect through the load balancer",
    );
    pub const AUTH_OK: Reply = Reply::fixed(235, (2, 7, 0), "Authentication successful");
    pub const AUTH_FAILED: Reply = Reply::fixed(535, (5, 7, 8), "Authentication credentials invalid");
    pub const AUTH_NEEDS_TLS: Reply = Reply::fixed(
        538,
        (5, 7, 11),
        "Encryption required for requested authentication mechanism",
    );
    pub const AUTH_NOT_AVAILABLE: Reply = Reply::fixed(502, (5, 5, 1), "Error: AUTH not available");
    pub const AUTH_ALREADY: Reply = Reply::fixed(503, (5, 5, 1), "Error: already authenticated");
    pub const AUTH_UNKNOWN_MECHANISM: Reply = Reply::fixed(504, (5, 5, 4), "Unrecognized authentication mechanism");
    pub const AUTH_CANCELLED: Reply = Reply::fixed(501, (5, 0, 0), "Authentication cancelled");
    pub const AUTH_MALFORMED: Reply = Reply::fixed(501, (5, 5, 2), "Cannot decode the response");
    pub const AUTH_REQUIRED: Reply = Reply::fixed(530, (5, 7, 0), "Authentication required");
    pub const AUTH_TOO_MANY_FAILURES: Reply =
        Reply::fixed(421, (4, 7, 0), "Too many failed authentications, closing connection");
    pub const READY_FOR_TLS: Reply = Reply::fixed(220, (2, 0, 0), "Ready to start TLS");
    pub const TLS_NOT_AVAILABLE: Reply = Reply::fixed(502, (5, 5, 1), "Error: STARTTLS not available");
    pub const TLS_ALREADY_ON: Reply = Reply::fixed(503, (5, 5, 1), "Error: TLS already active");
    /// STARTTLS or AUTH between MAIL and the end of the transaction.
    pub const TRANSACTION_IN_PROGRESS: Reply = Reply::fixed(503, (5, 5, 1), "Error: MAIL transaction in progress");
    pub const SHUTTING_DOWN: Reply = Reply::fixed(421, (4, 3, 2), "Service shutting down, closing connection");
}

/// Puts `octets` at `at` in `buffer`; gives where they end.
fn put(buffer: &mut [u8], at: usize, octets: &[u8]) -> usize {
    buffer[at..at + octets.len()].copy_from_slice(octets);
    at + octets.len()
}

/// `n` in decimal, written into the end of `digits`.
fn decimal(n: u16, digits: &mut [u8; 5]) -> &[u8] {
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_is_what_a_handler_would_answer() {
        assert_eq!(
            replies::SIZE_EXCEEDED.one_line(),
            "552 5.3.4 Message size exceeds fixed maximum message size"
        );
        assert_eq!(Reply::new(250, None, "a\nb").one_line(), "250 a b");
        let line = replies::TOO_MANY_RECIPIENTS.one_line();
        assert_eq!(Reply::from_handler(&line).unwrap(), replies::TOO_MANY_RECIPIENTS);
    }

    fn wire(r: &Reply, enhanced: bool) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out, enhanced);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_line_with_and_without_enhanced_code() {
        assert_eq!(wire(&replies::SENDER_OK, true), "250 2.1.0 OK\r\n");
        assert_eq!(wire(&replies::SENDER_OK, false), "250 OK\r\n");
        assert_eq!(
            wire(&replies::START_DATA, true),
            "354 End data with <CR><LF>.<CR><LF>\r\n"
        );
    }

    #[test]
    fn multi_line_uses_dash_until_the_last_line() {
        let r = Reply::new(250, None, "mx.example\nSIZE 100\nHELP");
        assert_eq!(wire(&r, true), "250-mx.example\r\n250-SIZE 100\r\n250 HELP\r\n");
    }

    #[test]
    fn handler_reply_without_enhanced_code_gets_class_default() {
        let r = Reply::from_handler("550 No such user").unwrap();
        assert_eq!(wire(&r, true), "550 5.0.0 No such user\r\n");
        assert_eq!(wire(&r, false), "550 No such user\r\n");
    }

    #[test]
    fn handler_reply_keeps_its_enhanced_code() {
        let r = Reply::from_handler("550 5.1.1 No such user").unwrap();
        assert_eq!(wire(&r, true), "550 5.1.1 No such user\r\n");
        let bare = Reply::from_handler("451").unwrap();
        assert_eq!(wire(&bare, true), "451 4.0.0 \r\n");
    }

    #[test]
    fn enhanced_codes_of_several_digits_and_on_every_line() {
        let r = Reply::from_handler("550 5.7.26 Unauthenticated email is not accepted").unwrap();
        assert_eq!(wire(&r, true), "550 5.7.26 Unauthenticated email is not accepted\r\n");
        let r = Reply::new(451, esc(4, 100, 255), "one\ntwo");
        assert_eq!(wire(&r, true), "451-4.100.255 one\r\n451 4.100.255 two\r\n");
        for n in [0, 7, 10, 65_535] {
            assert_eq!(decimal(n, &mut [0; 5]), n.to_string().as_bytes());
        }
    }

    #[test]
    fn empty_lines_and_codes_of_other_lengths_are_written_as_they_are() {
        assert_eq!(wire(&Reply::new(250, None, ""), true), "250 \r\n");
        assert_eq!(wire(&Reply::new(250, None, "a\n"), true), "250-a\r\n250 \r\n");
        assert_eq!(
            wire(&Reply::new(250, None, "\n\nb"), false),
            "250-\r\n250-\r\n250 b\r\n"
        );
        // Codes are three digits on the wire; the writer does not count on it.
        assert_eq!(wire(&Reply::new(25, None, "x\ny"), false), "25-x\r\n25 y\r\n");
        assert_eq!(
            wire(&Reply::new(2500, esc(2, 0, 0), "x\ny"), true),
            "2500-2.0.0 x\r\n2500 2.0.0 y\r\n"
        );
        // Appended to what is there.
        let mut out = b"220 hi\r\n".to_vec();
        replies::SENDER_OK.write_to(&mut out, true);
        assert_eq!(out, b"220 hi\r\n250 2.1.0 OK\r\n");
    }

    #[test]
    fn malformed_handler_replies_are_refused() {
        for (s, why) in [
            ("", BadReply::Code),
            ("OK", BadReply::Code),
            ("350 go on", BadReply::Code),
            ("150 hello", BadReply::Code),
            ("25 short", BadReply::Code),
            ("2500 long", BadReply::Code),
            ("260 bad second digit", BadReply::Code),
            ("550-multi", BadReply::Code),
            ("550 ok\r\n250 injected", BadReply::LineBreak),
            ("550 bare\nlf", BadReply::LineBreak),
            ("550 \x1b[31mred", BadReply::Control),
            ("550 nul\0", BadReply::Control),
            ("550 del\x7f", BadReply::Control),
            ("550 4.1.1 class mismatch", BadReply::EnhancedClass),
        ] {
            assert_eq!(Reply::from_handler(s), Err(why), "{s:?}");
        }
        // Tab is text; so is UTF-8 past ASCII.
        assert_eq!(
            Reply::from_handler("550 5.1.1 tab\there, naïve").map(|r| r.text().to_owned()),
            Ok("tab\there, naïve".to_owned())
        );
        assert_eq!(
            Reply::from_handler(&format!("550 {}", "x".repeat(600))),
            Err(BadReply::TooLong)
        );
    }

    #[test]
    fn the_length_cap_applies_to_the_reply_as_sent() {
        // 510 octets as written, 516 once the host adds `5.0.0 `.
        let bare = format!("550 {}", "x".repeat(506));
        assert_eq!(bare.len(), 510);
        assert_eq!(Reply::from_handler(&bare), Err(BadReply::TooLong));
        // With its own enhanced code, 510 octets as written is 510 as sent.
        let coded = format!("550 5.7.1 {}", "x".repeat(500));
        let reply = Reply::from_handler(&coded).unwrap();
        assert_eq!(wire(&reply, true).len(), 512);
        assert_eq!(wire(&reply, true), format!("{coded}\r\n"));
        let fits = format!("550 {}", "x".repeat(500));
        assert_eq!(wire(&Reply::from_handler(&fits).unwrap(), true).len(), 512);
        let over = format!("550 5.7.10 {}", "x".repeat(500));
        assert_eq!(Reply::from_handler(&over), Err(BadReply::TooLong));
        assert_eq!(Reply::new(250, esc(2, 100, 7), "ab").line_len(true), 3 + 1 + 8 + 2);
        assert_eq!(Reply::new(250, esc(2, 100, 7), "ab").line_len(false), 6);
    }
}
