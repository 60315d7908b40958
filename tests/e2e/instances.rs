//! Where plugin instances come from: a pool reserved at start when it fits, else made on
//! demand; and plugins made of the same component sharing its compiled code.

use std::process::Command;

use crate::raw::RawClient;
use crate::server::{Server, WAIT, binary, plugin_path, temp_file};

const ON_DEMAND: &str = "plugin instances are made on demand";

/// A message to `rcpt` in a fresh session; the reply to the final dot.
fn deliver(server: &Server, rcpt: &str) -> String {
    let mut client = RawClient::ehlo(server.addr);
    client.start_message_to(rcpt);
    client.finish_message("Subject: t\r\n\r\nbody\r\n")
}

#[test]
fn by_default_instances_come_from_the_pool() {
    let mut server = Server::start(&[]);
    assert!(RawClient::one_message(server.addr).starts_with("250 "));
    server.terminate();
    server.wait_exit();
    assert!(!server.log().contains(ON_DEMAND), "{}", server.log());
}

#[test]
fn a_pool_too_big_to_reserve_gives_way_to_instances_made_on_demand() {
    // 10,000 sessions, each with a chain of one and a tenant's plugin: 20,000 instances,
    // whose pool would reserve 160 TiB of address space, more than a process has.
    let config = "[limits]\nmax_connections = 10000\n\
                  [[listener]]\naddress = \"127.0.0.1:0\"\nroute_by_domain = true\n\
                  [[tenant]]\nname = \"acme\"\ndomains = [\"acme.example\"]\nplugins = [\"sink\"]\n";
    let mut server = Server::from_config(config);
    let line = server.wait_for_log(ON_DEMAND);
    assert!(
        line.contains("would reserve more than 64 TiB of address space"),
        "{line}"
    );
    for _ in 0..3 {
        assert!(deliver(&server, "a@acme.example").starts_with("250 "));
    }
    server.terminate();
    assert!(server.wait_exit().success(), "{}", server.log());
}

#[test]
fn an_address_space_limit_that_refuses_the_pool_gives_way_to_instances_made_on_demand() {
    // 40 GiB of address space: room for a few instances (4 GiB each), not for the pool of
    // a thousand sessions.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -v 41943040 && exec \"$0\" \"$@\"")
        .arg(binary())
        .args(["--listen", "127.0.0.1:0"]);
    let mut server = Server::start_command(command, WAIT);
    let line = server.wait_for_log(ON_DEMAND);
    assert!(line.contains("could not be made"), "{line}");
    for _ in 0..3 {
        assert!(RawClient::one_message(server.addr).starts_with("250 "));
    }
    server.terminate();
    assert!(server.wait_exit().success(), "{}", server.log());
}

#[test]
fn plugins_made_of_the_same_component_share_its_code_and_keep_their_own_settings() {
    let printer = plugin_path("debug-printer");
    let copy = temp_file("printer-copy.wasm", "");
    std::fs::copy(&printer, &copy).unwrap();
    let mut other = std::fs::read(&printer).unwrap();
    // A custom section (id 0, size 4, name "x" of length 1, two octets) makes other bytes.
    other.extend_from_slice(&[0, 4, 1, b'x', 1, 2]);
    let different = temp_file("printer-different.wasm", "");
    std::fs::write(&different, other).unwrap();
    // The listener's own chain is sink, so that no tenant's plugin is the built-in printer.
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nroute_by_domain = true\nplugins = [\"sink\"]\n\
         [[tenant]]\nname = \"a\"\ndomains = [\"a.example\"]\nplugins = [\"first\"]\n\
         [[tenant]]\nname = \"b\"\ndomains = [\"b.example\"]\nplugins = [\"second\"]\n\
         [[tenant]]\nname = \"c\"\ndomains = [\"c.example\"]\nplugins = [\"third\"]\n\
         [plugin.first]\nsource = \"{printer}\"\nstdout = \"stdout\"\n\
         [plugin.first.settings]\nenvelope = true\n\
         [plugin.second]\nsource = \"{}\"\nstdout = \"stdout\"\n\
         [plugin.third]\nsource = \"{}\"\nstdout = \"stdout\"\n",
        copy.display(),
        different.display()
    );
    let mut server = Server::from_config(&config);
    for (n, rcpt) in ["x@a.example", "x@b.example", "x@c.example"].iter().enumerate() {
        assert!(deliver(&server, rcpt).starts_with("250 "), "{rcpt}");
        server.wait_for_messages(n + 1);
    }
    let printed = server.stdout();
    let messages: Vec<&str> = printed.split("---------- MESSAGE FOLLOWS ----------").skip(1).collect();
    assert_eq!(messages.len(), 3, "{printed}");
    // Only the first has `envelope = true`: sharing code shares no setting.
    assert!(messages[0].contains("rcpt tos: ['x@a.example']"), "{}", messages[0]);
    assert!(!messages[1].contains("rcpt tos:"), "{}", messages[1]);
    server.terminate();
    assert!(server.wait_exit().success());
    let log = server.log();
    let shares = |name: &str| {
        let loaded = log.lines().find(|l| l.contains(&format!("plugin={name} "))).unwrap();
        loaded.contains("shares_code=true")
    };
    assert!(shares("second"), "a copy of the file is the same component:\n{log}");
    assert!(!shares("first") && !shares("third"), "{log}");
}
