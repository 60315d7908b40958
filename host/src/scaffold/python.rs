//! A plugin in Python: componentize-py (pinned, as the examples use it), run from a
//! virtual environment of the folder's own.

use std::path::PathBuf;

use super::{NewPlugin, fill};
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
        """True: this plugin keeps nothing from one call to the next, so the server may
        share its instances between sessions instead of starting CPython for each. Answer
        False if a hook leaves anything for a later call (the sender seen at MAIL, say)."""
        return True
{{hooks}}"#;

fn hook(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Connect => {
            r#"

class ConnectHook(exports.ConnectHook):
    def on_connect(self, peer: types.Peer) -> Optional[str]:
        """A client connected: a 4xx or 5xx refuses it instead of the greeting."""
        return None
"#
        }
        HookKind::Helo => {
            r#"

class HeloHook(exports.HeloHook):
    def on_helo(self, name: str, extended: bool) -> Optional[str]:
        """HELO or EHLO (extended): a 4xx or 5xx refuses the greeting."""
        return None
"#
        }
        HookKind::Mail => {
            r#"

class MailHook(exports.MailHook):
    def on_mail(self, mail_from: str, options: List[str]) -> Optional[str]:
        """MAIL FROM: the sender without angle brackets ("" for <>), its parameters."""
        return None
"#
        }
        HookKind::Rcpt => {
            r#"

class RcptHook(exports.RcptHook):
    def on_rcpt(self, rcpt_to: str, options: List[str]) -> Optional[str]:
        """RCPT TO: one recipient without angle brackets; a 4xx or 5xx refuses it only."""
        return None
"#
        }
        HookKind::Data => {
            r#"

class DataHook(exports.DataHook):
    def on_data(self) -> Optional[str]:
        """DATA, before 354: a 4xx or 5xx refuses the message before it is sent."""
        return None
"#
        }
        HookKind::Auth => {
            r#"

class AuthHook(exports.AuthHook):
    def on_auth(self, identity: str, password: str) -> Optional[str]:
        """AUTH over TLS: a 2xx accepts, a 5xx refuses, None asks the next plugin."""
        return None
"#
        }
        HookKind::Rset => {
            r#"

class RsetHook(exports.RsetHook):
    def on_rset(self) -> None:
        """RSET: the transaction is abandoned (a notice; nothing is answered)."""
"#
        }
        HookKind::Quit => {
            r#"

class QuitHook(exports.QuitHook):
    def on_quit(self) -> None:
        """The session is over (a notice; nothing is answered)."""
"#
        }
    }
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    let hooks: String = plugin.hooks.iter().map(|k| hook(*k)).collect();
    let values = [("name", plugin.name.as_str()), ("hooks", hooks.as_str())];
    vec![
        ("build.sh".into(), fill(BUILD_SH, &values)),
        ("app.py".into(), fill(APP_PY, &values)),
        (
            ".gitignore".into(),
            format!("/.venv\n/{}.wasm\n__pycache__/\n", plugin.name),
        ),
    ]
}
