//! TLS with real clients: STARTTLS and implicit TLS with smtplib and swaks, a renewed
//! certificate served without a restart, and a certificate that cannot be read.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::clients::{python3, swaks};
use crate::server::{Server, WAIT, binary, temp_dir, temp_file};

/// Writes a fresh self-signed certificate for `localhost` and its key; returns the
/// certificate's DER in hex, as `tls_send.py` prints it.
fn write_certificate(dir: &Path) -> String {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    // Key first: a reload that sees only the new certificate would find a mismatch and
    // keep the old pair (and the certificate's change triggers another reload).
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
    hex(generated.cert.der())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A STARTTLS listener and an implicit-TLS one, both with the certificate in `dir`.
fn tls_config(dir: &Path) -> String {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let table = |implicit: bool| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[listener.tls]\ncert = {cert:?}\nkey = {key:?}\nimplicit = {implicit}\n"
        )
    };
    let printer = "[plugin.debug-printer.settings]\nenvelope = true\n";
    format!("{}{}{printer}", table(false), table(true))
}

/// smtplib over TLS: `(EHLO keywords before TLS, after, the certificate's DER in hex)`.
fn smtplib(port: u16, mode: &str) -> (String, String, String) {
    let script = crate::server::repo_path("tests/clients/tls_send.py");
    let stdout = python3(&[script.to_str().unwrap(), &port.to_string(), mode]);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert!(stdout.contains("\nsent"), "{stdout}");
    // The server ends TLS with its close_notify, so the client can tell the end from a cut.
    assert_eq!(field("quit:"), "221", "{stdout}");
    assert_eq!(field("tls end:"), "close_notify", "{stdout}");
    (field("before:"), field("after:"), field("cert:"))
}

#[test]
fn smtplib_delivers_over_starttls_and_implicit_tls() {
    let dir = temp_dir();
    let cert = write_certificate(&dir);
    let mut server = Server::from_config(&tls_config(&dir));
    let addresses = server.addresses(2);

    let (before, after, served) = smtplib(addresses[0].port(), "starttls");
    assert!(before.split(' ').any(|k| k == "starttls"), "before TLS: {before}");
    assert!(!after.contains("starttls"), "offered again over TLS: {after}");
    assert!(after.split(' ').any(|k| k == "pipelining"), "after TLS: {after}");
    assert_eq!(served, cert);

    let (_, after, served) = smtplib(addresses[1].port(), "implicit");
    assert!(!after.contains("starttls"), "offered over implicit TLS: {after}");
    assert_eq!(served, cert);

    let printed = server.wait_for_messages(2);
    assert!(printed.contains("Subject: over TLS (starttls)"), "{printed}");
    assert!(printed.contains("Subject: over TLS (implicit)"), "{printed}");
    // The plugin was told, through the host's `session` import, how each was protected.
    assert_eq!(printed.matches("\ntls: TLSv1_3 TLS13_").count(), 2, "{printed}");
}

#[test]
fn swaks_delivers_with_tls_and_tls_on_connect() {
    let dir = temp_dir();
    write_certificate(&dir);
    let mut server = Server::from_config(&tls_config(&dir));
    let addresses = server.addresses(2);
    server.addr = addresses[0];
    let starttls = swaks(&server, &["--tls"]);
    assert!(
        starttls.contains("<-  250-STARTTLS") || starttls.contains("<-  250 STARTTLS"),
        "{starttls}"
    );
    assert!(starttls.contains("=== TLS started"), "{starttls}");
    assert!(starttls.contains("<~  250 2.0.0 OK"), "{starttls}");
    server.addr = addresses[1];
    let implicit = swaks(&server, &["--tls-on-connect"]);
    assert!(implicit.contains("=== TLS started"), "{implicit}");
    assert!(implicit.contains("<~  250 2.0.0 OK"), "{implicit}");
    server.wait_for_messages(2);
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = temp_dir();
    let old = write_certificate(&dir);
    let mut server = Server::from_config(&tls_config(&dir));
    let port = server.addresses(2)[0].port();
    assert_eq!(smtplib(port, "starttls").2, old);

    let new = write_certificate(&dir);
    server.wait_for_log("reloaded");
    // The two files may be seen in two reloads; the new pair is served after the last.
    let deadline = Instant::now() + WAIT;
    loop {
        let served = smtplib(port, "starttls").2;
        if served == new {
            break;
        }
        assert_eq!(served, old, "served neither certificate");
        assert!(Instant::now() < deadline, "still the old certificate after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_start_with_its_name() {
    let dir = temp_dir();
    let config = temp_file("wasmtpd.toml", &tls_config(&dir));
    let out = Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .output()
        .expect("run wasmtpd");
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("cannot read the TLS certificate"), "{log}");
    assert!(log.contains(&dir.join("cert.pem").display().to_string()), "{log}");
}

/// The STARTTLS command injection over a real socket: commands sent in the clear in the
/// same packet as STARTTLS must not be run once TLS is up (CVE-2011-0411's class).
#[test]
fn commands_injected_behind_starttls_are_dropped() {
    let dir = temp_dir();
    write_certificate(&dir);
    let mut server = Server::from_config(&tls_config(&dir));
    let port = server.addresses(2)[0].port();
    let script = r#"
import socket, ssl, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
reader = sock.makefile("rb")
def reply(f):
    lines = []
    while True:
        line = f.readline().decode()
        lines.append(line.strip())
        if line[3:4] != "-":
            return lines
reply(reader)
sock.sendall(b"EHLO client.test\r\n")
reply(reader)
sock.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.com>\r\n")
print("starttls:", reply(reader)[-1])
tls = ssl._create_unverified_context().wrap_socket(sock)
reader = tls.makefile("rb")
tls.sendall(b"MAIL FROM:<a@example.org>\r\n")
print("mail:", reply(reader)[-1])
tls.sendall(b"EHLO client.test\r\n")
print("ehlo:", reply(reader)[0])
tls.sendall(b"MAIL FROM:<a@example.org>\r\n")
print("mail:", reply(reader)[-1])
"#;
    let stdout = python3(&["-c", script, &port.to_string()]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("starttls: 220 2.0.0"), "{stdout}");
    // Over TLS nothing of before is known: no greeting, so no transaction either (had the
    // injected MAIL run, this would be a nested MAIL, and the greeting would stand).
    assert!(
        lines[1].starts_with("mail: 503 Error: send HELO/EHLO first"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("ehlo: 250-"), "{stdout}");
    assert!(lines[3].starts_with("mail: 250 2.1.0"), "{stdout}");
    server.wait_for_log("dropped input sent behind STARTTLS");
}
