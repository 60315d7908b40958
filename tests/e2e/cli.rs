//! The command line: help, the defaults, and clear errors for bad input.

use std::process::Command;

use crate::server::{Server, binary, misbehave_beside_sink, temp_file};

#[test]
fn help_explains_every_option() {
    let out = Command::new(binary()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--config",
        "--listen",
        "--plugin",
        "--hostname",
        "--max-message-size",
        "--deliver",
        "--compile",
        "--cache-dir",
        "127.0.0.1:1025",
    ] {
        assert!(help.contains(option), "--help does not mention {option}:\n{help}");
    }
    for tool in ["  new ", "  check ", "  compile ", "  health "] {
        assert!(help.contains(tool), "--help does not list {tool:?}:\n{help}");
    }
}

#[test]
fn port_zero_picks_a_free_port_and_the_log_names_it() {
    let server = Server::start(&["--hostname", "mx.example.test"]);
    assert_ne!(server.port(), 0);
    assert!(server.log().contains("(plugins: debug-printer)"), "{}", server.log());
    let (_, greeting) = crate::raw::RawClient::connect(server.addr);
    assert_eq!(greeting, "220 mx.example.test ESMTP wasmtpd 0.1.0");
}

#[test]
fn a_listener_in_the_config_file_is_used() {
    let server = Server::from_config("[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n");
    assert!(server.log().contains("(plugins: sink)"), "{}", server.log());
}

