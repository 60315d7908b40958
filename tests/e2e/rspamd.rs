//! The shipped rspamd plugin against a real rspamd (Debian's package; tests/run installs
//! it), started on free loopback ports with a configuration of its own: its verdicts
//! applied (reject, add header, no action) and a 451 when it cannot be asked.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::raw::RawClient;
use crate::server::{Server, free_port, temp_dir};

struct Rspamd {
    child: Child,
    port: u16,
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its workers before it exits (a bounded wait).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// rspamd with its normal worker on a free port, no DNS (nothing leaves this machine),
/// and an `add header` threshold low enough for a plain test message.
fn rspamd() -> Rspamd {
    let dir = temp_dir();
    let local = dir.join("local.d");
    std::fs::create_dir_all(&local).unwrap();
    for sub in ["db", "run", "log"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let port = free_port();
    let files = [
        ("worker-normal.inc", format!("bind_socket = \"127.0.0.1:{port}\";\n")),
        (
            "worker-controller.inc",
            format!("bind_socket = \"127.0.0.1:{}\";\n", free_port()),
        ),
        (
            "worker-proxy.inc",
            format!("bind_socket = \"127.0.0.1:{}\";\n", free_port()),
        ),
        ("logging.inc", "type = \"console\";\nlevel = \"error\";\n".to_owned()),
        (
            "options.inc",
            "dns {\n  nameserver = [\"127.0.0.1:1\"];\n  timeout = 0.1s;\n  retransmits = 1;\n}\n".to_owned(),
        ),
        (
            "actions.conf",
            "reject = 15;\nadd_header = 3;\ngreylist = null;\nrewrite_subject = null;\n".to_owned(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(local.join(name), text).unwrap();
    }
    let var = |name: &str, value: &std::path::Path| format!("{name}={}", value.display());
    let mut command = Command::new("rspamd");
    command.args(["-f", "-i", "-c", "/etc/rspamd/rspamd.conf"]);
    // As root, rspamd wants to be told to stay root.
    if Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        command.args(["-u", "root", "-g", "root"]);
    }
    for (name, path) in [
        ("LOCAL_CONFDIR", dir.clone()),
        ("DBDIR", dir.join("db")),
        ("RUNDIR", dir.join("run")),
        ("LOGDIR", dir.join("log")),
    ] {
        command.args(["--var", &var(name, &path)]);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run rspamd (apt install rspamd; tests/run does)");
    let rspamd = Rspamd { child, port };
    // Ready when its worker listens (it compiles its rules first: a bounded wait).
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "rspamd did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rspamd
}

/// The rspamd plugin asking `authority`, then the debug printer.
fn filtering(authority: &str) -> Server {
    let config = format!(
        "[plugin.rspamd]\nhttp = [\"{authority}\"]\ntime_budget_ms = 10000\n\
         [plugin.rspamd.settings]\nrspamd = \"{authority}\"\n"
    );
    Server::with_config(&config, &["rspamd", "debug-printer"])
}

fn send(server: &Server, message: &str) -> String {
    let mut client = RawClient::ehlo(server.addr);
    client.send_message(message)
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn rspamds_verdicts_are_applied_and_a_missing_rspamd_defers() {
    let rspamd = rspamd();
    let mut server = filtering(&format!("127.0.0.1:{}", rspamd.port));
    let rejected = send(
        &server,
        &format!("From: a@example.org\r\nSubject: t\r\n\r\n{GTUBE}\r\n"),
    );
    assert_eq!(rejected, "550 5.7.1 Gtube pattern");
    // No Message-ID, no Date: scored over the test's add_header threshold of 3.
    let tagged = send(&server, "From: a@example.org\r\nSubject: tagged\r\n\r\nhello\r\n");
    assert!(tagged.starts_with("250 "), "{tagged}");
    let printed = server.wait_for_stdout("Subject: tagged");
    assert!(printed.contains("X-Spam: Yes"), "{printed}");
    assert!(printed.contains("X-Spamd-Action: add header"), "{printed}");
    // rspamd gone: the message is deferred, never let through unchecked.
    drop(rspamd);
    let deferred = send(&server, "From: a@example.org\r\nSubject: t\r\n\r\nhello\r\n");
    assert_eq!(deferred, "451 4.7.0 Spam filter unavailable, try again later");
    server.wait_for_log("cannot ask rspamd");
}
