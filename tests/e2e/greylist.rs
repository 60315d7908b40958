//! The shipped greylisting plugin on the key-value store: an unseen (network, sender,
//! recipient) is deferred with `451 4.7.1`, a retry after the delay passes and is
//! remembered; across a restart with the embedded store, across two processes with Redis.

use std::time::Duration;

use crate::raw::RawClient;
use crate::redis_server::Redis;
use crate::server::Server;
use crate::store::{embedded, redis, unreachable_redis};

/// Greylisting with a one-second delay in front of the sink.
fn greylisting(store: &str) -> Server {
    let config = format!("{store}[plugin.greylist]\nstore = true\n[plugin.greylist.settings]\ndelay_secs = 1\n");
    Server::with_config(&config, &["greylist", "sink"])
}

/// The reply to RCPT TO:<rcpt> from a@example.org in a fresh session.
fn rcpt(server: &Server, rcpt: &str) -> String {
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<a@example.org>", "250 ");
    client.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes());
    client.reply()
}

fn assert_deferred(reply: &str) {
    assert!(
        reply.starts_with("451 4.7.1 Greylisted, please try again in "),
        "{reply}"
    );
}

fn wait_out_the_delay() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn a_first_attempt_is_deferred_and_a_retry_after_the_delay_passes() {
    let server = greylisting(&embedded());
    assert_deferred(&rcpt(&server, "b@example.com"));
    // Too early: still deferred; another recipient is a triplet of its own.
    assert_deferred(&rcpt(&server, "b@example.com"));
    assert_deferred(&rcpt(&server, "c@example.com"));
    wait_out_the_delay();
    assert!(rcpt(&server, "b@example.com").starts_with("250 2.1.5"));
    // Remembered: passes again at once; the whole message goes through.
    let mut client = RawClient::ehlo(server.addr);
    client.expect("MAIL FROM:<a@example.org>", "250 ");
    client.expect("RCPT TO:<b@example.com>", "250 2.1.5");
    client.expect("DATA", "354 ");
    assert!(client.finish_message("Subject: t\r\n\r\nbody\r\n").starts_with("250 "));
}

#[test]
fn what_greylisting_learnt_survives_a_restart_with_the_embedded_store() {
    let store = embedded();
    let mut first = greylisting(&store);
    assert_deferred(&rcpt(&first, "b@example.com"));
    first.terminate();
    assert!(first.wait_exit().success());
    wait_out_the_delay();
    let second = greylisting(&store);
    assert!(rcpt(&second, "b@example.com").starts_with("250 2.1.5"));
}

#[test]
fn two_processes_share_greylisting_through_redis() {
    let redis = Redis::start();
    let store = self::redis(&redis);
    let (one, two) = (greylisting(&store), greylisting(&store));
    assert_deferred(&rcpt(&one, "b@example.com"));
    // The other node knows the triplet: deferred for the rest of the delay, then passed.
    assert_deferred(&rcpt(&two, "b@example.com"));
    wait_out_the_delay();
    assert!(rcpt(&two, "b@example.com").starts_with("250 2.1.5"));
    assert!(rcpt(&one, "b@example.com").starts_with("250 2.1.5"));
}

#[test]
fn greylisting_defers_rather_than_passes_when_its_store_is_away() {
    let server = greylisting(&unreachable_redis());
    let reply = rcpt(&server, "b@example.com");
    assert!(reply.starts_with("451 4.3.0 Cannot check greylisting now"), "{reply}");
}
