//! For tests only: a plugin that misbehaves as its `mode` setting says, at the stage its
//! `stage` setting says (`data`, the default, or `rcpt`), to prove the sandbox: whatever a
//! plugin does, the client gets a `451` and the server keeps serving.
//!
//! Modes: `trap` (panics: a wasm trap), `loop` (never returns: the time budget),
//! `compute` (turns a loop `steps` times, 15 million by default, then accepts: a busy tenant),
//! `alloc` (asks for 1 GiB: the memory cap), `malformed` (answers a reply with no code),
//! `grow` (keeps `grow_kib` KiB more, 4 MiB by default, at each of its first `grow_calls`
//! calls, all by default, and answers as `count` does: a leak), `crlf` (answers a reply
//! with a CRLF inside), `escape` (answers a reply with terminal escapes inside), `print`
//! (prints to stdout and stderr, then accepts), `count` (accepts, and answers
//! `250 2.0.0 call N of this instance`),
//! `read-file` (reads the file its `path` setting names, `/etc/passwd` by default, and says
//! how it went in its reply), `connect` (opens a TCP connection to its `target` setting and
//! says how it went), `env` (answers with the environment it sees), `relay-inject` (asks
//! the host to relay to its `target` with SMTP commands smuggled into the sender, and says
//! what the host answered), `edit` (adds a header field through message-edit, which only
//! `process-message` may), `dns` (looks up its `query` setting, `TYPE NAME`, and answers
//! what it got), `kv` (runs the key-value operations of its `ops` setting, see
//! [`kv_ops`], and answers their results), `http` (sends `method` (GET by default) to its
//! `authority` and `path` settings, with `body` if set, and answers the status and body
//! or the error).
//!
//! With the setting `stateless = true` it declares that it keeps no session state (the
//! WIT's `stateless`), which `count` then shows is not so.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package wasmtpd:misbehave;
        world misbehave {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
            export wasmtpd:plugin/stateless@0.1.0;
        }
    ",
    world: "wasmtpd:misbehave/misbehave",
    // The wasmtpd:plugin interfaces come from ../wit, not from the inline world.
    generate_all,
});

mod kv_ops;

use std::sync::atomic::{AtomicU32, Ordering};

use exports::wasmtpd::plugin::handler::Guest as Handler;
use exports::wasmtpd::plugin::rcpt_hook::Guest as RcptHook;
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::types::Peer;

struct Misbehave;

/// Calls `count` answered in this instance: per session, unless the plugin says it is
/// stateless.
static CALLS: AtomicU32 = AtomicU32::new(0);

