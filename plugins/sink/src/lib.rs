//! Accepts every message and keeps none: postfix's smtp-sink as a plugin, for benchmarks
//! and for measuring the cost of a plugin call.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package wasmtpd:sink;
        world sink {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/stateless@0.1.0;
        }
    ",
    world: "wasmtpd:sink/sink",
    // The wasmtpd:plugin interfaces come from ../wit, not from the inline world.
    generate_all,
});

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::types::Peer;

struct Sink;

impl Guest for Sink {
    fn process_message(
        _peer: Peer,
        _mail_from: String,
        _rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        None
    }
}

/// Nothing is kept between calls: the host may share instances between sessions.
impl exports::wasmtpd::plugin::stateless::Guest for Sink {
    fn keeps_no_session_state() -> bool {
        true
    }
}

export!(Sink);
