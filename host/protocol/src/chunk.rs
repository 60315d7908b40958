//! BDAT (RFC 3030): a message sent in chunks whose sizes the client declares. There is no
//! end marker and no dot-stuffing: the sizes frame the message, so nothing inside it can
//! end it or start a command (BDAT has no smuggling surface of its own).
//!
//! A text body (7BIT or 8BITMIME) keeps DATA's rules, so that it can leave by DATA
//! unchanged: lines of at most `max_line` octets with their CRLF, no bare CR or LF. A
//! `BODY=BINARYMIME` body is octets: only its size is limited.

use memchr::memchr2;

use crate::DataSummary;

/// Receives the chunks of one message, as the session reads them off the wire.
#[derive(Clone, Debug)]
pub struct ChunkReceiver {
    max_size: usize,
    /// `None` for a binary body: no line rules.
    max_line: Option<usize>,
    line_len: usize,
    /// The last octet taken was a CR (whose LF may come in the next piece).
    after_cr: bool,
    /// The last two octets taken: whether the message ends with CRLF, told without the
    /// body (which may be in a spool file by then).
    last_two: [u8; 2],
    summary: DataSummary,
}

impl ChunkReceiver {
    /// `max_line` counts a line with its CRLF; `None` for `BODY=BINARYMIME`.
    pub fn new(max_size: usize, max_line: Option<usize>) -> ChunkReceiver {
        ChunkReceiver {
            max_size,
            max_line,
            line_len: 0,
            after_cr: false,
            last_two: [0; 2],
            summary: DataSummary {
                size: 0,
                too_big: false,
                long_line: false,
                bare_line_ending: false,
            },
        }
    }

    /// Takes the next octets of the message, appending them to `body` until the message
    /// passes the size limit (then the body is dropped and only counted).
    pub fn feed(&mut self, octets: &[u8], body: &mut Vec<u8>) {
        match octets {
            [.., a, b] => self.last_two = [*a, *b],
            [b] => self.last_two = [self.last_two[1], *b],
            [] => {}
        }
        self.summary.size += octets.len();
        if self.summary.size > self.max_size {
            if !self.summary.too_big {
                self.summary.too_big = true;
                *body = Vec::new();
            }
        } else {
            body.extend_from_slice(octets);
        }
        if self.max_line.is_some() {
            self.check_lines(octets);
        }
    }

    /// Whether `data` keeps the text rules (no bare CR or LF, lines within `max_line`
    /// octets with their CRLF), so that it can be sent by DATA as it is.
    pub fn is_text(data: &[u8], max_line: usize) -> bool {
        let mut scan = ChunkReceiver::new(usize::MAX, Some(max_line));
        scan.check_lines(data);
        !(scan.after_cr || scan.summary.bare_line_ending || scan.summary.long_line)
    }

    /// Over the size limit already: the rest of the message is read only to be dropped.
    pub fn too_big(&self) -> bool {
        self.summary.too_big
    }

    /// At `BDAT ... LAST`: what was received. A text body that does not end with CRLF is
    /// given one, as DATA's always has (a CR alone at the end is a bare CR).
    pub fn finish(mut self, body: &mut Vec<u8>) -> DataSummary {
        if self.max_line.is_some() {
            if self.after_cr {
                self.summary.bare_line_ending = true;
            } else if self.summary.size > 0 && !self.summary.too_big && self.last_two != *b"\r\n" {
                self.feed(b"\r\n", body);
            }
        }
        self.summary
    }