/// What `grow` keeps.
static LEAKED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn misbehave(stage: &str) -> Option<String> {
    if host::get_setting("stage").as_deref().unwrap_or("data") != stage {
        return None;
    }
    let mode = host::get_setting("mode").unwrap_or_default();
    host::log(Level::Info, &format!("misbehaving: {mode} at {stage}"));
    match mode.as_str() {
        "trap" => panic!("asked to trap"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "compute" => {
            // Legitimate work, not a fault: `steps` turns of a loop (15 million by
            // default, about 15 ms here), then accepts. A fixed amount of work, not a
            // wall-clock wait: a call the host pauses takes longer.
            let steps: u64 = host::get_setting("steps")
                .and_then(|v| v.parse().ok())
                .unwrap_or(15_000_000);
            let mut n: u64 = 0;
            for _ in 0..steps {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            None
        }
        "alloc" => {
            let big = vec![1u8; 1 << 30];
            Some(format!("250 allocated {}", std::hint::black_box(big).len()))
        }
        "malformed" => Some("hello".into()),
        "crlf" => Some("250 OK\r\nRCPT TO:<smuggled@example.com>".into()),
        "escape" => Some("550 5.7.1 \x1b[2J\x1b[31mthe operator's screen, cleared".into()),
        "print" => {
            println!("to stdout from the plugin");
            eprintln!("to stderr from the plugin");
            None
        }
        // Reaching outside the sandbox: what it found, or the error, is the reply.
        "read-file" => {
            let path = host::get_setting("path").unwrap_or_else(|| "/etc/passwd".to_owned());
            Some(match std::fs::read(&path) {
                Ok(bytes) => format!("250 2.0.0 read {} octets of {path}", bytes.len()),
                Err(e) => format!("554 5.7.0 cannot read {path}: {e}"),
            })
        }
        "connect" => {
            let target = host::get_setting("target").unwrap_or_else(|| "127.0.0.1:25".to_owned());
            Some(match std::net::TcpStream::connect(&target) {
                Ok(_) => format!("250 2.0.0 connected to {target}"),
                Err(e) => format!("554 5.7.0 cannot connect to {target}: {e}"),
            })
        }
        "env" => Some(format!("250 2.0.0 env: {:?}", std::env::vars().collect::<Vec<_>>())),
        "kv" => {
            let bucket = host::get_setting("bucket").unwrap_or_else(|| "b".to_owned());
            let ops = host::get_setting("ops").unwrap_or_default();
            Some(format!("250 2.0.0 kv: {}", kv_ops::run(&bucket, &ops)))
        }
        "http" => {
            let get = |name: &str| host::get_setting(name).unwrap_or_default();
            let method = host::get_setting("method").unwrap_or_else(|| "GET".to_owned());
            let body = host::get_setting("body");
            let sent = http_call::request(
                &method,
                &get("authority"),
                &get("path"),
                &[],
                body.as_deref().map(str::as_bytes),
            );
            Some(match sent {
                Ok(response) => format!(
                    "250 2.0.0 http: {} {:?}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                ),
                Err(e) => format!("554 5.7.0 http error: {e}"),
            })
        }
        "dns" => {
            use wasmtpd::plugin::dns::{self, RecordType};
            let query = host::get_setting("query").unwrap_or_default();
            let (kind, name) = query.split_once(' ').unwrap_or(("a", &query));
            let kind = match kind {
                "aaaa" => RecordType::Aaaa,
                "mx" => RecordType::Mx,
                "txt" => RecordType::Txt,
                "ptr" => RecordType::Ptr,
                _ => RecordType::A,
            };
            Some(match dns::lookup(name, kind) {
                Ok(answers) => format!("250 2.0.0 dns: {answers:?}"),
                Err(e) => format!("554 5.7.0 dns error: {e:?}"),
            })
        }
        "edit" => {
            wasmtpd::plugin::message_edit::add_header("X-Edited", "yes");
            None
        }
        "relay-inject" => {
            let target = host::get_setting("target").unwrap_or_else(|| "127.0.0.1:25".to_owned());
            let sender = "a@example.org>\r\nRCPT TO:<injected@example.net>\r\nDATA\r\nSubject: x\r\n.\r\nMAIL FROM:<a@example.org";
            let rcpts = ["b@example.com".to_owned()];
            Some(
                match host::relay(&target, sender, &rcpts, b"Subject: t\r\n\r\nbody\r\n") {
                    Ok(reply) => format!("250 2.0.0 relayed: {reply}"),
                    Err(e) => format!("554 5.7.0 relay refused: {e:?}"),
                },
            )
        }
        "count" => {
            let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            Some(format!("250 2.0.0 call {n} of this instance"))
        }
        "grow" => {
            // Keeps `grow_kib` (4 MiB by default) more at each of its first `grow_calls`
            // calls (all of them by default): a leak, or a heap that settles.
            let kib: usize = host::get_setting("grow_kib")
                .and_then(|v| v.parse().ok())
                .unwrap_or(4096);
            let calls: u32 = host::get_setting("grow_calls")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u32::MAX);
            let n = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= calls {
                LEAKED.lock().unwrap().push(vec![1u8; kib << 10]);
            }
            Some(format!("250 2.0.0 call {n} of this instance"))
        }
        _ => None,
    }
}

impl RcptHook for Misbehave {
    fn on_rcpt(_rcpt_to: String, _options: Vec<String>) -> Option<String> {
        misbehave("rcpt")
    }
}

impl Handler for Misbehave {
    fn process_message(
        _peer: Peer,
        _mail_from: String,
        _rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        misbehave("data")
    }
}

impl exports::wasmtpd::plugin::stateless::Guest for Misbehave {
    fn keeps_no_session_state() -> bool {
        host::get_setting("stateless").is_some_and(|v| v == "true")
    }
}

export!(Misbehave);
