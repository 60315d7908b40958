//! A plugin in Rust: wit-bindgen (pinned, as the shipped plugins use it), a crate of its
//! own that cargo builds for `wasm32-wasip2`.

use std::path::PathBuf;

use super::{NewPlugin, fill};
use crate::hook::HookKind;

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = "=0.61.1"

# A workspace of its own: it builds wherever the folder is.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
"#;

const LIB_RS: &str = r#"//! {{name}}: a wasmtpd plugin. Every answer is an `Option<String>`: `None` lets the
//! server go on (the next plugin in the chain, then `250 OK`), `Some(reply)` answers the
//! client instead, e.g. `Some("550 5.7.1 Not accepted here".into())`. The contract, with
//! what each call gets, is wit/deps/plugin/plugin.wit.

wit_bindgen::generate!({ path: "wit", world: "local:{{name}}/{{name}}", generate_all });

use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::types::Peer;
// Also there when granted in the configuration: wasmtpd::plugin::dns (`dns = true`),
// wasi::keyvalue::store (`store = true`), wasmtpd::plugin::message_edit (always).

struct Plugin;

impl exports::wasmtpd::plugin::handler::Guest for Plugin {
    /// Called once each message has been received. `mail_from` is the sender without
    /// angle brackets ("" for the null sender <>), `rcpt_tos` the recipients likewise,
    /// `data` the message with CRLF line endings.
    fn process_message(
        peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let greeting = host::get_setting("greeting").unwrap_or_else(|| "hello".into());
        host::log(
            Level::Info,
            &format!(
                "{greeting}: {} octets from <{mail_from}> via {} for {}",
                data.len(),
                peer.ip,
                rcpt_tos.join(", ")
            ),
        );
        None
    }
}

impl exports::wasmtpd::plugin::stateless::Guest for Plugin {
    /// `true`: this plugin keeps nothing from one call to the next, so the server may
    /// share its instances between sessions (much cheaper). Answer `false` if a hook
    /// leaves anything for a later call, such as the sender seen at MAIL kept for RCPT.
    fn keeps_no_session_state() -> bool {
        true
    }
}
{{hooks}}
export!(Plugin);
"#;

fn hook(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Connect => {
            "
impl exports::wasmtpd::plugin::connect_hook::Guest for Plugin {
    /// A client connected: a 4xx or 5xx refuses it instead of the greeting.
    fn on_connect(_peer: Peer) -> Option<String> {
        None
    }
}
"
        }
        HookKind::Helo => {
            "
impl exports::wasmtpd::plugin::helo_hook::Guest for Plugin {
    /// HELO or EHLO (`extended`): a 4xx or 5xx refuses the greeting.
    fn on_helo(_name: String, _extended: bool) -> Option<String> {
        None
    }
}
"
        }
        HookKind::Mail => {
            "
impl exports::wasmtpd::plugin::mail_hook::Guest for Plugin {
    /// MAIL FROM: the sender without angle brackets (\"\" for <>), its parameters.
    fn on_mail(_mail_from: String, _options: Vec<String>) -> Option<String> {
        None
    }
}
"
        }
        HookKind::Rcpt => {
            "
impl exports::wasmtpd::plugin::rcpt_hook::Guest for Plugin {
    /// RCPT TO: one recipient without angle brackets; a 4xx or 5xx refuses it only.
    fn on_rcpt(_rcpt_to: String, _options: Vec<String>) -> Option<String> {
        None
    }
}
"
        }
        HookKind::Data => {
            "
impl exports::wasmtpd::plugin::data_hook::Guest for Plugin {
    /// DATA, before 354: a 4xx or 5xx refuses the message before it is sent.
    fn on_data() -> Option<String> {
        None
    }
}
"
        }
        HookKind::Auth => {
            "
impl exports::wasmtpd::plugin::auth_hook::Guest for Plugin {
    /// AUTH over TLS: a 2xx accepts, a 5xx refuses, `None` asks the next plugin.
    fn on_auth(_identity: String, _password: String) -> Option<String> {
        None
    }
}
"
        }
        HookKind::Rset => {
            "
impl exports::wasmtpd::plugin::rset_hook::Guest for Plugin {
    /// RSET: the transaction is abandoned (a notice; nothing is answered).
    fn on_rset() {}
}
"
        }
        HookKind::Quit => {
            "
impl exports::wasmtpd::plugin::quit_hook::Guest for Plugin {
    /// The session is over (a notice; nothing is answered).
    fn on_quit() {}
}
"
        }
    }
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    let hooks: String = plugin.hooks.iter().map(|k| hook(*k)).collect();
    let values = [("name", plugin.name.as_str()), ("hooks", hooks.as_str())];
    vec![
        ("Cargo.toml".into(), fill(CARGO_TOML, &values)),
        ("src/lib.rs".into(), fill(LIB_RS, &values)),
        (".gitignore".into(), "/target\n".into()),
    ]
}
