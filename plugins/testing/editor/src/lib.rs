//! For tests only: edits the message through `message-edit` as its settings say, then
//! answers its `answer` setting (nothing if absent). Each setting `edit.N` (in the order of
//! N) is one edit, its arguments separated by `|`:
//!
//!     add-header|NAME|VALUE          insert-header|INDEX|NAME|VALUE
//!     change-header|NAME|N|VALUE     delete-header|NAME|N
//!     replace-body|TEXT              (a line end, or `\n`, in TEXT becomes CRLF)
//!     change-sender|ADDRESS|PARAM... add-recipient|ADDRESS|PARAM...
//!     remove-recipient|ADDRESS       quarantine|REASON
//!
//! It logs what it was handed (`handed: <from> [to...] SUBJECT-LINE X-HEADERS`) and what
//! `message()` gives back after its edits (`edited: N octets`).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasmtpd:plugin/plugin",
    generate_all,
});

use exports::wasmtpd::plugin::handler::Guest as Handler;
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::message_edit as edit;
use wasmtpd::plugin::types::Peer;

struct Editor;

fn log(message: &str) {
    host::log(Level::Info, message);
}

/// The header lines of `data` that say what a test wants to see.
fn summary(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    let shown: Vec<&str> = header
        .lines()
        .filter(|l| l.starts_with("Subject:") || l.starts_with("X-"))
        .collect();
    shown.join(" / ")
}

fn number(text: &str) -> u32 {
    text.parse().unwrap_or(0)
}

fn apply(line: &str) {
    let parts: Vec<&str> = line.split('|').collect();
    let arg = |i: usize| parts.get(i).copied().unwrap_or_default();
    let rest = |i: usize| parts.iter().skip(i).map(|s| s.to_string()).collect::<Vec<_>>();
    match arg(0) {
        "add-header" => edit::add_header(arg(1), arg(2)),
        "insert-header" => edit::insert_header(number(arg(1)), arg(2), arg(3)),
        "change-header" => edit::change_header(arg(1), number(arg(2)), arg(3)),
        "delete-header" => edit::delete_header(arg(1), number(arg(2))),
        "replace-body" => edit::replace_body(arg(1).replace("\\n", "\n").replace('\n', "\r\n").as_bytes()),
        "change-sender" => edit::change_sender(arg(1), &rest(2)),
        "add-recipient" => edit::add_recipient(arg(1), &rest(2)),
        "remove-recipient" => edit::remove_recipient(arg(1)),
        "quarantine" => edit::quarantine(arg(1)),
        other => log(&format!("unknown edit {other:?}")),
    }
}

impl Handler for Editor {
    fn process_message(
        _peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        log(&format!("handed: <{mail_from}> {rcpt_tos:?} {}", summary(&data)));
        let mut edits: Vec<(u32, String)> = host::settings()
            .into_iter()
            .filter_map(|(key, value)| Some((key.strip_prefix("edit.")?.parse().ok()?, value)))
            .collect();
        edits.sort();
        for (_, line) in &edits {
            apply(line);
        }
        log(&format!("edited: {} octets", edit::message().len()));
        host::get_setting("answer")
    }
}

export!(Editor);
