//! Slow, obviously correct DATA and BDAT receivers to check [`crate::DataReceiver`] and
//! [`crate::ChunkReceiver`] against,
//! in unit tests and in the fuzz target.

use crate::DataSummary;

/// The message and summary for `input` (the octets after `354`), and how many octets the
/// end of data consumed; `None` when `input` holds no end of data.
pub fn receive(input: &[u8], max_size: usize, max_line: usize) -> Option<(Vec<u8>, DataSummary, usize)> {
    // Pretend a CRLF came before the data, so an end at the very start is found the same way.
    let framed: Vec<u8> = [b"\r\n".as_slice(), input].concat();
    let end = framed.windows(5).position(|w| w == b"\r\n.\r\n")?;
    let raw = &input[..end];
    let consumed = end + 3;

    let mut body = Vec::new();
    let mut long_line = false;
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for i in 0..raw.len() {
        if raw[i] == b'\n' && i > 0 && raw[i - 1] == b'\r' {
            lines.push(&raw[start..=i]);
            start = i + 1;
        }
    }
    assert_eq!(start, raw.len(), "the end of data always follows a CRLF");
    for line in lines {
        long_line |= line.len() > max_line;
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    long_line |= 3 > max_line;
    let bare_line_ending = (0..raw.len()).any(|i| {
        let cr_alone = raw[i] == b'\r' && raw.get(i + 1) != Some(&b'\n');
        let lf_alone = raw[i] == b'\n' && (i == 0 || raw[i - 1] != b'\r');
        cr_alone || lf_alone
    });
    let size = body.len();
    let too_big = size > max_size;
    if too_big {
        body.clear();
    }
    let summary = DataSummary {
        size,
        too_big,
        long_line,
        bare_line_ending,
    };
    Some((body, summary, consumed))
}

/// The message and summary for a message sent by BDAT whose chunks joined are `input`
/// (`max_line` is `None` for a binary body): the slow way, line by line.
pub fn receive_chunks(input: &[u8], max_size: usize, max_line: Option<usize>) -> (Vec<u8>, DataSummary) {
    let mut message = input.to_vec();
    let (mut long_line, mut bare_line_ending) = (false, false);
    if let Some(max_line) = max_line {
        // Only a message still kept gets its final CRLF.
        let kept = input.len() <= max_size;
        if kept && !message.is_empty() && !message.ends_with(b"\r\n") && !message.ends_with(b"\r") {
            message.extend_from_slice(b"\r\n");
        }
        long_line = message
            .split_inclusive(|&b| b == b'\n')
            .any(|line| line.len() > max_line);
        bare_line_ending = (0..message.len()).any(|i| {
            let cr_alone = message[i] == b'\r' && message.get(i + 1) != Some(&b'\n');
            let lf_alone = message[i] == b'\n' && (i == 0 || message[i - 1] != b'\r');
            cr_alone || lf_alone
        });
    }
    let size = message.len();
    let too_big = size > max_size;
    if too_big {
        message.clear();
    }
    let summary = DataSummary {
        size,
        too_big,
        long_line,
        bare_line_ending,
    };
    (message, summary)
}
