//! Stores each message in a Maildir (what Python's smtpd docs point at `mailbox` for),
//! inside a directory the configuration grants the plugin:
//!
//! ```toml
//! [plugin.store]
//! dirs = [{ host = "/var/mail/acme", guest = "/maildir", writable = true }]
//! ```
//!
//! Each message starts with `Return-Path:` and the server's `Received:` field.
//!
//! Setting `maildir`: where in the plugin's view (default `/maildir`). Without the grant
//! the plugin cannot write anything, and the client gets a `451` (nothing lost).

wit_bindgen::generate!({ path: "../../wit", world: "plugin", generate_all });

mod maildir;

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::types::Peer;

struct Store;

impl Guest for Store {
    fn process_message(
        _peer: Peer,
        mail_from: String,
        _rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let root = host::get_setting("maildir").unwrap_or_else(|| "/maildir".to_owned());
        // The server's trace goes first, after the delivery's own Return-Path.
        let received = wasmtpd::plugin::message_edit::received_header();
        let message = maildir::with_return_path(&mail_from, &received, &data);
        match maildir::deliver(std::path::Path::new(&root), &message) {
            Ok(name) => {
                host::log(Level::Info, &format!("stored as {name}"));
                None
            }
            Err(e) => {
                host::log(Level::Error, &format!("cannot store in {root}: {e}"));
                Some("451 4.3.0 Cannot store the message now, try again later".to_owned())
            }
        }
    }
}

export!(Store);
