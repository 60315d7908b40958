//! A plugin in Python: componentize-py (pinned, as the examples use it), run from a
//! virtual environment of the folder's own.

use std::path::PathBuf;

use super::{NewPlugin, camel, fill, fill_for, hook_stub};
use crate::hook::HookKind;

const BUILD_SH: &str = r#"#!/bin/sh
# Builds {{name}}.wasm with componentize-py, installed the first time into .venv (nothing
# goes into the system's Python).
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check "componentize-py==0.25.1"
fi
.venv/bin/componentize-py -d wit -w {{name}} componentize app -o {{name}}.wasm
"#;

const APP_PY: &str = r#""""{{name}}: a wasmtpd plugin. Every answer is an optional string: None lets the server
go on (the next plugin in the chain, then 250 OK), a reply answers the client instead,
e.g. "550 5.7.1 Not accepted here". The contract, with what each call gets, is
wit/deps/plugin/plugin.wit."""

from typing import List, Optional

from wit_world import exports
from wit_world.imports import host, types

# Also there when granted in the configuration: wit_world.imports.dns (dns = true), the
# key-value store (store = true), wit_world.imports.message_edit (always).


class Handler(exports.Handler):
    def process_message(self, peer: types.Peer, mail_from: str, rcpt_tos: List[str], data: bytes,
                        mail_options: List[str], rcpt_options: List[str]) -> Optional[str]:
        """Called once each message has been received. mail_from is the sender without
        angle brackets ("" for the null sender <>), rcpt_tos the recipients likewise,
        data the message with CRLF line endings."""
        greeting = host.get_setting("greeting") or "hello"
        host.log(host.Level.INFO,
                 f"{greeting}: {len(data)} octets from <{mail_from}> via {peer.ip} for {', '.join(rcpt_tos)}")
        return None


class Stateless(exports.Stateless):
    def keeps_no_session_state(self) -> bool:
        """True lets the server share this plugin's instances between sessions instead of
        starting CPython for each, and is right only while no call leaves anything for a
        later one (the sender seen at MAIL kept for RCPT, say): then every call may go to
        another instance. False gives each session an instance of its own."""
        return {{stateless}}
{{hooks}}"#;

fn hook(kind: HookKind) -> String {
    let stub = hook_stub(kind);
    let class = format!("{}Hook", camel(kind.name(), true));
    let params: String = stub
        .params
        .iter()
        .map(|(name, _, ty)| format!(", {name}: {ty}"))
        .collect();
    let (returns, body) = match stub.notice {
        true => ("None", ""),
        false => ("Optional[str]", "\n        return None"),
    };
    format!(
        "\n\nclass {class}(exports.{class}):\n    def on_{}(self{params}) -> {returns}:\n        \"\"\"{}\"\"\"{body}\n",
        kind.name(),
        stub.doc
    )
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    vec![
        ("build.sh".into(), fill(BUILD_SH, &[("name", &plugin.name)])),
        ("app.py".into(), fill_for(plugin, APP_PY, hook, ["False", "True"])),
        (
            ".gitignore".into(),
            format!("/.venv\n/{}.wasm\n__pycache__/\n", plugin.name),
        ),
    ]
}
