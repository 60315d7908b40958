//! Command framing and parsing on arbitrary bytes: never panics, never reads past the
//! line, and every error has a 5xx reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmtpd_protocol::{Command, Frame, next_command_line, parse_command, skip_to_line_end};

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    while !rest.is_empty() {
        match next_command_line(rest, 512) {
            Frame::Line { len, consumed } => {
                assert!(len < consumed && consumed <= rest.len() && consumed <= 512);
                assert_eq!(rest[consumed - 1], b'\n');
                let line = &rest[..len];
                assert!(!line.contains(&b'\n'));
                match parse_command(line) {
                    Ok(Command::Mail { from: Some(a), .. }) | Ok(Command::Rcpt { to: a, .. }) => {
                        assert!(!a.as_str().is_empty() && a.as_str().len() <= 256);
                    }
                    Ok(_) => {}
                    Err(e) => assert!((500..600).contains(&e.reply().code())),
                }
                rest = &rest[consumed..];
            }
            Frame::TooLong { consumed } => rest = &rest[consumed..],
            Frame::TooLongUnfinished => match skip_to_line_end(rest) {
                Some(n) => rest = &rest[n..],
                None => break,
            },
            Frame::Incomplete => break,
        }
    }
});
