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

/// HAProxy's view of the node: the `status`, `check_status` and `chkfail` columns of its
/// row in `show stat` (e.g. UP, L7OK, 0).
fn node_status(socket: &Path) -> Option<(String, String, String)> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.write_all(b"show stat\n").ok()?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).ok()?;
    let header: Vec<&str> = csv.lines().next()?.trim_start_matches("# ").split(',').collect();
    let row: Vec<&str> = csv.lines().find(|l| l.starts_with("nodes,n1,"))?.split(',').collect();
    let column = |name: &str| Some(row.get(header.iter().position(|h| *h == name)?)?.to_string());
    Some((column("status")?, column("check_status")?, column("chkfail")?))
}

/// Waits until HAProxy's row for the node passes `want`; the row then.
fn wait_for(socket: &Path, what: &str, want: impl Fn(&(String, String, String)) -> bool) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = node_status(socket);
        if let Some(row) = last.as_ref().filter(|row| want(row)) {
            return row.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("HAProxy never saw the node {what}: last {last:?}");
}

#[test]
fn through_haproxy_with_proxy_v2_mail_arrives_and_the_smtp_check_follows_the_node() {
    // HAProxy connects from 127.0.0.2, the only source trusted: a client seen as
    // 127.0.0.1 was named by the header.
    let mut node = Server::from_config(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"debug-printer\"]\n\
         [listener.proxy_protocol]\ntrusted = [\"127.0.0.2\"]\n",
    );
    let dir = temp_dir();
    let socket = dir.join("haproxy.sock");
    let front = free_port();
    let config = format!(
        "global\n  stats socket {} level admin\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
         frontend smtp\n  bind 127.0.0.1:{front}\n  default_backend nodes\n\
         backend nodes\n  option smtpchk EHLO haproxy.test\n\
           server n1 {} source 127.0.0.2 send-proxy-v2 check check-send-proxy inter 200ms fall 2 rise 1\n",
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

    // The check speaks SMTP through the PROXY listener and passes (HAProxy starts a
    // server UP before any check: L7OK is the check's own verdict).
    let (_, checked, failed) = wait_for(&socket, "pass its SMTP check", |(status, check, _)| {
        status == "UP" && check == "L7OK"
    });
    assert_eq!((checked.as_str(), failed.as_str()), ("L7OK", "0"));

    // Mail through the balancer, its client's address given by the header.
    let mut client = RawClient::ehlo(format!("127.0.0.1:{front}").parse().unwrap());
    let reply = client.send_message("Subject: via haproxy\r\n\r\nbalanced\r\n");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let printed = node.wait_for_messages(1);
    assert!(printed.contains("Subject: via haproxy"), "{printed}");
    assert!(printed.contains("X-Peer: 127.0.0.1"), "{printed}");
    // Some checks later, none has failed.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(node_status(&socket).map(|row| row.2), Some("0".into()));

    // The node stops: the check sees it down, and the balancer sends it no more.
    node.terminate();
    assert!(node.wait_exit().success());
    wait_for(&socket, "down", |(status, _, _)| status.starts_with("DOWN"));
}
