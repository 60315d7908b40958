//! BDAT framing: the chunk receiver against the slow oracle, with the message split into
//! fuzzer-chosen chunks and pieces: the same message and summary however it arrives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmtpd_protocol::{ChunkReceiver, oracle};

fuzz_target!(|input: &[u8]| {
    let Some((&limits, input)) = input.split_first() else { return };
    let Some((&split, input)) = input.split_first() else { return };
    // Small limits so that the size and line rules are reached often; a quarter binary.
    let max_size = 64 + usize::from(limits & 0x3f);
    let max_line = (limits >> 6 != 0).then_some(8 + usize::from(limits >> 6) * 4);
    let want = oracle::receive_chunks(input, max_size, max_line);

    let piece = 1 + usize::from(split % 17);
    let mut receiver = ChunkReceiver::new(max_size, max_line);
    let mut body = Vec::new();
    for part in input.chunks(piece) {
        receiver.feed(part, &mut body);
    }
    let summary = receiver.finish(&mut body);
    assert_eq!((body, summary), want);
});
