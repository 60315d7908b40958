//! SIGTERM: no new connections, idle sessions get `421 4.3.2`, a transaction in flight
//! finishes and is delivered, `/readyz` says draining meanwhile, and the process exits 0.

use std::net::TcpStream;

use std::process::{Command, Output};

use crate::metrics::{endpoint, get};
use crate::raw::RawClient;
use crate::server::{Server, binary, free_port, temp_file};

/// `wasmtpd health` with `args`, as a container's HEALTHCHECK runs it.
fn health(args: &[&str]) -> Output {
    Command::new(binary()).arg("health").args(args).output().unwrap()
}

#[test]
fn sigterm_lets_the_transaction_in_flight_finish_and_exits_0() {
    let mut server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let metrics = endpoint(&mut server);
    assert_eq!(get(&metrics, "/readyz"), ("HTTP/1.1 200 OK".into(), "ready\n".into()));
    let ready = health(&[&metrics, "--ready"]);
    assert!(ready.status.success(), "{ready:?}");
    assert_eq!(
        String::from_utf8_lossy(&ready.stdout),
        "/readyz: HTTP/1.1 200 OK: ready\n"
    );
    let mut idle = RawClient::ehlo(server.addr);
    let mut busy = RawClient::ehlo(server.addr);
    busy.expect("MAIL FROM:<a@example.org>", "250");

    server.terminate();
    server.wait_for_log("shutting down");
    // Draining: not ready (a balancer sends no more), alive, its counters still served.
    let (status, body) = get(&metrics, "/readyz");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "draining\n")
    );
    assert_eq!(get(&metrics, "/healthz").0, "HTTP/1.1 200 OK");
    assert_eq!(get(&metrics, "/metrics").0, "HTTP/1.1 200 OK");
    // The same answers from the probe a container runs: not ready, alive.
    let draining = health(&[&metrics, "--ready"]);
    assert_eq!(draining.status.code(), Some(1), "{draining:?}");
    assert!(String::from_utf8_lossy(&draining.stdout).contains("503 Service Unavailable: draining"));
    assert!(health(&[&metrics]).status.success());
    let reply = idle.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply:?}");
    idle.expect_closed();
    // No new connections once shutdown began.
    let refused = TcpStream::connect(server.addr).is_err()
        || RawClient::connect(server.addr).1.is_empty()
        || RawClient::connect(server.addr).1.starts_with("421");
    assert!(refused, "a connection was served after SIGTERM");

    busy.expect("RCPT TO:<b@example.com>", "250");
    busy.expect("DATA", "354");
    busy.expect("Subject: in flight\r\n\r\nfinished\r\n.", "250 2.0.0");
    // The transaction is over: the session ends.
    busy.send(b"NOOP\r\n");
    assert!(busy.reply().starts_with("421 4.3.2"));

    let status = server.wait_exit();
    assert!(status.success(), "exit status {status}");
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("Subject: in flight"), "{printed}");
}

#[test]
fn the_health_probe_reads_the_address_from_the_configuration_and_fails_clearly() {
    let port = free_port();
    // Every address: asked on loopback. Nobody listens there: exit 1, and why.
    let config = temp_file("health.toml", &format!("metrics = \"0.0.0.0:{port}\"\n"));
    let probe = Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "health"])
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(1));
    let said = String::from_utf8_lossy(&probe.stderr);
    assert!(
        said.contains(&format!("cannot connect to the metrics listener on 127.0.0.1:{port}")),
        "{said}"
    );
    let nowhere = health(&[]);
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&nowhere.stderr).contains("give the metrics address, or a --config that sets metrics"),
        "{nowhere:?}"
    );
}

#[test]
fn a_message_answered_250_is_already_printed_when_the_process_is_killed() {
    let mut server = Server::start(&[]);
    // Several rounds: output gathered for even a few milliseconds after the 250 would be
    // lost with the process in some of them.
    for round in 0..20 {
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "250");
        client.expect("RCPT TO:<b@example.com>", "250");
        client.expect("DATA", "354");
        client.expect(&format!("Subject: round {round}\r\n\r\nhi\r\n."), "250 2.0.0");
    }
    server.kill();
    let _ = server.wait_exit();
    let printed = server.wait_for_messages(20);
    for round in 0..20 {
        assert!(
            printed.contains(&format!("Subject: round {round}\n")),
            "round {round}:\n{printed}"
        );
    }
}

#[test]
fn a_message_answered_250_is_already_in_the_stdout_file_when_the_process_is_killed() {
    use std::io::{BufRead, BufReader};
    // Stdout a regular file: the session writes its message itself (no writer thread).
    let out = crate::server::temp_dir().join("printed.txt");
    let mut child = Command::new(binary())
        .args(["--listen", "127.0.0.1:0"])
        .env("WASMTPD_LOG", "info")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let address = loop {
        line.clear();
        assert!(log.read_line(&mut line).unwrap() > 0, "no listening line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split(' ').next().unwrap().parse().unwrap();
        }
    };
    for round in 0..20 {
        let mut client = RawClient::ehlo(address);
        client.expect("MAIL FROM:<a@example.org>", "250");
        client.expect("RCPT TO:<b@example.com>", "250");
        client.expect("DATA", "354");
        client.expect(&format!("Subject: round {round}\r\n\r\nhi\r\n."), "250 2.0.0");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let printed = std::fs::read_to_string(&out).unwrap();
    for round in 0..20 {
        assert!(
            printed.contains(&format!("Subject: round {round}\n")),
            "round {round}:\n{printed}"
        );
    }
}
