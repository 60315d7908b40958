//! SIGTERM: no new connections, idle sessions get `421 4.3.2`, a transaction in flight
//! finishes and is delivered, `/readyz` says draining meanwhile, and the process exits 0.

use std::net::TcpStream;

use crate::metrics::{endpoint, get};
use crate::raw::RawClient;
use crate::server::Server;

#[test]
fn sigterm_lets_the_transaction_in_flight_finish_and_exits_0() {
    let mut server = Server::start(&["--metrics", "127.0.0.1:0"]);
    let metrics = endpoint(&mut server);
    assert_eq!(get(&metrics, "/readyz"), ("HTTP/1.1 200 OK".into(), "ready\n".into()));
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
