//! Python's `smtpd.DebuggingServer` as a plugin: prints each message to standard output
//! between the same marker lines, with an `X-Peer:` header where the headers end.
//! With the setting `envelope = true` it also prints the envelope sender and recipients,
//! and how the session was protected (TLS, AUTH). `max_printed_bytes` (default 1 MiB)
//! bounds what is printed of one message; a line says how much more there was.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package wasmtpd:debug-printer;
        world debug-printer {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/stateless@0.1.0;
        }
    ",
    world: "wasmtpd:debug-printer/debug-printer",
    // The wasmtpd:plugin interfaces come from ../wit, not from the inline world.
    generate_all,
});

mod render;

use std::io::Write;
use std::sync::OnceLock;

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::host;
use wasmtpd::plugin::types::Peer;

/// Octets of a message printed by default: a terminal or log gets the first MiB of a
/// big message, and a line that says the rest was not printed.
const DEFAULT_MAX_PRINTED: usize = 1 << 20;

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
        // Settings are fixed for an instance's life (a reload makes new instances).
        static ENVELOPE: OnceLock<bool> = OnceLock::new();
        static MAX_PRINTED: OnceLock<usize> = OnceLock::new();
        let envelope = *ENVELOPE.get_or_init(|| host::get_setting("envelope").is_some_and(|v| v == "true"));
        let max_printed = *MAX_PRINTED.get_or_init(|| {
            host::get_setting("max_printed_bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_PRINTED)
        });
        // Asked only when printed: a host call a message otherwise.
        let session = envelope.then(host::session);
        let tls = session.as_ref().and_then(|s| s.tls.as_ref());
        let message = render::Message {
            tls: tls.map(|t| (t.version.as_str(), t.cipher.as_str())),
            authenticated: session.as_ref().and_then(|s| s.authenticated.as_deref()),
            peer_ip: &peer.ip,
            mail_from: &mail_from,
            rcpt_tos: &rcpt_tos,
            data: &data,
            mail_options: &mail_options,
            rcpt_options: &rcpt_options,
        };
        // One write: the host prints a call's output in one piece. Nothing to do if
        // stdout is gone: the host reports lost output itself.
        let _ = std::io::stdout()
            .lock()
            .write_all(&render::render(&message, envelope, max_printed));
        None
    }
}

/// Nothing is kept between calls: the host may share instances between sessions.
impl exports::wasmtpd::plugin::stateless::Guest for DebugPrinter {
    fn keeps_no_session_state() -> bool {
        true
    }
}

export!(DebugPrinter);
