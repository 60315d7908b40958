//! Behind a real HAProxy (Debian's; tests/run installs it) with the PROXY protocol v2, as a
//! site with several nodes runs wasmtpd: mail through the balancer reaches the node with
//! the client's address, and HAProxy's SMTP check (`option smtpchk`, which sends its own
//! PROXY header, a v2 LOCAL) sees the node up, then down once it stops.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::raw::RawClient;
use crate::server::{Reaped, Server, free_port, temp_dir};

/// HAProxy's view of the node: its `status` column in `show stat` (UP, DOWN, ...).
fn node_status(socket: &Path) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.write_all(b"show stat\n").ok()?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).ok()?;
    let header: Vec<&str> = csv.lines().next()?.trim_start_matches("# ").split(',').collect();
    let column = header.iter().position(|h| *h == "status")?;
    let row = csv.lines().find(|l| l.starts_with("nodes,n1,"))?;
    row.split(',').nth(column).map(str::to_owned)
}

fn wait_for_status(socket: &Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = node_status(socket);
        if last.as_deref().is_some_and(|s| s.starts_with(want)) {
            return last.unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("HAProxy never saw the node {want}: last {last:?}");
}

#[test]
fn through_haproxy_with_proxy_v2_mail_arrives_and_the_smtp_check_follows_the_node() {
    let mut node = Server::from_config(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"debug-printer\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n",
    );
    let dir = temp_dir();
    let socket = dir.join("haproxy.sock");
    let front = free_port();
    let config = format!(
        "global\n  stats socket {} level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend smtp\n  bind 127.0.0.1:{front}\n  default_backend nodes\n\
         backend nodes\n  option smtpchk EHLO haproxy.test\n\
           server n1 {} send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 1\n",
        socket.display(),
        node.addr
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    // Debian puts it in /usr/sbin, which a user's PATH may not have.
    let binary = if Path::new("/usr/sbin/haproxy").exists() {
        "/usr/sbin/haproxy"
    } else {
        "haproxy"
    };
    let haproxy = Command::new(binary)
        .args(["-db", "-f", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run haproxy (apt install haproxy; tests/run does)");
    let _haproxy = Reaped(haproxy);

    // The check speaks SMTP through the PROXY listener: the node is up.
    wait_for_status(&socket, "UP");

    // Mail through the balancer, its client's address given by the header (loopback
    // here too; tests/e2e/proxy_protocol.rs shows other addresses coming through).
    let mut client = RawClient::ehlo(format!("127.0.0.1:{front}").parse().unwrap());
    let reply = client.send_message("Subject: via haproxy\r\n\r\nbalanced\r\n");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let printed = node.wait_for_messages(1);
    assert!(printed.contains("Subject: via haproxy"), "{printed}");
    assert!(printed.contains("X-Peer: 127.0.0.1"), "{printed}");
    // HAProxy's checks are not sessions that fail: no PROXY error in the node's log.
    assert!(!node.log().contains("PROXY"), "{}", node.log());

    // The node stops: the check sees it down, and the balancer sends it no more.
    node.terminate();
    assert!(node.wait_exit().success());
    wait_for_status(&socket, "DOWN");
}
