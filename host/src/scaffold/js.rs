//! A plugin in JavaScript: componentize-js (pinned, as the examples use it), installed by
//! npm into the folder.

use std::path::PathBuf;

use super::{NewPlugin, camel, fill, fill_for, hook_stub};
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

// true lets the server share this plugin's instances between sessions instead of
// starting a JavaScript engine for each, and is right only while no call leaves anything
// for a later one (the sender seen at MAIL kept for RCPT, say): then every call may go to
// another instance. false gives each session an instance of its own.
export const stateless = {
  keepsNoSessionState() {
    return {{stateless}};
  },
};
{{hooks}}"#;

fn hook(kind: HookKind) -> String {
    let stub = hook_stub(kind);
    let params: Vec<String> = stub.params.iter().map(|(name, _, _)| camel(name, false)).collect();
    let body = match stub.notice {
        true => "{}",
        false => "{\n    return undefined;\n  }",
    };
    format!(
        "\n// {}\nexport const {}Hook = {{\n  on{}({}) {body},\n}};\n",
        stub.doc,
        kind.name(),
        camel(kind.name(), true),
        params.join(", ")
    )
}

pub(super) fn files(plugin: &NewPlugin) -> Vec<(PathBuf, String)> {
    vec![
        ("package.json".into(), fill(PACKAGE_JSON, &[("name", &plugin.name)])),
        ("app.js".into(), fill_for(plugin, APP_JS, hook, ["false", "true"])),
        (".gitignore".into(), format!("/node_modules\n/{}.wasm\n", plugin.name)),
    ]
}
