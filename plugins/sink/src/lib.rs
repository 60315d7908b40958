//! Accepts every message and keeps none: postfix's smtp-sink as a plugin, for benchmarks
//! and for measuring the cost of a plugin call.

wit_bindgen::generate!({ path: "../../wit", world: "plugin", generate_all });

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

export!(Sink);
