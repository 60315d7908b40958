//! Plugins written in Python (componentize-py) and JavaScript (componentize-js), built
//! from examples/ by examples/build-plugins (tests/run runs it), in one chain under the
//! real binary, driven by swaks.

use std::path::PathBuf;
use std::time::Duration;

use std::process::Command;

use crate::clients::run_swaks;
use crate::server::{Server, binary, plugin_path, repo_path, temp_dir, temp_file};

/// A cold compile of each takes about 20 s in a test build here; more on a busy machine.
const COMPILE_WAIT: Duration = Duration::from_secs(300);

fn example_plugin(name: &str) -> PathBuf {
    let path = repo_path(&format!("target/plugins/examples/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run examples/build-plugins first (tests/run does)",
        path.display()
    );
    path
}

fn swaks(port: u16, subject: &str) -> String {
    let subject = format!("Subject: {subject}");
    let to = "one@example.com,two@example.com";
    run_swaks(
        port,
        &["--from", "sender@example.org", "--to", to, "--header", &subject],
    )
    .dialogue
}

#[test]
fn python_and_javascript_plugins_answer_through_their_hooks() {
    let (python, javascript) = (example_plugin("subject_filter"), example_plugin("recipient_logger"));
    // Shared by every run: only the first compiles them.
    let cache = repo_path("target/plugins/examples/cache");
    let config = format!(
        "cache_dir = {cache:?}\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\n\
         plugins = [\"recipient-logger\", \"subject-filter\", \"debug-printer\"]\n\
         [plugin.recipient-logger]\nsource = {javascript:?}\nmemory_mib = 128\n\
         [plugin.subject-filter]\nsource = {python:?}\nmemory_mib = 128\n\
         [plugin.subject-filter.settings]\nsubject_pattern = \"lottery|viagra\"\ntag_pattern = \"cheap\"\n"
    );
    let path = temp_file("wasmtpd.toml", &config);
    let mut server = Server::start_raw_within(&["--config", path.to_str().unwrap()], COMPILE_WAIT);

    // Python refuses by its setting; JavaScript saw every recipient first.
    let refused = swaks(server.port(), "You won the LOTTERY");
    assert!(refused.contains("<** 550 5.7.1 Message refused"), "{refused}");
    let accepted = swaks(server.port(), "Minutes of the meeting");
    assert!(accepted.contains("<-  250 2.0.0 OK"), "{accepted}");
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("Subject: Minutes of the meeting"), "{printed}");
    assert!(!printed.contains("LOTTERY"), "{printed}");
    // Python edits: the message debug-printer is handed next is tagged.
    let tagged = swaks(server.port(), "Cheap watches");
    assert!(tagged.contains("<-  250 2.0.0 OK"), "{tagged}");
    let printed = server.wait_for_messages(2);
    assert!(printed.contains("Subject: [SPAM] Cheap watches\n"), "{printed}");
    assert!(printed.contains("X-Spam-Flag: YES\n"), "{printed}");

    // Their hooks: Python's mail-hook logged each sender, JavaScript's rcpt-hook each
    // recipient, all through the host's `log`.
    server.wait_for_log_count("sender sender@example.org", 3);
    server.wait_for_log_count("recipient two@example.com", 3);
    server.wait_for_log("refused 'sender@example.org': subject 'You won the LOTTERY' matches");
    server.wait_for_log("message from 127.0.0.1 for 2 recipient(s)");
}

/// Files under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 })
            .sum()
    })
}

#[test]
fn a_big_component_is_compiled_outside_the_server_which_stays_small() {
    let javascript = example_plugin("recipient_logger");
    // A cache of its own: the compile must happen now.
    let cache = temp_dir();
    let config = format!(
        "cache_dir = {cache:?}\nmetrics = \"127.0.0.1:0\"\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"js\"]\n\
         [plugin.js]\nsource = {javascript:?}\nmemory_mib = 128\n"
    );
    let path = temp_file("wasmtpd.toml", &config);
    let mut command = Command::new(binary());
    command.args(["--config", path.to_str().unwrap()]);
    let mut server = Server::spawn(command, COMPILE_WAIT);
    // While it compiles (seconds), a balancer or orchestrator is told it is not ready.
    let metrics = crate::metrics::endpoint(&mut server);
    let (status, body) = crate::metrics::get(&metrics, "/readyz");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "starting\n")
    );
    assert_eq!(crate::metrics::get(&metrics, "/healthz").0, "HTTP/1.1 200 OK");
    server.wait_until_listening();
    assert_eq!(
        crate::metrics::get(&metrics, "/readyz"),
        ("HTTP/1.1 200 OK".into(), "ready\n".into())
    );
    // Compiled in the server, this component left it at 366 MiB (peak 395); from the
    // cache, a test build sits at about 75 (peak 120).
    let (resident, peak) = (server.memory_mib("VmRSS"), server.memory_mib("VmHWM"));
    assert!(resident < 150, "{resident} MiB resident after loading");
    assert!(peak < 250, "{peak} MiB at the most while loading");
    assert!(files_under(&cache) > 0, "nothing compiled into {}", cache.display());
    let accepted = swaks(server.port(), "compiled elsewhere");
    assert!(accepted.contains("<-  250 2.0.0 OK"), "{accepted}");
}

#[test]
fn compile_fills_the_cache_ahead_and_refuses_what_it_cannot_compile() {
    let cache = temp_dir();
    let compile = |args: &[&str]| {
        Command::new(binary())
            .args(args)
            .output()
            .expect("run wasmtpd --compile")
    };
    let sink = plugin_path("sink");
    let done = compile(&["--compile", &sink, "--cache-dir", cache.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    assert!(log.contains("compiled ") && log.contains("sink.wasm into "), "{log}");
    assert!(files_under(&cache) > 0, "nothing in {}", cache.display());

    // The subcommand is the same step.
    let again = temp_dir();
    let done = compile(&["compile", &sink, "--cache-dir", again.to_str().unwrap()]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(files_under(&again) > 0, "nothing in {}", again.display());

    let readme = repo_path("README.md");
    let refused = compile(&[
        "--compile",
        readme.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(log.contains("README.md is not a WebAssembly file"), "{log}");

    let no_cache = temp_file("no-cache.toml", "cache_dir = \"\"\n");
    let refused = compile(&["--config", no_cache.to_str().unwrap(), "--compile", &sink]);
    let log = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(log.contains("compiling ahead needs a cache to compile into"), "{log}");
}

#[test]
fn a_relative_cache_dir_starts_at_the_working_directory_or_the_configuration_file() {
    let work = temp_dir();
    let sink = plugin_path("sink");
    let done = Command::new(binary())
        .args(["--compile", &sink, "--cache-dir", "on-the-command-line"])
        .current_dir(&work)
        .output()
        .expect("run wasmtpd --compile");
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    assert!(files_under(&work.join("on-the-command-line")) > 0, "{log}");

    let config = work.join("wasmtpd.toml");
    std::fs::write(&config, "cache_dir = \"in-the-file\"\n").unwrap();
    let done = Command::new(binary())
        .args(["--config", config.to_str().unwrap(), "--compile", &sink])
        .current_dir(temp_dir())
        .output()
        .expect("run wasmtpd --compile");
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    assert!(files_under(&work.join("in-the-file")) > 0, "{log}");
}
