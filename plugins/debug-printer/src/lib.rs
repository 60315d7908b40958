//! Python's `smtpd.DebuggingServer` as a plugin: prints each message to standard output
//! between the same marker lines, with an `X-Peer:` header where the headers end.
//! With the setting `envelope = true` it also prints the envelope sender and recipients.

wit_bindgen::generate!({ path: "../../wit", world: "plugin" });

mod render;

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::host;
use wasmtpd::plugin::types::Peer;

struct DebugPrinter;

impl Guest for DebugPrinter {
    fn process_message(
        peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        mail_options: Vec<String>,
        rcpt_options: Vec<String>,
    ) -> Option<String> {
        let envelope = host::get_setting("envelope").is_some_and(|v| v == "true");
        let message = render::Message {
            peer_ip: &peer.ip,
            mail_from: &mail_from,
            rcpt_tos: &rcpt_tos,
            data: &data,
            mail_options: &mail_options,
            rcpt_options: &rcpt_options,
        };
        // One write: the host prints a call's output in one piece.
        print!("{}", render::render(&message, envelope));
        None
    }
}

export!(DebugPrinter);
