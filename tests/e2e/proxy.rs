//! The proxy against a real upstream (a second wasmtpd): the envelope is kept, relaying
//! is for the configured domains only, and an upstream that is down or defers means a
//! 451 for our client, while an upstream 5xx is passed back.

use crate::raw::RawClient;
use crate::server::{Server, free_port};

fn proxy_to(upstream: &str, allowed: &str) -> Server {
    let config = format!(
        "[plugin.proxy]\nrelay = [\"{allowed}\"]\n[plugin.proxy.settings]\nupstream = \"{upstream}\"\nrelay_domains = [\"example.com\"]\n"
    );
    Server::with_config(&config, &["proxy"])
}

fn upstream_printing() -> Server {
    Server::with_config("[plugin.debug-printer.settings]\nenvelope = true\n", &["debug-printer"])
}

#[test]
fn the_proxy_relays_with_the_envelope_kept() {
    let mut upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let mut proxy = proxy_to(&addr, &addr);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    client.expect("RCPT TO:<two@EXAMPLE.com>", "250");
    client.expect("DATA", "354");
    client.expect("Subject: relayed\r\n\r\n..dotted line\r\n.", "250 2.0.0");
    let printed = upstream.wait_for_messages(1);
    assert!(printed.contains("mail from: 'sender@example.org'\n"), "{printed}");
    assert!(
        printed.contains("rcpt tos: ['one@example.com', 'two@EXAMPLE.com']\n"),
        "{printed}"
    );
    // The proxy's trace comes first, with the id its log gave the message.
    let accepted = proxy.wait_for_log("message accepted");
    let id = accepted.split(" id=").nth(1).unwrap().split(' ').next().unwrap();
    assert!(
        printed.contains("\nReceived: from client.test ([127.0.0.1])\n\tby "),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(" (wasmtpd) with ESMTP id {id};\n\t")),
        "{printed}"
    );
    assert!(
        printed.contains(" +0000\nSubject: relayed\nX-Peer: 127.0.0.1\n\n.dotted line\n"),
        "{printed}"
    );
}

#[test]
fn the_proxy_is_not_an_open_relay() {
    let upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let proxy = proxy_to(&addr, &addr);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    client.expect("RCPT TO:<victim@elsewhere.example>", "550 5.7.1");
    client.expect("RCPT TO:<postmaster>", "550 5.7.1");
}

#[test]
fn with_no_relay_domains_configured_nothing_is_relayed() {
    // The default is closed: a proxy told only where to relay relays for no one.
    let upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let config = format!("[plugin.proxy]\nrelay = [\"{addr}\"]\n[plugin.proxy.settings]\nupstream = \"{addr}\"\n");
    let proxy = Server::with_config(&config, &["proxy"]);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<sender@example.org>", "250");
    for rcpt in ["someone@example.com", "victim@elsewhere.example", "postmaster"] {
        client.expect(&format!("RCPT TO:<{rcpt}>"), "550 5.7.1");
    }
    client.expect("DATA", "503");
}

#[test]
fn an_upstream_that_is_down_means_451() {
    // A port that was free a moment ago: nothing listens there.
    let dead = format!("127.0.0.1:{}", free_port());
    let mut proxy = proxy_to(&dead, &dead);
    let mut client = RawClient::ehlo(proxy.addr);
    client.start_message();
    let reply = client.expect("x\r\n.", "451 4.4.1");
    // The client is not told where the upstream is, nor why it failed: the log is.
    assert_eq!(reply, "451 4.4.1 Upstream unavailable, try again later");
    let line = proxy.wait_for_log("upstream unavailable");
    assert!(line.contains(&dead) && line.contains("refused"), "{line}");
}

#[test]
fn an_upstream_5xx_is_passed_back_and_a_4xx_is_451() {
    // The upstream takes mail for alice only.
    let upstream = Server::with_config(
        "[plugin.filter.settings]\nlocal_users = [\"alice@example.com\"]\n",
        &["filter", "sink"],
    );
    let addr = upstream.addr.to_string();
    let proxy = proxy_to(&addr, &addr);
    let mut client = RawClient::ehlo(proxy.addr);
    client.start_message_to("nobody@example.com");
    client.expect("x\r\n.", "550 5.1.1 No such user");
    // All or nothing: one refused recipient means no delivery to the others either.
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<alice@example.com>", "250");
    client.expect("RCPT TO:<nobody@example.com>", "250");
    client.expect("DATA", "354");
    client.expect("x\r\n.", "550 5.1.1 No such user");
    client.start_message_to("alice@example.com");
    client.expect("x\r\n.", "250 2.0.0");

    let deferring = Server::with_config("[limits]\nmax_recipients = 1\n", &["sink"]);
    let addr = deferring.addr.to_string();
    let proxy = proxy_to(&addr, &addr);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    client.expect("RCPT TO:<two@example.com>", "250");
    client.expect("DATA", "354");
    client.expect("x\r\n.", "451 4.4.0 Upstream");
}

