//! The server's log on stderr: one line an event, whatever a plugin or a client puts in it.

use crate::raw::RawClient;
use crate::server::{Server, plugin_path};

#[test]
fn a_plugin_cannot_forge_a_log_line_nor_drive_the_terminal() {
    // misbehave logs `misbehaving: MODE at STAGE`, and its mode is a setting: here one
    // with a line break, a line of its own after it, and a terminal's clear-screen. It is
    // not a mode misbehave knows, so it accepts.
    let config = format!(
        "[plugin.forger]\nsource = \"{}\"\n[plugin.forger.settings]\n\
         mode = \"x\\r\\n2026-01-01T00:00:00.000000Z  INFO wasmtpd: forged \\u001b[2J\"\n",
        plugin_path("misbehave")
    );
    let mut server = Server::with_config(&config, &["forger"]);
    assert!(RawClient::one_message(server.addr).starts_with("250"));
    let line = server.wait_for_log("misbehaving: x");
    assert!(
        line.contains("misbehaving: x\\r\\n2026-01-01T00:00:00.000000Z  INFO wasmtpd: forged \\x1b[2J at data"),
        "{line}"
    );
    let log = server.log();
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01T")), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
}
