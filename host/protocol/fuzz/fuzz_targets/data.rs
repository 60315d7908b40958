//! The DATA receiver against the slow oracle, with the input fed in fuzzer-chosen chunks:
//! the same message, summary and end, however the bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmtpd_protocol::DataReceiver;
use wasmtpd_protocol::oracle;

fuzz_target!(|input: &[u8]| {
    let Some((&chunking, input)) = input.split_first() else { return };
    // Small limits so that the size and line rules are reached often.
    let (max_size, max_line) = (64 + usize::from(chunking & 0x3f), 16 + usize::from(chunking >> 6));
    let want = oracle::receive(input, max_size, max_line);

    let chunk = 1 + usize::from(chunking % 17);
    let mut receiver = DataReceiver::new(max_size, max_line);
    let mut body = Vec::new();
    let mut pending = Vec::new();
    let mut offset = 0;
    let mut got = None;
    for piece in input.chunks(chunk) {
        pending.extend_from_slice(piece);
        if let Some(n) = receiver.feed(&pending, &mut body) {
            got = Some((body.clone(), receiver.summary(), offset + n));
            break;
        }
        offset += pending.len();
        pending.clear();
    }
    assert_eq!(got, want);
});
