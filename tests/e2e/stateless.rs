//! A plugin that declares it keeps no session state (the WIT's `stateless`) has its
//! instances shared by its chain's sessions, never across tenants; one that does not
//! keeps an instance a session. The misbehave plugin's `count` mode shows which instance
//! answered: it counts the calls its instance has taken.

use crate::raw::RawClient;
use crate::server::{Server, plugin_path};

fn counter(name: &str, stage: &str, stateless: bool) -> String {
    format!(
        "[plugin.{name}]\nsource = \"{}\"\n[plugin.{name}.settings]\nmode = \"count\"\nstage = \"{stage}\"\nstateless = \"{stateless}\"\n",
        plugin_path("misbehave")
    )
}

#[test]
fn a_stateless_plugins_instance_serves_one_session_after_another() {
    let server = Server::with_config(&counter("counter", "data", true), &["counter"]);
    for n in 1..=3 {
        let reply = RawClient::one_message(server.addr);
        assert!(
            reply.starts_with(&format!("250 2.0.0 call {n} of this instance")),
            "{n}: {reply}"
        );
    }
}

/// A stateless misbehave in `grow` mode with `settings`; the call number of the instance
/// that answered each of `messages` messages, a session each.
fn growing(settings: &str, messages: usize) -> Vec<u32> {
    let config = format!(
        "[plugin.grower]\nsource = \"{}\"\nmemory_mib = 64\n\
         [plugin.grower.settings]\nmode = \"grow\"\nstateless = \"true\"\n{settings}",
        plugin_path("misbehave")
    );
    let server = Server::with_config(&config, &["grower"]);
    (0..messages)
        .map(|_| {
            let reply = RawClient::one_message(server.addr);
            reply
                .strip_prefix("250 2.0.0 call ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{reply}"))
        })
        .collect()
}

#[test]
fn a_shared_instance_whose_memory_grew_is_retired_for_a_fresh_one() {
    // 3 MiB more at each message. Growth is counted from the instance's size after its
    // first message: six more messages' leaks (18 MiB) pass the 16 MiB allowed, five (15
    // MiB) do not, and the session after the seventh message gets a new instance.
    let calls = growing("grow_kib = \"3072\"\n", 10);
    assert_eq!(calls, [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]);
}

#[test]
fn memory_a_first_message_takes_is_not_counted_as_growth() {
    // 20 MiB at the first message, as an interpreter's heap might, and nothing after:
    // the instance serves on.
    let calls = growing("grow_kib = \"20480\"\ngrow_calls = \"1\"\n", 8);
    assert_eq!(calls, [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn a_shared_instance_is_retired_after_ten_thousand_calls() {
    let server = Server::with_config(&counter("counter", "rcpt", true), &["counter"]);
    // A session a hundred recipients (the most a message may have), pipelined: one call
    // each, all to the one idle instance.
    let mut answered = Vec::new();
    for _ in 0..101 {
        let mut client = RawClient::ehlo(server.addr);
        client.expect("MAIL FROM:<a@example.org>", "250");
        let commands: String = (0..100).map(|i| format!("RCPT TO:<r{i}@example.com>\r\n")).collect();
        client.send(commands.as_bytes());
        answered.extend((0..100).map(|_| client.reply()));
        client.expect("QUIT", "221");
    }
    let call = |n: usize| format!("250 2.0.0 call {n} of this instance");
    assert_eq!(answered[0], call(1));
    assert_eq!(answered[9_999], call(10_000));
    // Its 10,000th call was its last: the next goes to a fresh instance.
    assert_eq!(answered[10_000], call(1));
    assert_eq!(answered[10_099], call(100));
}

#[test]
fn a_plugin_that_keeps_state_gets_a_fresh_instance_each_session() {
    let server = Server::with_config(&counter("counter", "data", false), &["counter"]);
    for _ in 0..3 {
        let reply = RawClient::one_message(server.addr);
        assert!(reply.starts_with("250 2.0.0 call 1 of this instance"), "{reply}");
    }
}

#[test]
fn a_stateless_plugins_hooks_go_to_whichever_instance_is_free() {
    let server = Server::with_config(&counter("counter", "rcpt", true), &["counter"]);
    let mut first = RawClient::ehlo(server.addr);
    let mut second = RawClient::ehlo(server.addr);
    first.expect("MAIL FROM:<a@example.org>", "250");
    second.expect("MAIL FROM:<a@example.org>", "250");
    // One call at a time: each goes to the one idle instance, whichever session asks.
    first.expect("RCPT TO:<x@example.com>", "250 2.0.0 call 1 of this instance");
    second.expect("RCPT TO:<y@example.com>", "250 2.0.0 call 2 of this instance");
    first.expect("RCPT TO:<z@example.com>", "250 2.0.0 call 3 of this instance");
}

#[test]
fn tenants_never_share_an_instance() {
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"a\"\nplugins = [\"counter\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\ntenant = \"b\"\nplugins = [\"counter\"]\n{}",
        counter("counter", "data", true)
    );
    let mut server = Server::from_config(&config);
    let [a, b] = server.addresses(2)[..] else {
        panic!("two listeners")
    };
    assert!(RawClient::one_message(a).starts_with("250 2.0.0 call 1 of this instance"));
    assert!(RawClient::one_message(b).starts_with("250 2.0.0 call 1 of this instance"));
    assert!(RawClient::one_message(a).starts_with("250 2.0.0 call 2 of this instance"));
    assert!(RawClient::one_message(b).starts_with("250 2.0.0 call 2 of this instance"));
}

#[test]
fn the_built_ins_that_keep_no_state_say_so_and_greylist_does_not() {
    let config = "[[listener]]\naddress = \"127.0.0.1:0\"\n\
                  plugins = [\"filter\", \"greylist\", \"proxy\", \"sink\", \"debug-printer\"]\n\
                  [plugin.greylist]\nstore = true\n";
    let mut server = Server::from_config(config);
    for (plugin, stateless) in [
        ("filter", true),
        ("greylist", false),
        ("proxy", true),
        ("sink", true),
        ("debug-printer", true),
    ] {
        let line = server.wait_for_log(&format!("plugin={plugin} "));
        assert!(line.contains(&format!("stateless={stateless}")), "{line}");
    }
}
