//! WASI capabilities: nothing is granted by default; a granted directory (read-only or
//! writable) and environment variables are what the configuration says, and no more.

use crate::raw::RawClient;
use crate::server::{Server, plugin_path, temp_dir};

fn send_message(server: &Server) -> String {
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "250");
    client.expect("DATA", "354");
    client.finish_message("Subject: stored\r\n\r\nkeep me\r\n")
}

fn misbehaving(settings: &str, grants: &str) -> Server {
    let config = format!(
        "[plugin.p]\nsource = \"{}\"\n{grants}\n[plugin.p.settings]\n{settings}\n",
        plugin_path("misbehave")
    );
    Server::with_config(&config, &["p"])
}

/// The built-in store plugin with `dir` granted as `/maildir`; `access` adds to the grant.
fn store_granted(dir: &std::path::Path, access: &str) -> Server {
    let config = format!(
        "[plugin.store]\ndirs = [{{ host = \"{}\", guest = \"/maildir\"{access} }}]\n",
        dir.display()
    );
    Server::with_config(&config, &["store"])
}

#[test]
fn the_store_plugin_writes_a_maildir_in_its_granted_directory() {
    let dir = temp_dir();
    let server = store_granted(&dir, ", writable = true");
    assert!(send_message(&server).starts_with("250 2.0.0"));
    let stored: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let text = std::fs::read_to_string(&stored[0]).unwrap();
    // The delivery's Return-Path, the server's trace, then the message as sent.
    assert!(
        text.starts_with("Return-Path: <sender@example.org>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby "),
        "{text}"
    );
    assert!(text.contains(" (wasmtpd) with ESMTP id "), "{text}");
    assert!(text.contains("\r\n\tfor <b@example.com>;\r\n\t"), "{text}");
    assert!(text.ends_with(" +0000\r\nSubject: stored\r\n\r\nkeep me\r\n"), "{text}");
    assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
}

#[test]
fn without_a_grant_or_with_a_read_only_one_nothing_is_written_and_the_client_retries() {
    let server = Server::with_config("", &["store"]);
    assert!(send_message(&server).starts_with("451 4.3.0"));
    let dir = temp_dir();
    let server = store_granted(&dir, "");
    assert!(send_message(&server).starts_with("451 4.3.0"));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "something was written");
}

#[test]
fn a_plugin_cannot_read_files_it_was_not_granted() {
    let server = misbehaving("mode = \"read-file\"\npath = \"/etc/passwd\"", "");
    let reply = send_message(&server);
    assert!(reply.starts_with("554 5.7.0 cannot read /etc/passwd"), "{reply}");
    // Granted read-only, a file in the directory can be read.
    let dir = temp_dir();
    std::fs::write(dir.join("allowed.txt"), "twelve bytes").unwrap();
    let grant = format!("dirs = [{{ host = \"{}\", guest = \"/data\" }}]", dir.display());
    let server = misbehaving("mode = \"read-file\"\npath = \"/data/allowed.txt\"", &grant);
    assert_eq!(send_message(&server), "250 2.0.0 read 12 octets of /data/allowed.txt");
    // ...but nothing outside it.
    let server = misbehaving("mode = \"read-file\"\npath = \"/data/../../etc/passwd\"", &grant);
    assert!(send_message(&server).starts_with("554 5.7.0"));
}

#[test]
fn a_plugin_sees_only_the_environment_it_was_given() {
    let server = misbehaving("mode = \"env\"", "");
    assert_eq!(send_message(&server), "250 2.0.0 env: []");
    let server = misbehaving("mode = \"env\"", "env = { TENANT = \"acme\" }");
    assert_eq!(send_message(&server), "250 2.0.0 env: [(\"TENANT\", \"acme\")]");
}

#[test]
fn a_plugin_cannot_open_a_socket() {
    // Not even on loopback: no network is granted.
    let server = misbehaving("mode = \"connect\"\ntarget = \"127.0.0.1:9\"", "");
    let reply = send_message(&server);
    assert!(
        reply.starts_with("554 5.7.0 cannot connect to 127.0.0.1:9: Permission denied"),
        "{reply}"
    );
}
