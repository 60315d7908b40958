//! The DATA receiver: finds the end of a message, removes dot-stuffing and checks
//! size and line limits, incrementally over whatever chunks the network delivers.
//!
//! Only `<CRLF>.<CRLF>` ends DATA (RFC 5321 4.1.1.4); a bare CR or bare LF never does,
//! in any combination, which is what defeats SMTP smuggling. A message that contains a
//! bare CR or LF is still read to its real end, and then refused (`bare_line_ending`),
//! so that nothing downstream can read a different end into it.

use memchr::memchr2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line: a '.' here is either stuffing or the end.
    LineStart,
    /// Inside a line.
    Text,
    /// After a CR inside a line.
    Cr,
    /// After a '.' at the start of a line.
    Dot,
    /// After ".\r" at the start of a line.
    DotCr,
    /// The end was found.
    Done,
}

/// What was received, for the reply after the end of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSummary {
    /// Message octets after unstuffing, counted past the limit too.
    pub size: usize,
    /// Over the size limit: the body was dropped.
    pub too_big: bool,
    /// A line (CRLF included) was longer than the text line limit.
    pub long_line: bool,
    /// A CR not followed by LF, or an LF not preceded by CR.
    pub bare_line_ending: bool,
}

/// Receives one message after `354`. Feed it input; it appends the message to `body`.
#[derive(Clone, Debug)]
pub struct DataReceiver {
    state: State,
    line_len: usize,
    max_size: usize,
    max_line: usize,
    summary: DataSummary,
}

impl DataReceiver {
    /// `max_size` bounds the message (RFC 1870), `max_line` a line with its CRLF (1000 in RFC 5321).
    pub fn new(max_size: usize, max_line: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            line_len: 0,
            max_size,
            max_line,
            summary: DataSummary {
                size: 0,
                too_big: false,
                long_line: false,
                bare_line_ending: false,
            },
        }
    }

    /// Consumes `input`, appending message octets to `body`. Returns `Some(n)` when the
    /// end of data is the last of the first `n` octets (the rest belongs to the next
    /// command), `None` when all of `input` was taken and more is needed.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Option<usize> {
        // What comes out is at most what goes in plus a CR held from the chunk before:
        // room for it all at once instead of a reallocation every time the body doubles.
        if !self.summary.too_big {
            body.reserve((input.len() + 1).min(self.max_size.saturating_sub(self.summary.size)));
        }
        let mut i = 0;
        while i < input.len() || self.state == State::Done {
            match self.state {
                State::Done => return Some(i),
                State::Text => {
                    let rest = &input[i..];
                    let run = memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                    // The usual line, its text and CRLF here: taken at once.
                    if rest.get(run..run + 2) == Some(b"\r\n") {
                        self.emit(body, &rest[..run + 2]);
                        self.add_to_line(run + 1);
                        self.end_line();
                        self.state = State::LineStart;
                        i += run + 2;
                        continue;
                    }
                    self.emit(body, &rest[..run]);
                    self.add_to_line(run);
                    i += run;
                    match input.get(i) {
                        Some(b'\r') => self.state = State::Cr,
                        Some(_) => {
                            self.summary.bare_line_ending = true;
                            self.emit(body, b"\n");
                        }
                        None => break,
                    }
                    self.add_to_line(1);
                    i += 1;
                }
                State::LineStart => {
                    if input[i] == b'.' {
                        self.state = State::Dot;
                        self.add_to_line(1);
                        i += 1;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Cr => {
                    if input[i] == b'\n' {
                        self.emit(body, b"\r\n");
                        self.end_line();
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        // A bare CR; what follows is read as text (another CR included).
                        self.summary.bare_line_ending = true;
                        self.emit(body, b"\r");
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        self.add_to_line(1);
                        i += 1;
                    } else {
                        // Dot-stuffing (RFC 5321 4.5.2): the leading dot is dropped.
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.end_line();
                        self.state = State::Done;
                        i += 1;
                    } else {
                        // ".\r" then not LF: a stuffed dot and a CR that is not (yet) an ending.
                        self.state = State::Cr;
                    }
                }
            }
        }
        None
    }

    pub fn summary(&self) -> DataSummary {
        self.summary
    }

    fn emit(&mut self, body: &mut Vec<u8>, octets: &[u8]) {
        self.summary.size += octets.len();
        if self.summary.size > self.max_size {
            if !self.summary.too_big {
                self.summary.too_big = true;
                *body = Vec::new();
            }
        } else {
            body.extend_from_slice(octets);
        }
    }

    fn add_to_line(&mut self, octets: usize) {
        self.line_len += octets;
        if self.line_len > self.max_line {
            self.summary.long_line = true;
        }
    }

    fn end_line(&mut self) {
        self.add_to_line(1);
        self.line_len = 0;
    }
}
