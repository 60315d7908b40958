//! The trace a message carries (RFC 5321 4.4): its `Received:` header fields, counted to
//! find mail that goes round in a loop.

/// The `Received:` fields in the message's header section (up to the first empty line);
/// names are matched without regard to case, folded lines count once.
pub fn received_count(message: &[u8]) -> usize {
    let mut count = 0;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let name_len = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        if line.len() > name_len && line[..name_len].eq_ignore_ascii_case(b"Received") {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_received_fields_in_the_header_section_only() {
        let message = b"Received: from a by b;\r\n\tMon, 1 Dec 2026 00:00:00 +0000\r\n\
                        RECEIVED: from c by d; date\r\n\
                        X-Received: not a trace field\r\n\
                        Subject: Received: no\r\n\
                        received:from e\r\n\
                        \r\n\
                        Received: in the body, not counted\r\n";
        assert_eq!(received_count(message), 3);
        assert_eq!(received_count(b""), 0);
        assert_eq!(received_count(b"\r\nReceived: x\r\n"), 0);
        // A field name without a colon is not a field.
        assert_eq!(received_count(b"Received\r\n\r\n"), 0);
    }
}
