//! Bounded memory for message data on the real binary: messages that find no room in
//! memory are spooled and delivered all the same, one whose room does not come in time
//! gets `452 4.3.1`, and spool files a crashed process left are removed at start.

use std::path::Path;

use crate::raw::RawClient;
use crate::server::{Server, plugin_path, temp_dir};

/// A message of about 900 KiB.
fn big_message() -> String {
    let line = format!("{}\r\n", "x".repeat(98));
    format!("Subject: big\r\n\r\n{}", line.repeat(9000))
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Room for one 900 KiB message and one plugin's copy of it: 2 MiB.
fn tight_room(spool: &Path, extra: &str) -> String {
    format!(
        "spool_dir = \"{}\"\n[limits]\nmax_message_size = 1048576\nmax_message_memory = 2097152\n{extra}",
        spool.display()
    )
}

/// Sends `message` by BDAT in chunks of 300,000 octets; the reply to the last.
fn send_by_bdat(client: &mut RawClient, message: &str) -> String {
    client.expect("MAIL FROM:<a@example.org>", "250");
    client.expect("RCPT TO:<b@example.com>", "250");
    let chunks: Vec<&[u8]> = message.as_bytes().chunks(300_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { " LAST" } else { "" };
        client.send(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        client.send(chunk);
        let reply = client.reply();
        if !last.is_empty() || !reply.starts_with("250") {
            return reply;
        }
    }
    unreachable!("the last chunk returns")
}

#[test]
fn messages_without_room_in_memory_are_spooled_and_all_delivered_whole() {
    let spool = temp_dir();
    let config = format!(
        "{}[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"debug-printer\"]\nmax_concurrent_calls = 4\n\
         [plugin.debug-printer]\ntime_budget_ms = 10000\n",
        tight_room(&spool, "")
    );
    let mut server = Server::from_config(&config);
    let address = server.addresses(1)[0];
    // Six at once, in room for one: by DATA and by BDAT, each with its own last line.
    let senders: Vec<_> = (0..6)
        .map(|n| {
            let message = format!("{}end {n}\r\n", big_message());
            std::thread::spawn(move || {
                let mut client = RawClient::ehlo(address);
                if n % 2 == 0 {
                    client.send_message(&message)
                } else {
                    send_by_bdat(&mut client, &message)
                }
            })
        })
        .collect();
    for sender in senders {
        let reply = sender.join().unwrap();
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    let printed = server.wait_for_messages(6);
    assert!(server.log_count("spooling it") >= 1, "{}", server.log());
    for n in 0..6 {
        // Whole, and ending as sent: a spooled BDAT message gets no second CRLF.
        assert!(
            printed.contains(&format!("x\nend {n}\n------------ END MESSAGE")),
            "message {n} not whole"
        );
    }
    assert!(!printed.contains("not printed"));
    assert_eq!(files_in(&spool), 0, "spool files are removed with their transaction");
}

/// While one message fills the room (its plugin loops until its budget of `budget_ms`
/// ends), a second comes with `limits` in force: it gets `452 4.3.1`, and the log line that
/// says why contains `why`. The first gets the plugin's 451.
fn a_second_message_is_deferred(limits: &str, budget_ms: u64, why: &str) {
    let spool = temp_dir();
    // Enough calls at once that the second session's RCPT hook does not wait for the
    // looping call.
    let config = format!(
        "{}[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"slow\"]\nmax_concurrent_calls = 4\n\
         [plugin.slow]\nsource = \"{}\"\ntime_budget_ms = {budget_ms}\n[plugin.slow.settings]\nmode = \"loop\"\n",
        tight_room(&spool, limits),
        plugin_path("misbehave")
    );
    let mut server = Server::from_config(&config);
    let address = server.addresses(1)[0];
    let message = big_message();
    let first = {
        let message = message.clone();
        std::thread::spawn(move || RawClient::ehlo(address).send_message(&message))
    };
    server.wait_for_log("misbehaving: loop");
    let mut second = RawClient::ehlo(address);
    let reply = second.send_message(&message);
    assert!(reply.starts_with("452 4.3.1"), "{reply}\n{}", server.log());
    let line = server.wait_for_log("deferred a message");
    assert!(line.contains(why), "{line}");
    assert!(first.join().unwrap().starts_with("451 4.3.0"));
    // The session goes on, and nothing is left in the spool.
    second.expect("RSET", "250");
    assert_eq!(files_in(&spool), 0);
}

#[test]
fn a_message_that_would_pass_the_spools_limit_gets_452() {
    // Room for one message in memory, 100,000 octets in the spool.
    a_second_message_is_deferred(
        "max_spool_bytes = 100000\n",
        2000,
        "the spool is full (100000 octets in all)",
    );
}

#[test]
fn a_message_whose_room_does_not_come_in_time_gets_452() {
    // The first keeps the room for 3 s; the second waits the data timeout, 1 s.
    a_second_message_is_deferred("data_timeout_secs = 1\n", 3000, "no room for it in memory within 1s");
}

#[test]
fn spool_files_a_crashed_process_left_are_removed_at_start() {
    let spool = temp_dir();
    // A spool file nobody holds open and locked: its process is gone.
    std::fs::write(spool.join("wasmtpd-4194305-x1y2z3.msg"), "half a message").unwrap();
    std::fs::write(spool.join("notes.txt"), "not the spool's").unwrap();
    let config = format!(
        "{}[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n",
        tight_room(&spool, "")
    );
    let mut server = Server::from_config(&config);
    server.wait_for_log("removed spool files left by a process");
    assert!(!spool.join("wasmtpd-4194305-x1y2z3.msg").exists());
    assert!(spool.join("notes.txt").exists());
}

#[test]
fn an_instance_that_took_a_big_message_is_not_kept_for_the_next() {
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"counter\"]\n\
         [plugin.counter]\nsource = \"{}\"\n[plugin.counter.settings]\nmode = \"count\"\n",
        plugin_path("misbehave")
    );
    let mut server = Server::from_config(&config);
    let mut client = RawClient::ehlo(server.addresses(1)[0]);
    // Small messages share the session's instance ...
    assert!(
        client
            .send_message("Subject: 1\r\n\r\nx\r\n")
            .contains("call 1 of this instance")
    );
    assert!(
        client
            .send_message("Subject: 2\r\n\r\nx\r\n")
            .contains("call 2 of this instance")
    );
    // ... a message over 1 MiB is the last its instance sees: the next call gets a new one.
    let big = format!("Subject: 3\r\n\r\n{}", format!("{}\r\n", "x".repeat(98)).repeat(11_000));
    assert!(client.send_message(&big).contains("call 3 of this instance"));
    assert!(
        client
            .send_message("Subject: 4\r\n\r\nx\r\n")
            .contains("call 1 of this instance")
    );
}