#[test]
fn relaying_to_an_upstream_not_allowed_is_refused() {
    let upstream = upstream_printing();
    let proxy = proxy_to(&upstream.addr.to_string(), "127.0.0.1:1");
    let mut client = RawClient::ehlo(proxy.addr);
    client.start_message();
    client.expect("x\r\n.", "451 4.3.5");
}

#[test]
fn a_plugin_cannot_smuggle_smtp_commands_through_relay() {
    // An "upstream" that records whether anyone connects; the plugin may relay to it.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    upstream.set_nonblocking(true).unwrap();
    let target = upstream.local_addr().unwrap().to_string();
    let config = format!(
        "[plugin.p]\nsource = \"{}\"\nrelay = [\"{target}\"]\n[plugin.p.settings]\nmode = \"relay-inject\"\ntarget = \"{target}\"\n",
        crate::server::plugin_path("misbehave")
    );
    let mut server = Server::with_config(&config, &["p"]);
    let mut client = RawClient::ehlo(server.addr);
    client.start_message();
    let reply = client.finish_message("Subject: t\r\n\r\nbody\r\n");
    assert!(
        reply.starts_with("554 5.7.0 relay refused: ") && reply.contains("NotAllowed("),
        "{reply}"
    );
    assert!(reply.contains("is not an RFC 5321 path"), "{reply}");
    let line = server.wait_for_log("relay refused");
    assert!(line.contains("sender"), "{line}");
    // Nothing was sent: the upstream never saw a connection.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(upstream.accept().is_err(), "the host connected upstream");
}

/// An upstream offering STARTTLS with a certificate for 127.0.0.1 (in `dir/cert.pem`),
/// printing each message with its envelope and how it came (`tls: ...`).
fn upstream_with_starttls(dir: &std::path::Path) -> Server {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"debug-printer\"]\n\
         [listener.tls]\ncert = {:?}\nkey = {:?}\n\
         [plugin.debug-printer.settings]\nenvelope = true\n",
        dir.join("cert.pem"),
        dir.join("key.pem")
    );
    Server::from_config(&config)
}

fn proxy_with_tls(upstream: &str, tls: &str) -> Server {
    let config = format!(
        "[plugin.proxy]\nrelay = [\"{upstream}\"]\n{tls}\n[plugin.proxy.settings]\nupstream = \"{upstream}\"\nrelay_domains = [\"example.com\"]\n"
    );
    Server::with_config(&config, &["proxy"])
}

fn relay_one(proxy: &Server) -> String {
    let mut client = RawClient::ehlo(proxy.addr);
    client.start_message();
    client.finish_message("Subject: over tls?\r\n\r\nbody\r\n")
}

#[test]
fn the_relay_uses_starttls_when_offered_and_checks_the_certificate_when_required() {
    let dir = crate::server::temp_dir();
    let mut upstream = upstream_with_starttls(&dir);
    let addr = upstream.addr.to_string();
    // By default (may): encrypted, the self-signed certificate not checked.
    let proxy = proxy_with_tls(&addr, "");
    assert!(relay_one(&proxy).starts_with("250 2.0.0"));
    let printed = upstream.wait_for_messages(1);
    assert!(printed.contains("tls: TLSv1_3"), "{printed}");
    // Required, against the upstream's own certificate as the CA: relayed, encrypted.
    let ca = format!("relay_tls = \"required\"\nrelay_ca = {:?}", dir.join("cert.pem"));
    let proxy = proxy_with_tls(&addr, &ca);
    assert!(relay_one(&proxy).starts_with("250 2.0.0"));
    let printed = upstream.wait_for_messages(2);
    assert_eq!(printed.matches("tls: TLSv1_3").count(), 2, "{printed}");
    // Required, against the system's roots, which do not know it: deferred, and logged.
    let mut proxy = proxy_with_tls(&addr, "relay_tls = \"required\"");
    assert_eq!(relay_one(&proxy), "451 4.4.1 Upstream unavailable, try again later");
    let line = proxy.wait_for_log("upstream unavailable");
    assert!(line.contains("TLS handshake"), "{line}");
}

