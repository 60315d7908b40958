//! For tests only: a delivery agent's answers, one for each recipient, through the
//! optional `recipient-handler` export. A recipient whose local part is `nobody` has no
//! mailbox (`550 5.1.1`), `full` has a full one (`452 4.2.2`), `pass` is left to the next
//! plugin (`none`); any other is delivered (`250 2.0.0 delivered to <local part>`).
//! `process-message`, which the host never calls while this export is there (on SMTP
//! listeners too), refuses everything, so that a test would see if it were.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package wasmtpd:mailboxes;
        world mailboxes {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/recipient-handler@0.1.0;
        }
    ",
    world: "wasmtpd:mailboxes/mailboxes",
    generate_all,
});

use exports::wasmtpd::plugin::{handler, recipient_handler};
use wasmtpd::plugin::types::Peer;

struct Mailboxes;

fn answer(rcpt: &str) -> Option<String> {
    let local = rcpt.split('@').next().unwrap_or(rcpt);
    match local {
        "nobody" => Some("550 5.1.1 No such mailbox".into()),
        "full" => Some("452 4.2.2 Mailbox full".into()),
        "pass" => None,
        _ => Some(format!("250 2.0.0 delivered to {local}")),
    }
}

impl recipient_handler::Guest for Mailboxes {
    fn process_message_per_recipient(
        _peer: Peer,
        _mail_from: String,
        rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Vec<Option<String>> {
        rcpt_tos.iter().map(|rcpt| answer(rcpt)).collect()
    }
}

impl handler::Guest for Mailboxes {
    fn process_message(
        _peer: Peer,
        _mail_from: String,
        _rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        Some("554 5.3.0 process-message was called instead of process-message-per-recipient".into())
    }
}

export!(Mailboxes);
