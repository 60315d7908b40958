//! A plugin in Rust: wit-bindgen (pinned, as the shipped plugins use it), a crate of its
//! own that cargo builds for `wasm32-wasip2`.

use std::path::PathBuf;

use super::{NewPlugin, fill, fill_for, hook_stub};
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
    /// `true` lets the server share this plugin's instances between sessions, which is
    /// much cheaper, and is right only while no call leaves anything for a later one
    /// (the sender seen at MAIL kept for RCPT, say): then every call may go to another
    /// instance. `false` gives each session an instance of its own.
    fn keeps_no_session_state() -> bool {
        {{stateless}}
    }
}
{{hooks}}
export!(Plugin);
"#;

fn hook(kind: HookKind) -> String {
    let stub = hook_stub(kind);
    let params: Vec<String> = stub
        .params
        .iter()
        .map(|(name, ty, _)| format!("_{name}: {ty}"))
        .collect();
    let (params, name) = (params.join(", "), kind.name());
    let body = match stub.notice {
        true => "{}",
        false => "-> Option<String> {\n        None\n    }",
    };
    format!(
        "\nimpl exports::wasmtpd::plugin::{name}_hook::Guest for Plugin {{\n    /// {}\n    fn on_{name}({params}) {body}\n}}\n",
        stub.doc
    )
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    vec![
        ("Cargo.toml".into(), fill(CARGO_TOML, &[("name", &plugin.name)])),
        ("src/lib.rs".into(), fill_for(plugin, LIB_RS, hook, ["false", "true"])),
        (".gitignore".into(), "/target\n".into()),
    ]
}
