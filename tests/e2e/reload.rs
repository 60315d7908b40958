//! Hot reload with the real binary: a plugin file replaced under load, sessions in flight
//! keeping their version, broken versions refused, a deleted file, config changes, SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::raw::RawClient;
use crate::server::{Server, free_port, plugin_path, temp_dir};

/// Version A answers `250 2.0.0 OK`; version B counts: `250 2.0.0 call N of this instance`.
const A: &str = "sink";
const B: &str = "misbehave";

struct Setup {
    server: Server,
    plugin: PathBuf,
    config: PathBuf,
}

fn install(version: &str, at: &Path) {
    // Written in place, in several writes, as a build or a copy does.
    std::fs::copy(plugin_path(version), at).unwrap();
}

fn config_text(extra: &str) -> String {
    format!("[plugin.p]\nsource = \"p.wasm\"\n[plugin.p.settings]\nmode = \"count\"\n{extra}")
}

fn start(version: &str) -> Setup {
    let dir = temp_dir();
    let plugin = dir.join("p.wasm");
    install(version, &plugin);
    let config = dir.join("wasmtpd.toml");
    std::fs::write(&config, config_text("")).unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap(), "--plugin", "p"]);
    Setup { server, plugin, config }
}

const RELOAD_MESSAGE: &str = "Subject: reload\r\n\r\nbody\r\n";

fn is_a(reply: &str) -> bool {
    reply == "250 2.0.0 OK"
}

fn is_b(reply: &str) -> bool {
    reply.starts_with("250 2.0.0 call ") && reply.ends_with(" of this instance")
}

/// Replaces the plugin and waits until the server says it reloaded.
fn swap(setup: &mut Setup, version: &str) {
    let reloads = setup.server.log_count("reloaded (");
    install(version, &setup.plugin);
    setup.server.wait_for_log_count("reloaded (", reloads + 1);
}

#[test]
fn swapping_under_load_loses_nothing_and_new_sessions_see_the_new_version() {
    let mut setup = start(A);
    let addr = setup.server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let sessions: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sessions) = (Arc::clone(&stop), Arc::clone(&sessions));
            std::thread::spawn(move || {
                // Bounded: at most 2,000 sessions a client.
                for _ in 0..2000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut client = RawClient::ehlo(addr);
                    let replies: Vec<String> = (0..3).map(|_| client.send_message(RELOAD_MESSAGE)).collect();
                    client.expect("QUIT", "221");
                    sessions.lock().unwrap().push(replies);
                }
            })
        })
        .collect();
    for version in [B, A, B, A, B] {
        std::thread::sleep(std::time::Duration::from_millis(300));
        swap(&mut setup, version);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client failed: a reply was missing or wrong");
    }
    let sessions = sessions.lock().unwrap();
    let (mut saw_a, mut saw_b) = (0, 0);
    for replies in sessions.iter() {
        // Each session is served by one version from start to end.
        if replies.iter().all(|r| is_a(r)) {
            saw_a += 1;
        } else if replies.iter().all(|r| is_b(r)) {
            saw_b += 1;
        } else {
            panic!("a session saw {replies:?}");
        }
    }
    assert!(saw_a > 0 && saw_b > 0, "sessions on A: {saw_a}, on B: {saw_b}");
    // The last version installed was B: a new session gets it.
    assert!(is_b(&RawClient::ehlo(addr).send_message(RELOAD_MESSAGE)));
    assert_eq!(setup.server.log_count("reload refused"), 0, "{}", setup.server.log());
}

