//! A slow, obviously correct DATA receiver to check [`crate::DataReceiver`] against,
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
