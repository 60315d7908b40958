//! Per-address rates held in a real redis-server by two real nodes (`limits.rates_redis`):
//! a client spread over both gets its limit once, even back to back; with Redis gone each
//! node serves and counts alone, says so in the log and `/metrics`, and adds what it let
//! through to Redis once it is back.
//! Clients come through PROXY-protocol listeners that name a remote address (loopback is
//! exempt from the per-address limits).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::{endpoint, scrape};
use crate::raw::RawClient;
use crate::redis_server::Redis;
use crate::server::Server;

const REMOTE: &str = "192.0.2.10";
/// The log line of a node that counts with the others.
const SHARED: &str = "with the other nodes, in Redis";
/// The log line of a node that counts alone.
const ALONE: &str = "on this node alone until it does";

fn node(redis_url: &str, limits: &str) -> (Server, SocketAddr, String) {
    let mut server = Server::from_config(&format!(
        "metrics = \"127.0.0.1:0\"\n[limits]\n{limits}\nrates_redis = \"{redis_url}\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n"
    ));
    let address = server.addresses(1)[0];
    let metrics = endpoint(&mut server);
    (server, address, metrics)
}

/// A node counting with the others in `redis`, once it says so.
fn shared_node(redis: &Redis, limits: &str) -> (Server, SocketAddr, String) {
    let (mut server, address, metrics) = node(&redis.url(), limits);
    server.wait_for_log(SHARED);
    (server, address, metrics)
}

/// The current minute's window, as the nodes number it.
fn window() -> u64 {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    ms / 60_000
}

/// Waits, if need be, so that the next 20 seconds fall in one window: a count that
/// crossed into a new minute would start again from zero.
fn within_one_window() {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let left = 60_000 - ms % 60_000;
    if left < 20_000 {
        std::thread::sleep(Duration::from_millis(left + 50));
    }
}

fn greeting_as(address: SocketAddr) -> String {
    let (mut client, greeting) = RawClient::connect_as(address, REMOTE);
    if greeting.starts_with("220 ") {
        client.expect("QUIT", "221");
    } else {
        client.expect_closed();
    }
    greeting
}

fn shared_up(metrics: &str) -> String {
    let scraped = scrape(metrics);
    let line = scraped.lines().find(|l| l.starts_with("wasmtpd_shared_rates_up "));
    line.unwrap_or_else(|| panic!("no wasmtpd_shared_rates_up in {scraped}"))
        .to_owned()
}

#[test]
fn two_nodes_hold_one_connection_rate_for_an_address() {
    let redis = Redis::start();
    let (a, address_a, metrics_a) = shared_node(&redis, "connections_per_ip_per_minute = 4");
    let (_b, address_b, _) = shared_node(&redis, "connections_per_ip_per_minute = 4");
    assert_eq!(shared_up(&metrics_a), "wasmtpd_shared_rates_up 1");
    within_one_window();
    let window = window();
    // Two on each node: four in all, the address's limit.
    for address in [address_a, address_b, address_a, address_b] {
        let greeting = greeting_as(address);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
    }
    let key = format!("wasmtpd:rates:connections:{window}");
    assert_eq!(redis.command(&format!("HGET {key} {REMOTE}")).as_deref(), Some("4"));
    // Alone, each node would let two more in; together they refuse the fifth.
    for address in [address_a, address_b] {
        let greeting = greeting_as(address);
        assert!(greeting.starts_with("421 "), "{greeting:?}");
        assert!(
            greeting.contains("Too many connections from your address"),
            "{greeting:?}"
        );
    }
    // Another address has its own count.
    let (mut other, greeting) = RawClient::connect_as(address_a, "192.0.2.11");
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    other.expect("QUIT", "221");
    assert_eq!(a.log_count(ALONE), 0);
}

#[test]
fn two_nodes_hold_one_command_rate_for_an_address() {
    let redis = Redis::start();
    let (mut a, address_a, _) = shared_node(&redis, "commands_per_ip_per_minute = 6");
    let (_b, address_b, _) = shared_node(&redis, "commands_per_ip_per_minute = 6");
    within_one_window();
    // Three commands on a, then three on b: the sixth is the last the address gets.
    let (mut first, _) = RawClient::connect_as(address_a, REMOTE);
    first.expect("EHLO client.test", "250-");
    first.expect("NOOP", "250");
    first.expect("NOOP", "250");
    let (mut second, _) = RawClient::connect_as(address_b, REMOTE);
    second.expect("EHLO client.test", "250-");
    second.expect("NOOP", "250");
    second.expect("NOOP", "250");
    first.expect("NOOP", "421 4.7.0 Too many commands");
    first.expect_closed();
    a.wait_for_log("command rate");
}

#[test]
fn without_redis_a_node_serves_counts_alone_says_so_and_catches_up() {
    let redis = Redis::start();
    let port = redis.port;
    let (mut a, address, metrics) = shared_node(&redis, "connections_per_ip_per_minute = 3");
    drop(redis);
    within_one_window();
    let window = window();
    // Mail goes on, and the limit still holds, on this node's counts.
    for _ in 0..3 {
        let greeting = greeting_as(address);
        assert!(greeting.starts_with("220 "), "{greeting:?}");
    }
    let greeting = greeting_as(address);
    assert!(greeting.starts_with("421 "), "{greeting:?}");
    a.wait_for_log(ALONE);
    assert_eq!(shared_up(&metrics), "wasmtpd_shared_rates_up 0");
    let failures = scrape(&metrics);
    assert!(
        failures
            .lines()
            .any(|l| l.starts_with("wasmtpd_shared_rates_failures_total ") && !l.ends_with(" 0")),
        "{failures}"
    );
    assert_eq!(a.log_count(ALONE), 1, "said once, not at every exchange");

    // Back on the same port: the node says so, and adds what it let through meanwhile
    // with the address's next lease, which is refused.
    let redis = Redis::start_on(port);
    a.wait_for_log_count(SHARED, 2);
    assert_eq!(shared_up(&metrics), "wasmtpd_shared_rates_up 1");
    let greeting = greeting_as(address);
    assert!(greeting.starts_with("421 "), "{greeting:?}");
    let key = format!("wasmtpd:rates:connections:{window}");
    assert_eq!(redis.command(&format!("HGET {key} {REMOTE}")).as_deref(), Some("3"));
}

#[test]
fn a_redis_down_at_start_is_a_warning_not_an_outage() {
    let port = crate::server::free_port();
    let (mut a, address, metrics) = node(
        &format!("redis://127.0.0.1:{port}/0"),
        "connections_per_ip_per_minute = 3",
    );
    a.wait_for_log(ALONE);
    assert_eq!(shared_up(&metrics), "wasmtpd_shared_rates_up 0");
    let greeting = greeting_as(address);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
}

#[test]
fn a_redis_that_answers_but_refuses_the_leases_is_not_taken_back() {
    let redis = Redis::start();
    let (mut a, address, metrics) = shared_node(&redis, "connections_per_ip_per_minute = 3");
    // Full: PING still answers, the lease script's writes are refused (OOM).
    assert_eq!(redis.command("CONFIG SET maxmemory 1").as_deref(), Some("+OK"));
    let greeting = greeting_as(address);
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    a.wait_for_log(ALONE);
    // Its checks every second use the lease script too: it stays alone, and says nothing more.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(shared_up(&metrics), "wasmtpd_shared_rates_up 0");
    assert_eq!(a.log_count(SHARED), 1, "{}", a.log());
    assert_eq!(a.log_count(ALONE), 1, "{}", a.log());
}