#[test]
fn a_transaction_in_the_middle_of_data_finishes_with_its_version() {
    let mut setup = start(A);
    let mut in_flight = RawClient::ehlo(setup.server.addr);
    in_flight.start_message();
    in_flight.send(b"Subject: slow\r\n\r\nhalf of the body\r\n");
    swap(&mut setup, B);
    in_flight.send(b"the other half\r\n.\r\n");
    let reply = in_flight.reply();
    assert!(is_a(&reply), "{reply}");
    assert!(is_b(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
}

#[test]
fn broken_versions_are_refused_and_a_fix_is_picked_up() {
    let mut setup = start(A);
    let whole = std::fs::read(plugin_path(B)).unwrap();
    let path = setup.plugin.display().to_string();
    let no_handler = std::fs::read(plugin_path("no-handler")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("not wasm", b"hello, world".to_vec(), "is not a WebAssembly file"),
        ("truncated", whole[..whole.len() / 2].to_vec(), "not a valid component"),
        ("a core module", b"\0asm\x01\0\0\0".to_vec(), "not a valid component"),
        (
            "wrong exports",
            no_handler,
            "does not export wasmtpd:plugin/handler@0.1.0",
        ),
    ];
    for (n, (what, bytes, cause)) in cases.into_iter().enumerate() {
        std::fs::write(&setup.plugin, bytes).unwrap();
        let line = setup.server.wait_for_log_count("reload refused", n + 1);
        assert!(line.contains(&path) && line.contains(cause), "{what}: {line}");
        assert!(line.contains("still serving the previous version"), "{line}");
        assert!(
            is_a(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)),
            "{what}"
        );
    }
    swap(&mut setup, B);
    assert!(is_b(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
}

#[test]
fn a_deleted_plugin_keeps_serving_and_a_recreated_one_is_picked_up() {
    let mut setup = start(A);
    std::fs::remove_file(&setup.plugin).unwrap();
    let line = setup.server.wait_for_log_count("reload refused", 1);
    assert!(line.contains("WARN") && line.contains("cannot read"), "{line}");
    assert!(is_a(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
    swap(&mut setup, B);
    assert!(is_b(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
}

#[test]
fn a_config_change_applies_to_new_sessions_and_a_bad_one_is_refused() {
    let mut setup = start(B);
    let reloads = setup.server.log_count("reloaded (");
    // A setting: mode "" makes version B accept with a plain OK.
    std::fs::write(
        &setup.config,
        config_text("").replace("mode = \"count\"", "mode = \"\""),
    )
    .unwrap();
    setup.server.wait_for_log_count("reloaded (", reloads + 1);
    assert!(is_a(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
    // Not TOML: refused, the running configuration stays.
    std::fs::write(&setup.config, "[plugin.p\nsource = ").unwrap();
    let line = setup.server.wait_for_log_count("reload refused", 1);
    assert!(line.contains("wasmtpd.toml"), "{line}");
    assert!(is_a(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
}

#[test]
fn sighup_reloads_and_names_the_version_serving() {
    let mut setup = start(A);
    setup.server.hangup();
    let line = setup.server.wait_for_log_count("reloaded (SIGHUP)", 1);
    assert!(line.contains("now serving 127.0.0.1:0: p@"), "{line}");
}

#[test]
fn a_listener_added_to_the_config_starts_listening() {
    let dir = temp_dir();
    let config = dir.join("wasmtpd.toml");
    let first = "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n";
    std::fs::write(&config, first).unwrap();
    let mut server = Server::start_raw(&["--config", config.to_str().unwrap()]);
    let port = free_port();
    let second = format!("[[listener]]\naddress = \"127.0.0.1:{port}\"\nplugins = [\"debug-printer\"]\n");
    std::fs::write(&config, format!("{first}{second}")).unwrap();
    server.wait_for_log_count("reloaded (", 1);
    let mut client = RawClient::ehlo(format!("127.0.0.1:{port}").parse().unwrap());
    client.start_message();
    client.expect("Subject: new listener\r\n\r\nhi\r\n.", "250 2.0.0");
    assert!(server.wait_for_messages(1).contains("Subject: new listener"));
    // The first listener still serves too.
    RawClient::ehlo(server.addr).expect("NOOP", "250");
}

#[test]
fn a_version_that_cannot_start_is_refused() {
    let mut setup = start(A);
    // Rust components start with 17 pages of memory: a 1 MiB cap stops them at instantiation.
    std::fs::write(
        &setup.config,
        config_text("").replace("[plugin.p]\n", "[plugin.p]\nmemory_mib = 1\n"),
    )
    .unwrap();
    let line = setup.server.wait_for_log_count("reload refused", 1);
    assert!(line.contains("plugin p (") && line.contains("cannot start"), "{line}");
    assert!(is_a(&RawClient::ehlo(setup.server.addr).send_message(RELOAD_MESSAGE)));
}

#[test]
fn a_plugin_added_to_the_chain_and_a_new_order_apply_to_new_sessions() {
    let dir = temp_dir();
    let config = dir.join("wasmtpd.toml");
    let chain = |plugins: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [{plugins}]\n\
             [plugin.p]\nsource = \"{}\"\n[plugin.p.settings]\nmode = \"count\"\n",
            plugin_path(B)
        )
    };
    std::fs::write(&config, chain("\"p\"")).unwrap();
    let mut server = Server::start_raw(&["--config", config.to_str().unwrap()]);
    assert!(is_b(&RawClient::ehlo(server.addr).send_message(RELOAD_MESSAGE)));
    // debug-printer added in front: it prints, then p answers.
    std::fs::write(&config, chain("\"debug-printer\", \"p\"")).unwrap();
    server.wait_for_log_count("reloaded (", 1);
    assert!(is_b(&RawClient::ehlo(server.addr).send_message(RELOAD_MESSAGE)));
    server.wait_for_messages(1);
    // Reordered: p answers first and ends the chain, so nothing more is printed.
    std::fs::write(&config, chain("\"p\", \"debug-printer\"")).unwrap();
    server.wait_for_log_count("reloaded (", 2);
    assert!(is_b(&RawClient::ehlo(server.addr).send_message(RELOAD_MESSAGE)));
    RawClient::ehlo(server.addr).expect("NOOP", "250");
    assert_eq!(
        server.stdout().matches("MESSAGE FOLLOWS").count(),
        1,
        "{}",
        server.stdout()
    );
}

#[test]
fn a_configmap_swapped_as_kubernetes_does_is_reloaded() {
    // kubelet's layout: the file is a link through `..data`, a link to a dated directory;
    // an update writes a new directory and renames a new `..data` over the old one.
    let dir = temp_dir();
    let write_version = |name: &str, hostname: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        let config =
            format!("hostname = \"{hostname}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n");
        std::fs::write(dir.join(name).join("wasmtpd.toml"), config).unwrap();
    };
    write_version("..2026_12_01_v1", "one.example");
    std::os::unix::fs::symlink("..2026_12_01_v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/wasmtpd.toml", dir.join("wasmtpd.toml")).unwrap();
    let config = dir.join("wasmtpd.toml");
    let mut server = Server::start_raw(&["--config", config.to_str().unwrap()]);
    assert!(RawClient::connect(server.addr).1.starts_with("220 one.example "));

    write_version("..2026_12_01_v2", "two.example");
    std::os::unix::fs::symlink("..2026_12_01_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    server.wait_for_log_count("reloaded (", 1);
    assert!(RawClient::connect(server.addr).1.starts_with("220 two.example "));
}

#[test]
fn a_reload_says_which_changed_settings_wait_for_a_restart() {
    let dir = temp_dir();
    let config = dir.join("wasmtpd.toml");
    let text = |hostname: &str, max: u32| {
        format!(
            "hostname = \"{hostname}\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
             [limits]\nmax_connections = {max}\n"
        )
    };
    std::fs::write(&config, text("one.example", 50)).unwrap();
    let mut server = Server::start_raw(&["--config", config.to_str().unwrap()]);
    std::fs::write(&config, text("two.example", 60)).unwrap();
    server.wait_for_log_count("reloaded (", 1);
    // The hostname applies now; the number of sessions waits for a restart, and says so.
    assert!(RawClient::connect(server.addr).1.starts_with("220 two.example "));
    server.wait_for_log("limits.max_connections changed, but it is read at start only: restart to apply");
}
