//! Framing of command lines: where the next line ends in buffered input, and a limit of
//! octets a command line, CRLF included (RFC 5321 4.5.3.1.4 asks for at least 512).
//!
//! Command lines end at LF, with the CR before it optional; whether a line that ended in
//! a bare LF is taken is the listener's choice (`bare_lf`), made by the caller. DATA is
//! framed strictly, elsewhere ([`crate::DataReceiver`]), and BDAT by its chunk sizes
//! ([`crate::ChunkReceiver`]).

/// What the buffered input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A line `buf[..len]` without its ending; the whole line with its ending is `consumed` octets.
    Line { len: usize, consumed: usize },
    /// A complete line over the limit: drop `consumed` octets and answer 500.
    TooLong { consumed: usize },
    /// Over the limit and not ended yet: drop all the buffer, answer 500, and drop
    /// input up to and including the next LF ([`skip_to_line_end`]).
    TooLongUnfinished,
    /// No complete line yet.
    Incomplete,
}

/// Finds the next command line in `buf`. `max` counts the line with a two-octet ending.
pub fn next_command_line(buf: &[u8], max: usize) -> Frame {
    match memchr::memchr(b'\n', buf) {
        Some(lf) => {
            let len = if lf > 0 && buf[lf - 1] == b'\r' { lf - 1 } else { lf };
            if len + 2 > max {
                Frame::TooLong { consumed: lf + 1 }
            } else {
                Frame::Line { len, consumed: lf + 1 }
            }
        }
        None => {
            let len = buf.len() - usize::from(buf.last() == Some(&b'\r'));
            if len + 2 > max {
                Frame::TooLongUnfinished
            } else {
                Frame::Incomplete
            }
        }
    }
}

/// While dropping the rest of an over-long line: `Some(n)` when its end is in `buf`
/// (drop `n` octets and resume), `None` when all of `buf` is still part of it.
pub fn skip_to_line_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf).map(|lf| lf + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_bare_lf_end_a_command_line() {
        assert_eq!(
            next_command_line(b"NOOP\r\nQUIT\r\n", 512),
            Frame::Line { len: 4, consumed: 6 }
        );
        assert_eq!(
            next_command_line(b"NOOP\nQUIT", 512),
            Frame::Line { len: 4, consumed: 5 }
        );
        assert_eq!(next_command_line(b"NOOP\r", 512), Frame::Incomplete);
        assert_eq!(next_command_line(b"", 512), Frame::Incomplete);
    }

    #[test]
    fn the_limit_counts_a_crlf_ending() {
        let ok = format!("{}\r\n", "x".repeat(510));
        assert_eq!(
            next_command_line(ok.as_bytes(), 512),
            Frame::Line {
                len: 510,
                consumed: 512
            }
        );
        let long = format!("{}\r\n", "x".repeat(511));
        assert_eq!(
            next_command_line(long.as_bytes(), 512),
            Frame::TooLong { consumed: 513 }
        );
        let long_lf = format!("{}\n", "x".repeat(511));
        assert_eq!(
            next_command_line(long_lf.as_bytes(), 512),
            Frame::TooLong { consumed: 512 }
        );
        assert_eq!(next_command_line(&[b'x'; 511], 512), Frame::TooLongUnfinished);
        assert_eq!(next_command_line(&[b'x'; 510], 512), Frame::Incomplete);
        let ok_so_far = format!("{}\r", "x".repeat(510));
        assert_eq!(next_command_line(ok_so_far.as_bytes(), 512), Frame::Incomplete);
    }

    #[test]
    fn skipping_resumes_after_the_next_lf() {
        assert_eq!(skip_to_line_end(b"xxxx"), None);
        assert_eq!(skip_to_line_end(b"xx\r\nNOOP\r\n"), Some(4));
    }
}
