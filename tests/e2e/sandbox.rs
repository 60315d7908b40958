//! The sandbox, with plugins written to misbehave (plugins/testing/misbehave): whatever a
//! plugin does, its client gets `451 4.3.0`, the log names the plugin and the cause, and
//! the server goes on serving.

use crate::raw::RawClient;
use crate::server::{Server, plugin_path};

fn misbehaving(mode: &str, stage: &str) -> Server {
    let config = format!(
        "[plugin.bad]\nsource = \"{}\"\ntime_budget_ms = 300\nmemory_mib = 32\n[plugin.bad.settings]\nmode = \"{mode}\"\nstage = \"{stage}\"\n",
        plugin_path("misbehave")
    );
    Server::with_config(&config, &["bad"])
}

const MESSAGE: &str = "Subject: t\r\n\r\nbody\r\n";

fn assert_tempfails_and_keeps_serving(mode: &str, cause: &str) {
    let mut server = misbehaving(mode, "data");
    let mut client = RawClient::ehlo(server.addr);
    let reply = client.send_message(MESSAGE);
    assert!(reply.starts_with("451 4.3.0"), "{mode}: {reply:?}");
    let line = server.wait_for_log("answering 451");
    assert!(line.contains("handler=\"bad\""), "{mode}: {line}");
    assert!(line.contains(cause), "{mode}: no {cause:?} in {line}");
    // The same session goes on, with a fresh instance...
    client.expect("NOOP", "250");
    assert!(client.send_message(MESSAGE).starts_with("451 4.3.0"));
    // ...and so do others.
    let mut other = RawClient::ehlo(server.addr);
    other.expect("NOOP", "250");
    other.expect("QUIT", "221");
}

#[test]
fn a_trap_is_a_tempfail() {
    assert_tempfails_and_keeps_serving("trap", "wasm trap: wasm `unreachable` instruction executed");
}

#[test]
fn an_endless_loop_is_stopped_by_the_time_budget() {
    assert_tempfails_and_keeps_serving("loop", "ran past its time budget of 300 ms");
}

#[test]
fn a_huge_allocation_is_stopped_by_the_memory_cap() {
    assert_tempfails_and_keeps_serving("alloc", "outgrew its memory cap of 32 MiB (asked for");
    // The kind comes from the store's own record of the refused growth.
    let mut server = misbehaving("alloc", "data");
    let mut client = RawClient::ehlo(server.addr);
    assert!(client.send_message(MESSAGE).starts_with("451 4.3.0"));
    assert!(server.wait_for_log("answering 451").contains("kind=\"memory\""));
}

#[test]
fn malformed_replies_are_tempfails() {
    assert_tempfails_and_keeps_serving(
        "malformed",
        "reply does not start with a 2xx, 4xx or 5xx reply code: \"hello\"",
    );
    assert_tempfails_and_keeps_serving("crlf", "\\r\\n");
    assert_tempfails_and_keeps_serving("escape", "reply contains a control character");
}

#[test]
fn a_failing_hook_tempfails_that_command_only() {
    let mut server = misbehaving("trap", "rcpt");
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "451 4.3.0");
    let line = server.wait_for_log("answering 451");
    assert!(line.contains("stage=\"rcpt\"") && line.contains("wasm trap"), "{line}");
    client.expect("RSET", "250");
}

#[test]
fn plugin_output_goes_to_the_log_not_to_the_client() {
    let mut server = misbehaving("print", "data");
    let mut client = RawClient::ehlo(server.addr);
    assert!(client.send_message(MESSAGE).starts_with("250 2.0.0"));
    let line = server.wait_for_log("to stdout from the plugin");
    assert!(
        line.contains("plugin=\"bad\"") && line.contains("stream=\"stdout\""),
        "{line}"
    );
    server.wait_for_log("to stderr from the plugin");
    client.expect("NOOP", "250 2.0.0");
    assert!(server.stdout().is_empty(), "{}", server.stdout());
}

#[test]
fn each_session_has_its_own_instance() {
    let server = misbehaving("count", "data");
    let mut first = RawClient::ehlo(server.addr);
    assert!(
        first
            .send_message(MESSAGE)
            .starts_with("250 2.0.0 call 1 of this instance")
    );
    assert!(
        first
            .send_message(MESSAGE)
            .starts_with("250 2.0.0 call 2 of this instance")
    );
    let mut second = RawClient::ehlo(server.addr);
    assert!(
        second
            .send_message(MESSAGE)
            .starts_with("250 2.0.0 call 1 of this instance")
    );
    assert!(
        first
            .send_message(MESSAGE)
            .starts_with("250 2.0.0 call 3 of this instance")
    );
}
