//! The shipped plugins end to end: debug-printer's envelope, the filter at each stage,
//! and loading components from files.

use std::process::Command;

use crate::raw::RawClient;
use crate::server::{Server, binary, plugin_path, temp_file};

#[test]
fn debug_printer_prints_the_envelope_when_asked() {
    let mut server = Server::with_config("[plugin.debug-printer.settings]\nenvelope = true\n", &["debug-printer"]);
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<a@example.org> BODY=8BITMIME", "250");
    client.expect("RCPT TO:<b@example.com>", "250");
    client.expect("RCPT TO:<c@example.com>", "250");
    client.expect("DATA", "354");
    client.expect("Subject: envelope\r\n\r\nbody\r\n.", "250 2.0.0");
    let printed = server.wait_for_messages(1);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(
        lines,
        [
            "---------- MESSAGE FOLLOWS ----------",
            "mail from: 'a@example.org'",
            "rcpt tos: ['b@example.com', 'c@example.com']",
            "tls: none",
            "mail options: ['BODY=8BITMIME']",
            "Subject: envelope",
            "X-Peer: 127.0.0.1",
            "",
            "body",
            "------------ END MESSAGE ------------",
        ]
    );
}

/// A message of `mib` MiB (lines of 100 octets).
fn big_message(mib: usize) -> String {
    let line = format!("{}\r\n", "x".repeat(98));
    format!("Subject: big\r\n\r\n{}", line.repeat((mib << 20) / line.len()))
}

#[test]
fn debug_printer_takes_a_big_message_and_prints_its_start_marked_as_cut() {
    // The default server: the printer's own limit (1 MiB) says where it stopped.
    let mut server = Server::start(&[]);
    let message = big_message(5);
    let mut client = RawClient::ehlo(server.addr);
    assert!(client.send_message(&message).starts_with("250 2.0.0"));
    let printed = server.wait_for_messages(1);
    let note = format!(
        "[wasmtpd: {} more octets not printed; the message has {}, the setting max_printed_bytes is 1048576]\n------------ END MESSAGE",
        message.len() - (1 << 20),
        message.len()
    );
    assert!(
        printed.contains(&note),
        "{}",
        &printed[printed.len().saturating_sub(400)..]
    );
    assert!(printed.len() < (1 << 20) + 1024, "{}", printed.len());

    // Printing more than the host keeps of one call's output: the host says it cut it.
    // (Printing 5 MiB takes time a debug build on a busy machine does not have within the
    // default budget: the test is about the cut, so it gets more.)
    let mut server = Server::with_config(
        "[plugin.debug-printer]\ntime_budget_ms = 10000\n[plugin.debug-printer.settings]\nmax_printed_bytes = 8388608\n",
        &["debug-printer"],
    );
    let mut client = RawClient::ehlo(server.addr);
    assert!(client.send_message(&message).starts_with("250 2.0.0"));
    let printed = server.wait_for_stdout("more were dropped]");
    assert!(
        printed.contains("[wasmtpd: this call's output was cut at 4194304 octets; "),
        "{}",
        &printed[printed.len().saturating_sub(400)..]
    );
}

#[test]
fn a_plugin_is_handed_only_the_part_of_the_message_its_configuration_names() {
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"headers\"]\n\
                  [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"nothing\"]\n\
                  [plugin.headers]\nsource = \"debug-printer\"\nmessage = \"headers\"\n\
                  [plugin.nothing]\nsource = \"debug-printer\"\nmessage = \"none\"\n";
    let mut server = Server::from_config(config);
    let addresses = server.addresses(2);
    let message = "Subject: parts\r\nX-Other: 1\r\n\r\nthe body\r\n";
    assert!(RawClient::ehlo(addresses[0]).send_message(message).starts_with("250"));
    let printed = server.wait_for_messages(1);
    assert!(
        printed.contains("Subject: parts\nX-Other: 1\nX-Peer: 127.0.0.1\n\n---"),
        "{printed}"
    );
    assert!(!printed.contains("the body"), "{printed}");
    assert!(RawClient::ehlo(addresses[1]).send_message(message).starts_with("250"));
    let printed = server.wait_for_messages(2);
    let second = printed.split("MESSAGE FOLLOWS").nth(2).unwrap();
    assert_eq!(
        second,
        " ----------\nX-Peer: 127.0.0.1\n------------ END MESSAGE ------------\n"
    );
}

