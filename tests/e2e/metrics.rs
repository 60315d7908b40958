//! The metrics endpoint, scraped: its numbers match what was sent, per tenant.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::raw::RawClient;
use crate::server::{Server, plugin_path, temp_file};

pub fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    response.split("\r\n\r\n").nth(1).unwrap().to_owned()
}

/// `GET path` from the metrics endpoint: the status line and the body.
pub fn get(address: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The line of the CPU-share pauses counter whose labels start with `labels` (`""`: the
/// first tenant's), scraped now.
pub fn throttled_line(address: &str, labels: &str) -> String {
    let scraped = scrape(address);
    let start = format!("wasmtpd_plugin_throttled_seconds_total{{{labels}");
    scraped
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no throttle counter {start} in {scraped}"))
        .to_owned()
}

/// Where the server serves its metrics (`metrics = "127.0.0.1:0"` in its configuration).
pub fn endpoint(server: &mut Server) -> String {
    let line = server.wait_for_log("metrics on http://");
    let after = line.split("http://").nth(1).unwrap();
    after.split('/').next().unwrap().to_owned()
}

fn send(client: &mut RawClient, body_lines: usize) -> String {
    client.send_message(&format!("Subject: m\r\n\r\n{}", "0123456789\r\n".repeat(body_lines)))
}

#[test]
fn counters_per_tenant_match_what_was_sent() {
    let config = format!(
        "metrics = \"127.0.0.1:0\"\n[limits]\nmax_message_size = 1000\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"acme\"\nplugins = [\"sink\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"hostile\"\nplugins = [\"bad\"]\n\
         [plugin.bad]\nsource = \"{}\"\n[plugin.bad.settings]\nmode = \"trap\"\n",
        plugin_path("misbehave")
    );
    let path = temp_file("wasmtpd.toml", &config);
    let mut server = Server::start_raw(&["--config", path.to_str().unwrap()]);
    let addresses = server.addresses(2);
    let endpoint = endpoint(&mut server);

    let mut acme = RawClient::ehlo(addresses[0]);
    for _ in 0..3 {
        assert!(send(&mut acme, 1).starts_with("250"));
    }
    assert!(send(&mut acme, 200).starts_with("552"));
    let _second_session = RawClient::ehlo(addresses[0]);
    let mut hostile = RawClient::ehlo(addresses[1]);
    for _ in 0..2 {
        assert!(send(&mut hostile, 1).starts_with("451"));
    }
    server.wait_for_log_count("answering 451", 2);

    let text = scrape(&endpoint);
    for expected in [
        "wasmtpd_sessions_total{tenant=\"acme\"} 2",
        "wasmtpd_sessions_total{tenant=\"hostile\"} 1",
        "wasmtpd_messages_total{tenant=\"acme\",outcome=\"accepted\"} 3",
        "wasmtpd_messages_total{tenant=\"acme\",outcome=\"rejected\"} 1",
        "wasmtpd_messages_total{tenant=\"acme\",outcome=\"tempfailed\"} 0",
        "wasmtpd_messages_total{tenant=\"hostile\",outcome=\"tempfailed\"} 2",
        "wasmtpd_plugin_errors_total{tenant=\"hostile\",kind=\"trap\"} 2",
        "wasmtpd_plugin_errors_total{tenant=\"acme\",kind=\"trap\"} 0",
        "wasmtpd_plugin_call_seconds_count{tenant=\"acme\",stage=\"message\"} 3",
        "wasmtpd_plugin_call_seconds_count{tenant=\"acme\",stage=\"rcpt\"} 0",
        // misbehave also exports the RCPT hook: a call at RCPT and one at the end of DATA.
        "wasmtpd_plugin_call_seconds_count{tenant=\"hostile\",stage=\"rcpt\"} 2",
        "wasmtpd_plugin_call_seconds_count{tenant=\"hostile\",stage=\"message\"} 2",
        "wasmtpd_reloads_total{result=\"applied\"} 0",
    ] {
        assert!(text.lines().any(|l| l == expected), "no {expected:?} in:\n{text}");
    }
    // The log names the tenant too.
    assert!(server.log().contains("tenant=hostile"), "{}", server.log());

    // Reloads, applied and refused, are counted.
    server.hangup();
    server.wait_for_log("reloaded (SIGHUP)");
    std::fs::write(&path, "this is not toml").unwrap();
    server.wait_for_log("reload refused");
    let text = scrape(&endpoint);
    for expected in [
        "wasmtpd_reloads_total{result=\"applied\"} 1",
        "wasmtpd_reloads_total{result=\"refused\"} 1",
    ] {
        assert!(text.lines().any(|l| l == expected), "no {expected:?} in:\n{text}");
    }
}