#[test]
fn a_relay_that_requires_tls_defers_to_an_upstream_without_starttls() {
    let upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let mut proxy = proxy_with_tls(&addr, "relay_tls = \"required\"");
    assert_eq!(relay_one(&proxy), "451 4.4.1 Upstream unavailable, try again later");
    let line = proxy.wait_for_log("upstream unavailable");
    assert!(line.contains("does not offer STARTTLS"), "{line}");
}

#[test]
fn relay_tls_none_stays_in_the_clear_and_relay_ca_needs_required() {
    let dir = crate::server::temp_dir();
    let mut upstream = upstream_with_starttls(&dir);
    let addr = upstream.addr.to_string();
    let proxy = proxy_with_tls(&addr, "relay_tls = \"none\"");
    assert!(relay_one(&proxy).starts_with("250 2.0.0"));
    let printed = upstream.wait_for_messages(1);
    assert!(printed.contains("tls: none"), "{printed}");
    // A CA with opportunistic TLS would be a check that never happens: refused at start.
    let config = format!(
        "[plugin.proxy]\nrelay = [\"{addr}\"]\nrelay_ca = {:?}\n[plugin.proxy.settings]\nupstream = \"{addr}\"\n",
        dir.join("cert.pem")
    );
    let path = crate::server::temp_file("wasmtpd.toml", &config);
    let out = std::process::Command::new(crate::server::binary())
        .args([
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--plugin",
            "proxy",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("relay_ca is only used with relay_tls = \"required\""),
        "{log}"
    );
}

/// A fake upstream: it offers STARTTLS and answers 220, then breaks the handshake; the
/// next connection it serves in the clear, and it says whether a message came.
fn upstream_breaking_tls() -> (String, std::thread::JoinHandle<bool>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let serve = std::thread::spawn(move || {
        let mut delivered = false;
        for round in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(crate::server::WAIT)).unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = BufReader::new(stream);
            out.write_all(b"220 fake ESMTP\r\n").unwrap();
            let mut line = String::new();
            let mut in_data = false;
            while lines.read_line(&mut line).unwrap_or(0) > 0 {
                let command = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = match command.as_str() {
                    _ if in_data && command == "." => {
                        in_data = false;
                        delivered = true;
                        b"250 2.0.0 taken\r\n"
                    }
                    _ if in_data => b"",
                    c if c.starts_with("EHLO") => b"250-fake\r\n250 STARTTLS\r\n",
                    "STARTTLS" if round == 0 => {
                        out.write_all(b"220 go ahead\r\nthis is not a TLS record\r\n").unwrap();
                        break;
                    }
                    "DATA" => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    "QUIT" => {
                        out.write_all(b"221 bye\r\n").unwrap();
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                out.write_all(reply).unwrap();
                line.clear();
            }
        }
        delivered
    });
    (addr, serve)
}

#[test]
fn opportunistic_tls_that_fails_relays_in_the_clear_instead_of_deferring() {
    let (addr, upstream) = upstream_breaking_tls();
    let mut proxy = proxy_with_tls(&addr, "");
    assert!(relay_one(&proxy).starts_with("250 2.0.0"));
    assert!(upstream.join().unwrap(), "the message did not reach the upstream");
    proxy.wait_for_log("TLS handshake failed");
}

#[test]
fn dsn_parameters_reach_the_plugins_and_the_upstream_and_bad_ones_are_refused() {
    let mut upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let proxy = proxy_to(&addr, &addr);
    // smtplib sends the same RCPT options with every recipient.
    let script = r#"
import smtplib, sys
client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
client.ehlo("client.test")
assert client.has_extn("dsn"), client.esmtp_features
client.sendmail("sender@example.org", ["one@example.com", "two@example.com"],
    "Subject: dsn\r\n\r\nhi\r\n",
    mail_options=["RET=HDRS", "ENVID=QQ+2B314159"],
    rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;One@Example.com"])
for bad in ["NOTIFY=NEVER,SUCCESS", "ORCPT=one@example.com", "NOTIFY=SOMETIMES"]:
    client.mail("sender@example.org")
    code, text = client.rcpt("one@example.com", [bad])
    print(bad, code, text.decode())
    client.rset()
code, text = client.mail("sender@example.org", ["RET=EVERYTHING"])
print("RET", code, text.decode())
code, text = client.mail("sender@example.org", ["DELIVERBY=100"])
print("DELIVERBY", code, text.decode())
client.quit()
"#;
    let out = crate::clients::python3(&["-c", script, &proxy.addr.port().to_string()]);
    for bad in ["NOTIFY=NEVER,SUCCESS", "ORCPT=one@example.com", "NOTIFY=SOMETIMES"] {
        assert!(out.contains(&format!("{bad} 501 5.5.4")), "{out}");
    }
    assert!(out.contains("RET 501 5.5.4 Bad or repeated RET parameter"), "{out}");
    assert!(out.contains("DELIVERBY 555 5.5.4"), "{out}");
    // The upstream (a second wasmtpd, which offers DSN) got them as sent: keywords and
    // RET, NOTIFY upper-cased, ENVID and ORCPT as they were.
    let printed = upstream.wait_for_messages(1);
    assert!(printed.contains("mail options: ['"), "{printed}");
    assert!(
        printed.contains("'RET=HDRS'") && printed.contains("'ENVID=QQ+2B314159'"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "rcpt options: ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;One@Example.com', 'NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;One@Example.com']"
        ),
        "{printed}"
    );
}

#[test]
fn a_binary_message_the_relay_cannot_send_by_data_is_refused_before_connecting() {
    // The upstream is never reached: nothing listens there.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let proxy = proxy_to(&nowhere, &nowhere);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<sender@example.org> BODY=BINARYMIME", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    let body = b"Subject: binary\r\n\r\n\x00\x01 bare\nLF\r\n";
    client.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    client.send(body);
    let reply = client.reply();
    assert!(reply.starts_with("554 5.6.3"), "{reply}");
    assert_eq!(proxy.log_count("upstream unavailable"), 0, "{}", proxy.log());
    // A binary message that is also valid text goes by DATA as it is.
    let upstream = upstream_printing();
    let addr = upstream.addr.to_string();
    let proxy = proxy_to(&addr, &addr);
    let mut client = RawClient::ehlo(proxy.addr);
    client.expect("MAIL FROM:<sender@example.org> BODY=BINARYMIME", "250");
    client.expect("RCPT TO:<one@example.com>", "250");
    let body = b"Subject: text after all\r\n\r\nplain\r\n";
    client.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    client.send(body);
    assert!(client.reply().starts_with("250"));
}

/// An upstream that speaks just enough SMTP and takes `delay` to accept each message, as
/// a busy or distant server does; it serves `messages` connections.
fn slow_upstream(delay: std::time::Duration, messages: usize) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(messages) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            stream.write_all(b"220 slow.test ESMTP\r\n").unwrap();
            let mut line = String::new();
            let mut in_data = false;
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let reply: &[u8] = match (in_data, line.as_str()) {
                    (true, ".\r\n") => {
                        in_data = false;
                        std::thread::sleep(delay);
                        b"250 2.0.0 queued\r\n"
                    }
                    (true, _) => b"",
                    (false, l) if l.starts_with("DATA") => {
                        in_data = true;
                        b"354 go on\r\n"
                    }
                    (false, l) if l.starts_with("QUIT") => {
                        let _ = stream.write_all(b"221 bye\r\n");
                        break;
                    }
                    _ => b"250 OK\r\n",
                };
                stream.write_all(reply).unwrap();
                line.clear();
            }
        }
    });
    addr
}