    fn check_lines(&mut self, octets: &[u8]) {
        let max_line = self.max_line.unwrap_or(usize::MAX);
        let mut rest = octets;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    self.line_len += 1;
                    self.end_line(max_line);
                    rest = &rest[1..];
                    continue;
                }
                // A CR not followed by LF; what follows is read as text.
                self.summary.bare_line_ending = true;
            }
            let run = memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            self.line_len += run;
            match rest.get(run) {
                Some(b'\r') => {
                    self.line_len += 1;
                    self.after_cr = true;
                }
                Some(_) => {
                    self.summary.bare_line_ending = true;
                    self.line_len += 1;
                    self.end_line(max_line);
                }
                None => {}
            }
            if self.line_len > max_line {
                self.summary.long_line = true;
            }
            rest = &rest[(run + 1).min(rest.len())..];
        }
    }

    fn end_line(&mut self, max_line: usize) {
        if self.line_len > max_line {
            self.summary.long_line = true;
        }
        self.line_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` (each split again every `piece` octets) and finishes.
    fn receive(chunks: &[&[u8]], piece: usize, max_size: usize, max_line: Option<usize>) -> (Vec<u8>, DataSummary) {
        let mut receiver = ChunkReceiver::new(max_size, max_line);
        let mut body = Vec::new();
        for chunk in chunks {
            for part in chunk.chunks(piece) {
                receiver.feed(part, &mut body);
            }
        }
        let summary = receiver.finish(&mut body);
        (body, summary)
    }

    #[test]
    fn chunks_join_as_sent_with_no_unstuffing_and_no_end_marker() {
        // RFC 3030's example splits a line across chunks; ".\r\n" is text here.
        let chunks: [&[u8]; 3] = [b"Subject: x\r\n\r\nline one\r\n.", b"\r\n..two\r", b"\n"];
        for piece in [1, 2, 3, 100] {
            let (body, summary) = receive(&chunks, piece, 1000, Some(1000));
            assert_eq!(body, b"Subject: x\r\n\r\nline one\r\n.\r\n..two\r\n", "piece {piece}");
            assert_eq!(summary.size, body.len());
            assert!(!summary.bare_line_ending && !summary.long_line && !summary.too_big);
        }
    }

    #[test]
    fn a_text_body_gets_its_final_crlf_and_an_empty_one_stays_empty() {
        let (body, summary) = receive(&[b"Subject: x\r\n\r\nno ending"], 4, 1000, Some(1000));
        assert!(body.ends_with(b"no ending\r\n"));
        assert_eq!(summary.size, body.len());
        assert_eq!(receive(&[], 1, 1000, Some(1000)).0, b"");
        // A binary body is left as it came.
        assert_eq!(receive(&[b"\x00\x01"], 1, 1000, None).0, b"\x00\x01");
    }

    #[test]
    fn bare_line_endings_are_found_in_text_across_pieces_and_allowed_in_binary() {
        for bad in [&b"a\nb\r\n"[..], b"a\rb\r\n", b"a\r\r\n", b"end\r"] {
            for piece in [1, 2, 100] {
                assert!(
                    receive(&[bad], piece, 1000, Some(1000)).1.bare_line_ending,
                    "{bad:?} {piece}"
                );
            }
            assert!(!receive(&[bad], 1, 1000, None).1.bare_line_ending, "{bad:?}");
        }
        // A CRLF split between two chunks is one ending.
        assert!(!receive(&[b"a\r", b"\nb\r\n"], 100, 1000, Some(1000)).1.bare_line_ending);
    }

    #[test]
    fn the_line_limit_counts_the_crlf_and_a_binary_body_has_none() {
        let fits = [b"x".repeat(8), b"\r\n".to_vec()].concat();
        let long = [b"x".repeat(9), b"\r\n".to_vec()].concat();
        for piece in [1, 3, 100] {
            assert!(!receive(&[&fits], piece, 1000, Some(10)).1.long_line, "{piece}");
            assert!(receive(&[&long], piece, 1000, Some(10)).1.long_line, "{piece}");
            assert!(
                receive(&[&b"x".repeat(11)], piece, 1000, Some(10)).1.long_line,
                "{piece}"
            );
        }
        assert!(!receive(&[&long], 1, 1000, None).1.long_line);
    }

    #[test]
    fn text_is_told_from_binary() {
        assert!(ChunkReceiver::is_text(b"Subject: x\r\n\r\nbody\r\n", 1000));
        assert!(!ChunkReceiver::is_text(b"a\nb\r\n", 1000));
        assert!(!ChunkReceiver::is_text(b"ab\r", 1000));
        assert!(!ChunkReceiver::is_text(&b"x".repeat(1001), 1000));
    }

    #[test]
    fn past_the_size_limit_the_body_is_dropped_and_counted() {
        let mut receiver = ChunkReceiver::new(10, Some(1000));
        let mut body = Vec::new();
        receiver.feed(b"12345678", &mut body);
        assert!(!receiver.too_big());
        receiver.feed(b"901\r\n", &mut body);
        assert!(receiver.too_big());
        assert!(body.is_empty());
        let summary = receiver.finish(&mut body);
        assert_eq!((summary.size, summary.too_big), (13, true));
        assert!(body.is_empty());
    }
}