const FILTER: &str = r#"
[plugin.filter.settings]
blocked_senders = ["spammer@example.org", "@bad.example"]
local_domains = ["example.com"]
local_users = ["alice@example.com", "bob@example.com"]
local_users_reply = "550 5.1.1 No mailbox here by that name"
max_size = 200
header_rules = ["Subject:lottery"]
header_rules_reply = "554 5.7.1 Lottery mail refused"
"#;

#[test]
fn filter_rejects_at_each_stage_with_its_configured_reply() {
    let mut server = Server::with_config(FILTER, &["filter", "debug-printer"]);
    assert!(server.log().contains("hooks=connect,mail,rcpt"), "{}", server.log());
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<spammer@example.org>", "550 5.7.1 Sender blocked");
    client.expect("MAIL FROM:<anyone@bad.example>", "550 5.7.1 Sender blocked");
    client.expect("MAIL FROM:<friend@example.org>", "250 2.1.0");
    client.expect("RCPT TO:<alice@example.net>", "550 5.1.2 Unknown domain");
    client.expect("RCPT TO:<carol@example.com>", "550 5.1.1 No mailbox here by that name");
    client.expect("RCPT TO:<alice@example.com>", "250 2.1.5");
    client.expect("DATA", "354");
    client.expect(
        &format!("Subject: big\r\n\r\n{}\r\n.", "x".repeat(300)),
        "552 5.3.4 Message too big",
    );
    client.start_message_to("bob@example.com");
    client.expect(
        "Subject: You won the LOTTERY\r\n\r\nclaim it\r\n.",
        "554 5.7.1 Lottery mail refused",
    );
    client.start_message_to("bob@example.com");
    client.expect("Subject: lunch\r\n\r\nat noon?\r\n.", "250 2.0.0");
    // Only the message the filter let through reached the next plugin in the chain.
    let printed = server.wait_for_messages(1);
    assert_eq!(printed.matches("MESSAGE FOLLOWS").count(), 1, "{printed}");
    assert!(printed.contains("Subject: lunch"), "{printed}");
    server.wait_for_log(r#"handler="filter" stage="rcpt" reply=550 5.1.2 Unknown domain"#);
}

#[test]
fn a_component_loads_from_a_file_given_on_the_command_line() {
    let path = plugin_path("sink");
    let mut server = Server::start(&["--plugin", &path]);
    server.wait_for_log("plugin=sink source=");
    let mut client = RawClient::ehlo(server.addr);
    client.start_message();
    client.expect("x\r\n.", "250 2.0.0");
}

fn fails_to_start(plugin: &str, message: &str) {
    let out = Command::new(binary())
        .args(["--listen", "127.0.0.1:0", "--plugin", plugin])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{plugin} was accepted");
    assert!(stderr.contains(message), "no {message:?} in:\n{stderr}");
}

#[test]
fn a_bad_plugin_is_refused_at_start_with_a_clear_error() {
    fails_to_start("nope", "unknown plugin \"nope\"");
    fails_to_start("/nonexistent/x.wasm", "cannot read /nonexistent/x.wasm");
    let text = temp_file("not-wasm.wasm", "hello");
    fails_to_start(text.to_str().unwrap(), "is not a WebAssembly file");
    // A core module, not a component.
    let core = temp_file("core.wasm", "");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    fails_to_start(core.to_str().unwrap(), "not a valid component");
}

/// The seed's smtpd_custom.py, as the README's example plugin (examples/custom-handler).
#[test]
fn the_custom_handler_example_prints_like_the_seed() {
    let config = format!(
        "[plugin.custom]\nsource = \"{}\"\nstdout = \"stdout\"\n",
        plugin_path("custom-handler")
    );
    let mut server = Server::with_config(&config, &["custom"]);
    let client = Command::new("python3")
        .arg(crate::server::repo_path("tests/clients/smtpd_senddata.py"))
        .arg(server.port().to_string())
        .output()
        .unwrap();
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let printed = server.wait_for_stdout("Message length");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert!(
        lines[0].starts_with("Receiving message from: ('127.0.0.1', "),
        "{printed}"
    );
    assert_eq!(lines[1], "Message addressed from: author@example.com");
    assert_eq!(lines[2], "Message addressed to   : ['recipient@example.com']");
    // smtplib announced SIZE=236: the length smtpd would have seen.
    assert_eq!(lines[3], "Message length         : 236");
}