#[test]
fn waiting_for_the_upstream_is_not_charged_to_the_tenants_cpu_share() {
    // A relay waits 400 ms for the upstream's answer: time in the host, not computing.
    // At 100 ms of CPU a second (a 10 ms burst), a charged wait would owe seconds, paid
    // in pauses. (The nested host call that lowering the answer may make is covered by
    // pacing's unit test: this test did not reproduce it.)
    let upstream = slow_upstream(std::time::Duration::from_millis(400), 3).to_string();
    let config = format!(
        "metrics = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"proxy\"]\n\
         max_cpu_ms_per_second = 100\n\
         [plugin.proxy]\nrelay = [\"{upstream}\"]\n\
         [plugin.proxy.settings]\nupstream = \"{upstream}\"\nrelay_domains = [\"example.com\"]\n"
    );
    let mut server = Server::from_config(&config);
    let metrics = crate::metrics::endpoint(&mut server);
    let mut client = RawClient::ehlo(server.addr);
    for n in 0..3 {
        let reply = client.send_message("Subject: relayed\r\n\r\nrelayed\r\n");
        assert!(reply.starts_with("250 2.0.0"), "message {n}: {reply}");
    }
    let throttled = crate::metrics::throttled_line(&metrics, "");
    assert!(
        throttled.ends_with(" 0.0"),
        "paused for the upstream's wait: {throttled}"
    );
}