#[test]
fn listen_moves_the_files_first_listener_with_its_chain() {
    let config = temp_file(
        "listen.toml",
        "[[listener]]\naddress = \"127.0.0.1:1\"\nplugins = [\"sink\"]\n\
         [[listener]]\naddress = \"127.0.0.1:2\"\nplugins = [\"filter\"]\n",
    );
    let server = Server::start_raw(&["--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(server.log().contains("(plugins: sink)"), "{}", server.log());
    assert_eq!(server.log_count("listening on "), 1, "{}", server.log());
    // A plugin file the file names is loaded, so a missing one is an error at start.
    let missing = temp_file(
        "missing.toml",
        "[[listener]]\naddress = \"127.0.0.1:1\"\nplugins = [\"gone\"]\n\
         [plugin.gone]\nsource = \"/nonexistent/gone.wasm\"\n",
    );
    let out = Command::new(binary())
        .args(["--config", missing.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read /nonexistent/gone.wasm"), "{stderr}");
    // Only the real error: not first a failure to watch the directory that is not there.
    assert!(!stderr.contains("watch"), "{stderr}");
}

#[test]
fn listen_takes_the_first_listeners_tenant_but_not_how_it_is_reached() {
    let config = temp_file(
        "listen-tenant.toml",
        "[[tenant]]\nname = \"acme\"\nplugins = [\"sink\"]\n\
         [[listener]]\naddress = \"127.0.0.1:1\"\ntenant = \"acme\"\nprotocol = \"lmtp\"\nbare_lf = \"reject\"\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n",
    );
    let mut server = Server::start_raw(&["--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    // Plain SMTP at once: no PROXY header awaited, no LMTP.
    let (mut client, greeting) = crate::raw::RawClient::connect(server.addr);
    assert!(greeting.contains(" ESMTP "), "{greeting}");
    client.expect("EHLO client.test", "250");
    // Bare LF is this address's default (accepted on loopback without PROXY), not the
    // first listener's "reject".
    client.send(b"NOOP\n");
    assert!(client.reply().starts_with("250"), "a bare LF refused");
    assert!(client.send_message("Subject: t\r\n\r\nbody\r\n").starts_with("250 "));
    let line = server.wait_for_log("message accepted");
    assert!(line.contains("tenant=acme"), "{line}");
}

fn fails_with(args: &[&str], message: &str) {
    let out = Command::new(binary()).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(message), "{args:?}: no {message:?} in:\n{stderr}");
}

#[test]
fn bad_input_is_a_clear_error() {
    fails_with(
        &["--config", "/nonexistent/wasmtpd.toml"],
        "cannot read /nonexistent/wasmtpd.toml",
    );
    let bad = temp_file("bad.toml", "[limits]\nmax_command_line = 10\n");
    fails_with(
        &["--config", bad.to_str().unwrap()],
        "limits.max_command_line = 10 is below the minimum 512",
    );
    let typo = temp_file("typo.toml", "hostnme = \"x\"\n");
    fails_with(&["--config", typo.to_str().unwrap()], "unknown field `hostnme`");
    fails_with(
        &["--listen", "127.0.0.1:0", "--plugin", "nope"],
        "unknown plugin \"nope\"",
    );
    fails_with(&["--listen", "not-an-address"], "invalid value 'not-an-address'");
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(&["--listen", &addr], &format!("cannot listen on {addr}"));
}

/// `wasmtpd --deliver FILE`: one message through the configured chain without a network.
fn deliver(config: &str, message: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let config = temp_file("wasmtpd.toml", config);
    let message = temp_file("message.eml", message);
    let out = Command::new(binary())
        .args([
            "--config",
            config.to_str().unwrap(),
            "--deliver",
            message.to_str().unwrap(),
        ])
        .args(args)
        .output()
        .expect("run wasmtpd --deliver");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn deliver_runs_a_message_through_the_chain_without_a_network() {
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"filter\", \"debug-printer\"]\n\
                  [plugin.filter.settings]\nlocal_domains = [\"example.com\"]\nheader_rules = [\"Subject:lottery\"]\n";
    let to = ["--from", "a@example.org", "--to", "b@example.com"];

    let (code, stdout, dialogue) = deliver(config, "Subject: minutes\r\n\r\n.dot\r\n", &to);
    assert_eq!(code, Some(0), "{dialogue}");
    assert!(
        dialogue.contains("C: RCPT TO:<b@example.com>\nS: 250 2.1.5 OK"),
        "{dialogue}"
    );
    assert!(dialogue.contains("S: 250 2.0.0 OK"), "{dialogue}");
    // The printer got the message as a client would have sent it, dot and all.
    assert!(
        stdout.contains("Subject: minutes\nX-Peer: 127.0.0.1\n\n.dot\n"),
        "{stdout}"
    );

    let (code, stdout, dialogue) = deliver(config, "Subject: LOTTERY\r\n\r\nwin\r\n", &to);
    assert_eq!(code, Some(1), "{dialogue}");
    assert!(dialogue.contains("S: 550 5.7.1 Message rejected"), "{dialogue}");
    assert!(stdout.is_empty(), "{stdout}");

    // A refused recipient ends it before DATA.
    let elsewhere = ["--from", "a@example.org", "--to", "b@elsewhere.example"];
    let (code, _, dialogue) = deliver(config, "Subject: x\r\n\r\nx\r\n", &elsewhere);
    assert_eq!(code, Some(1), "{dialogue}");
    assert!(!dialogue.contains("C: DATA"), "{dialogue}");

    // A plugin that fails defers the message: sendmail's EX_TEMPFAIL.
    let trap = misbehave_beside_sink("trap", "");
    let (code, _, dialogue) = deliver(&trap, "Subject: x\r\n\r\nx\r\n", &to);
    assert_eq!(code, Some(75), "{dialogue}");
    assert!(dialogue.contains("S: 451 4.3.0"), "{dialogue}");
}

#[test]
fn deliver_sends_a_file_with_lf_endings_as_it_is_meant_and_needs_no_configuration() {
    // 18 octets with LF endings; 21 as received, with CRLF ones.
    let message = temp_file("lf.eml", "Subject: lf\n\nbody\n");
    let out = Command::new(binary())
        .args(["--deliver", message.to_str().unwrap(), "--to", "b@example.com"])
        .output()
        .expect("run wasmtpd --deliver");
    let (stdout, dialogue) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{dialogue}");
    assert!(dialogue.contains("C: (21 octets of message, then .)"), "{dialogue}");
    // debug-printer, the default chain, prints the body's one line and then the end: no
    // blank line was added.
    assert!(stdout.contains("\nbody\n------------ END MESSAGE"), "{stdout}");
}

#[test]
fn the_log_says_how_many_worker_threads_and_a_bad_count_is_refused() {
    let mut server = Server::start(&[]);
    let line = server.wait_for_log("worker thread");
    assert!(
        line.contains("usable cores (TOKIO_WORKER_THREADS sets another number)"),
        "{line}"
    );

    let refused = Command::new(binary())
        .env("TOKIO_WORKER_THREADS", "0")
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("TOKIO_WORKER_THREADS=0: the server needs at least one worker thread"),
        "{stderr}"
    );
}

#[test]
fn a_configuration_error_is_said_once() {
    let typo = temp_file("typo-once.toml", "hostnme = \"x\"\n");
    let missing = temp_file("missing-dir-marker", "").with_file_name("no-such-config.toml");
    for (args, said) in [
        (vec!["--config", typo.to_str().unwrap()], "unknown field `hostnme`"),
        (vec!["--config", missing.to_str().unwrap()], "No such file or directory"),
    ] {
        let out = Command::new(binary()).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.matches(said).count(),
            1,
            "{args:?}: {said:?} not said once in:\n{stderr}"
        );
    }
}
