//! AUTH with real clients: swaks (PLAIN, LOGIN) and smtplib's login() over STARTTLS; no
//! AUTH in the clear; failed attempts delayed, then the session closed; an authenticated
//! client may relay through the proxy, an anonymous one may not.

use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, Params};

use crate::clients::{python3, run_swaks, swaks, swaks_refused};
use crate::raw::RawClient;
use crate::server::{Server, temp_dir};

/// An Argon2id hash with small parameters (quick in a test build).
fn hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).unwrap();
    let salt = SaltString::from_b64("ZTJlc2FsdGUyZXNhbHQ").unwrap();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn write_certificate(dir: &Path) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
}

/// swaks's options to log in as alice over STARTTLS.
const AS_ALICE: [&str; 7] = [
    "--tls",
    "--auth",
    "PLAIN",
    "--auth-user",
    "alice",
    "--auth-password",
    "s3cret",
];

/// A STARTTLS listener with AUTH for alice (password `s3cret`), running `plugins`.
fn submission(required: bool, plugins: &str, extra: &str) -> Server {
    let dir = temp_dir();
    write_certificate(&dir);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [{plugins}]\n\
         [listener.tls]\ncert = {cert:?}\nkey = {key:?}\n\
         [listener.auth]\nrequired = {required}\nusers = {{ alice = \"{}\" }}\n{extra}",
        hash("s3cret")
    );
    let mut server = Server::from_config(&config);
    server.addr = server.addresses(1)[0];
    server
}

#[test]
fn swaks_authenticates_with_plain_and_login_over_starttls() {
    let mut server = submission(
        true,
        "\"debug-printer\"",
        "[plugin.debug-printer.settings]\nenvelope = true\n",
    );
    for mechanism in ["PLAIN", "LOGIN"] {
        let mut login = AS_ALICE;
        login[2] = mechanism;
        let dialogue = swaks(&server, &login);
        assert!(dialogue.contains("<~  235 2.7.0"), "{dialogue}");
        assert!(dialogue.contains("<~  250 2.0.0 OK"), "{dialogue}");
    }
    // Pipelined over TLS after AUTH: MAIL, RCPTs and DATA in one write.
    let pipelined = swaks(&server, &[&AS_ALICE[..], &["--pipeline"]].concat());
    assert!(pipelined.contains("<~  250-PIPELINING"), "{pipelined}");
    assert!(pipelined.contains("<~  250 2.0.0 OK"), "{pipelined}");
    let printed = server.wait_for_messages(3);
    assert_eq!(printed.matches("\nauthenticated: 'alice'\n").count(), 3, "{printed}");
    server.wait_for_log("authenticated");
}

#[test]
fn smtplib_logs_in_over_starttls() {
    let mut server = submission(false, "\"debug-printer\"", "");
    let script = r#"
import smtplib, sys
client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
client.ehlo("client.test")
assert not client.has_extn("auth"), client.esmtp_features
client.starttls()
client.ehlo("client.test")
print("auth:", client.esmtp_features.get("auth"))
client.login("alice", "s3cret")
client.sendmail("alice@example.org", ["bob@example.com"], "Subject: logged in\r\n\r\nhi\r\n")
client.quit()
print("sent")
"#;
    let stdout = python3(&["-c", script, &server.port().to_string()]);
    assert!(stdout.contains("auth:  PLAIN LOGIN"), "{stdout}");
    assert!(stdout.contains("sent"), "{stdout}");
    server.wait_for_messages(1);
}

#[test]
fn wrong_passwords_are_answered_slowly_and_the_third_ends_the_session() {
    let mut server = submission(false, "\"sink\"", "");
    let mut wrong = AS_ALICE;
    wrong[6] = "wrong";
    let text = swaks_refused(&server, &wrong);
    assert!(text.contains("<~* 535 5.7.8"), "{text}");

    // Three wrong tries in one session: each waits a second, the third closes.
    let script = r#"
import smtplib, sys, time
client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
client.starttls()
client.ehlo("client.test")
client.user, client.password = "alice", "wrong"
started = time.monotonic()
for attempt in range(3):
    try:
        # One PLAIN attempt each (login() would go on to try LOGIN too).
        client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        print("refused", e.smtp_code, round(time.monotonic() - started, 1))
try:
    client.noop()
    print("still open")
except smtplib.SMTPServerDisconnected:
    print("closed")
"#;
    let stdout = python3(&["-c", script, &server.port().to_string()]);
    let refusals: Vec<(&str, f64)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("refused "))
        .map(|l| l.split_once(' ').unwrap())
        .map(|(code, at)| (code, at.parse().unwrap()))
        .collect();
    assert_eq!(
        refusals.iter().map(|r| r.0).collect::<Vec<_>>(),
        ["535", "535", "421"],
        "{stdout}"
    );
    assert!(refusals[0].1 >= 0.9 && refusals[2].1 >= 2.8, "not delayed: {stdout}");
    assert!(stdout.contains("closed"), "{stdout}");

    // In the clear, AUTH is refused at once, before any password is looked at.
    let started = Instant::now();
    let mut raw = RawClient::ehlo(server.addr);
    let refused = raw.expect("AUTH PLAIN AGFsaWNlAHdyb25n", "538 5.7.11");
    assert!(refused.contains("Encryption required"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refusal in the clear is not delayed"
    );
    server.wait_for_log_count("authentication failed", 4);
}

#[test]
fn an_authenticated_client_may_relay_an_anonymous_one_may_not() {
    let mut upstream = Server::with_config("[plugin.debug-printer.settings]\nenvelope = true\n", &["debug-printer"]);
    let up = upstream.addr.to_string();
    let proxy = format!("[plugin.proxy]\nrelay = [\"{up}\"]\n[plugin.proxy.settings]\nupstream = \"{up}\"\n");
    let server = submission(false, "\"proxy\"", &proxy);
    let anonymous = run_swaks(
        server.port(),
        &["--tls", "--from", "a@example.org", "--to", "someone@elsewhere.example"],
    );
    assert!(!anonymous.delivered);
    assert!(anonymous.dialogue.contains("<~* 550 5.7.1"), "{}", anonymous.dialogue);

    let dialogue = swaks(&server, &AS_ALICE);
    assert!(dialogue.contains("<~  250 2.0.0"), "{dialogue}");
    let printed = upstream.wait_for_messages(1);
    assert!(
        printed.contains("rcpt tos: ['rcpt1@example.com', 'rcpt2@example.com']"),
        "{printed}"
    );
}

#[test]
fn a_plugin_user_store_answers_first_and_the_table_covers_the_rest() {
    let store = format!(
        "[plugin.user-store]\nsource = \"{}\"\n[plugin.user-store.settings]\nusers = [\"carol:c4rol\"]\n",
        crate::server::plugin_path("user-store")
    );
    let server = submission(true, "\"user-store\"", &store);
    // Each attempt in a session of its own, PLAIN once: prints the code AUTH got.
    let script = r#"
import smtplib, sys
for pair in sys.argv[2:]:
    client = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
    client.starttls()
    client.ehlo("client.test")
    client.user, client.password = pair.split(":")
    try:
        code, _ = client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as e:
        code = e.smtp_code
    print(pair, code)
    client.close()
"#;
    let port = server.port().to_string();
    let mut args = vec!["-c", script, &port];
    args.extend([
        "carol:c4rol",
        "carol:wrong",
        "alice:s3cret",
        "alice:wrong",
        "unavailable:x",
        "dave:x",
    ]);
    let stdout = python3(&args);
    let codes: Vec<&str> = stdout.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    // The plugin knows carol; alice is in the table; a store that is down defers; dave is
    // known to no one.
    assert_eq!(codes, ["235", "535", "235", "535", "454", "535"], "{stdout}");
    let log = server.log();
    assert!(
        !log.contains("c4rol") && !log.contains("s3cret"),
        "a password in the log:\n{log}"
    );
}

#[test]
fn a_plugins_2xx_at_auth_accepts_with_the_hosts_235() {
    // The every-hook plugin (built from this tree's WIT, and from contract 0.1.0) accepts
    // anyone at AUTH with a 250: the client gets AUTH's own success reply (RFC 4954 knows
    // only 235), and is logged in.
    for source in crate::contract::builds() {
        let hooks =
            format!("[plugin.hooks]\nsource = {source:?}\n[plugin.hooks.settings]\nauth = \"250 2.0.0 plugin auth\"\n");
        let mut server = submission(true, "\"hooks\", \"sink\"", &hooks);
        let mut as_dave = AS_ALICE;
        (as_dave[4], as_dave[6]) = ("dave", "not-in-the-table");
        let dialogue = swaks(&server, &as_dave);
        assert!(
            dialogue.contains("<~  235 2.7.0 Authentication successful"),
            "{dialogue}"
        );
        assert!(!dialogue.contains("plugin auth"), "{dialogue}");
        assert!(dialogue.contains("<~  250 2.0.0 OK"), "{dialogue}");
        server.wait_for_log("called: auth dave");
    }
}
