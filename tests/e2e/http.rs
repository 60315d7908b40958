//! Outbound HTTP for plugins through wasi:http: to the authorities of the plugin's
//! `http` list only, within the timeout (and the call's budget), the response within its
//! size cap; against a real HTTP server on a loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::raw::RawClient;
use crate::server::{Server, plugin_path};

/// An HTTP/1.1 server on a free loopback port, answering by path: `/ok` (200 `hello`),
/// `/echo` (200 with the request's body), `/big` (200 with 5,000 octets), `/slow`
/// (200 after 3 s), `/pause` (200 after 300 ms). Runs until the test process ends.
fn web_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    addr
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let reply = match path {
        "/ok" => b"hello".to_vec(),
        "/echo" => body,
        "/big" => vec![b'x'; 5000],
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            b"late".to_vec()
        }
        "/pause" => {
            std::thread::sleep(Duration::from_millis(300));
            b"paused".to_vec()
        }
        _ => b"no such path".to_vec(),
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply);
}

/// A server whose plugin sends `method` to `authority` + `path`, allowed `allowed`.
fn asking(allowed: &str, authority: &str, path: &str, extra: &str) -> Server {
    let config = format!(
        "[http]\ntimeout_ms = 500\nmax_response_bytes = 1000\n\
         [plugin.p]\nsource = \"{}\"\nhttp = [{allowed}]\ntime_budget_ms = 2000\n\
         [plugin.p.settings]\nmode = \"http\"\nauthority = \"{authority}\"\npath = \"{path}\"\n{extra}",
        plugin_path("misbehave")
    );
    Server::with_config(&config, &["p"])
}

fn answer_of(server: &Server) -> String {
    RawClient::one_message(server.addr)
}

#[test]
fn a_plugin_asks_an_allowed_server_and_gets_its_answer() {
    let web = web_server().to_string();
    let server = asking(&format!("\"{web}\""), &web, "/ok", "");
    assert_eq!(answer_of(&server), "250 2.0.0 http: 200 \"hello\"");
    let posting = asking(
        &format!("\"{web}\""),
        &web,
        "/echo",
        "method = \"POST\"\nbody = \"{\\\"score\\\": 1}\"\n",
    );
    assert_eq!(answer_of(&posting), "250 2.0.0 http: 200 \"{\\\"score\\\": 1}\"");
}

#[test]
fn any_other_authority_is_refused_inside_the_plugin() {
    let web = web_server().to_string();
    let mut server = asking("\"127.0.0.1:1\"", &web, "/ok", "");
    assert_eq!(answer_of(&server), "554 5.7.0 http error: ErrorCode::HttpRequestDenied");
    server.wait_for_log("HTTP request refused: not in the plugin's `http` list");
    // Nothing granted: the same.
    let none = asking("", &web, "/ok", "");
    assert_eq!(answer_of(&none), "554 5.7.0 http error: ErrorCode::HttpRequestDenied");
}

#[test]
fn a_response_over_the_cap_fails_and_a_slow_server_times_out() {
    let web = web_server().to_string();
    let allowed = format!("\"{web}\"");
    let big = asking(&allowed, &web, "/big", "");
    assert_eq!(
        answer_of(&big),
        "554 5.7.0 http error: ErrorCode::HttpResponseBodySize(Some(5000))"
    );
    let slow = asking(&allowed, &web, "/slow", "");
    let started = Instant::now();
    let timed_out = answer_of(&slow);
    assert!(
        timed_out.starts_with("554 5.7.0 http error: ErrorCode::"),
        "{timed_out}"
    );
    assert!(timed_out.contains("Timeout"), "{timed_out}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_request_is_bounded_by_the_calls_time_budget() {
    // A 5 s timeout, but a budget of 300 ms: the call ends within its budget, 451.
    let web = web_server().to_string();
    let config = format!(
        "[http]\ntimeout_ms = 5000\n\
         [plugin.p]\nsource = \"{}\"\nhttp = [\"{web}\"]\ntime_budget_ms = 300\n\
         [plugin.p.settings]\nmode = \"http\"\nauthority = \"{web}\"\npath = \"/slow\"\n",
        plugin_path("misbehave")
    );
    let server = Server::with_config(&config, &["p"]);
    let started = Instant::now();
    let reply = answer_of(&server);
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert!(
        reply.starts_with("554 5.7.0 http error: ") || reply.starts_with("451 4.3.0"),
        "{reply}"
    );
}

#[test]
fn waiting_for_a_server_is_not_charged_to_the_tenants_cpu_share() {
    let web = web_server().to_string();
    // 100 ms of CPU a second (a 10 ms burst), more than the plugin computes: were the
    // 300 ms wait charged, the tenant would owe 2.9 s after each call, paid in pauses at
    // every tick of its computing.
    let config = format!(
        "metrics = \"127.0.0.1:0\"\n[http]\ntimeout_ms = 2000\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"p\"]\nmax_cpu_ms_per_second = 100\n\
         [plugin.p]\nsource = \"{}\"\nhttp = [\"{web}\"]\ntime_budget_ms = 2000\n\
         [plugin.p.settings]\nmode = \"http\"\nauthority = \"{web}\"\npath = \"/pause\"\n",
        plugin_path("misbehave")
    );
    let mut server = Server::from_config(&config);
    let metrics = crate::metrics::endpoint(&mut server);
    let mut client = RawClient::ehlo(server.addr);
    for n in 0..3 {
        let reply = client.send_message("Subject: ask\r\n\r\nask\r\n");
        assert!(
            reply.starts_with("250") && reply.contains("paused"),
            "message {n}: {reply}"
        );
    }
    let throttled = crate::metrics::throttled_line(&metrics, "");
    assert!(throttled.ends_with(" 0.0"), "paused for a wait: {throttled}");
}
