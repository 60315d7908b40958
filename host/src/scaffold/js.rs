//! A plugin in JavaScript: componentize-js (pinned, as the examples use it), installed by
//! npm into the folder.

use std::path::PathBuf;

use super::{NewPlugin, fill};
use crate::hook::HookKind;

// preview2-shim is an optional peer of componentize-js that it needs all the same.
const PACKAGE_JSON: &str = r#"{
  "name": "{{name}}",
  "private": true,
  "type": "module",
  "scripts": {
    "build": "componentize-js --wit wit --world-name {{name}} --disable http fetch-event -o {{name}}.wasm app.js"
  },
  "devDependencies": {
    "@bytecodealliance/componentize-js": "0.23.0",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }
}
"#;

const APP_JS: &str = r#"// {{name}}: a wasmtpd plugin. Every answer is an optional string: undefined lets the
// server go on (the next plugin in the chain, then 250 OK), a reply answers the client
// instead, e.g. "550 5.7.1 Not accepted here". The contract, with what each call gets, is
// wit/deps/plugin/plugin.wit.
import { log, getSetting } from "wasmtpd:plugin/host@0.1.0";
// Also there when granted in the configuration: "wasmtpd:plugin/dns@0.1.0" (dns = true),
// "wasi:keyvalue/store@0.2.0-draft" (store = true), "wasmtpd:plugin/message-edit@0.1.0".

export const handler = {
  // Called once each message has been received. mailFrom is the sender without angle
  // brackets ("" for the null sender <>), rcptTos the recipients likewise, data the
  // message (a Uint8Array) with CRLF line endings.
  processMessage(peer, mailFrom, rcptTos, data, mailOptions, rcptOptions) {
    const greeting = getSetting("greeting") ?? "hello";
    log("info", `${greeting}: ${data.length} octets from <${mailFrom}> via ${peer.ip} for ${rcptTos.join(", ")}`);
    return undefined;
  },
};

// true: this plugin keeps nothing from one call to the next, so the server may share its
// instances between sessions instead of starting a JavaScript engine for each. Answer
// false if a hook leaves anything for a later call (the sender seen at MAIL, say).
export const stateless = {
  keepsNoSessionState() {
    return true;
  },
};
{{hooks}}"#;

fn hook(kind: HookKind) -> &'static str {
    match kind {
        HookKind::Connect => {
            "
// A client connected: a 4xx or 5xx refuses it instead of the greeting.
export const connectHook = {
  onConnect(peer) {
    return undefined;
  },
};
"
        }
        HookKind::Helo => {
            "
// HELO or EHLO (extended): a 4xx or 5xx refuses the greeting.
export const heloHook = {
  onHelo(name, extended) {
    return undefined;
  },
};
"
        }
        HookKind::Mail => {
            "
// MAIL FROM: the sender without angle brackets (\"\" for <>), its parameters.
export const mailHook = {
  onMail(mailFrom, options) {
    return undefined;
  },
};
"
        }
        HookKind::Rcpt => {
            "
// RCPT TO: one recipient without angle brackets; a 4xx or 5xx refuses it only.
export const rcptHook = {
  onRcpt(rcptTo, options) {
    return undefined;
  },
};
"
        }
        HookKind::Data => {
            "
// DATA, before 354: a 4xx or 5xx refuses the message before it is sent.
export const dataHook = {
  onData() {
    return undefined;
  },
};
"
        }
        HookKind::Auth => {
            "
// AUTH over TLS: a 2xx accepts, a 5xx refuses, undefined asks the next plugin.
export const authHook = {
  onAuth(identity, password) {
    return undefined;
  },
};
"
        }
        HookKind::Rset => {
            "
// RSET: the transaction is abandoned (a notice; nothing is answered).
export const rsetHook = {
  onRset() {},
};
"
        }
        HookKind::Quit => {
            "
// The session is over (a notice; nothing is answered).
export const quitHook = {
  onQuit() {},
};
"
        }
    }
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    let hooks: String = plugin.hooks.iter().map(|k| hook(*k)).collect();
    let values = [("name", plugin.name.as_str()), ("hooks", hooks.as_str())];
    vec![
        ("package.json".into(), fill(PACKAGE_JSON, &values)),
        ("app.js".into(), fill(APP_JS, &values)),
        (".gitignore".into(), format!("/node_modules\n/{}.wasm\n", plugin.name)),
    ]
}
