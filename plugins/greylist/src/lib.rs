//! Greylisting on the key-value store: the first attempt of an unseen (client network,
//! sender, recipient) gets `451 4.7.1`; a retry after `delay_secs` passes, and the
//! triplet is let through from then on (for `pass_days`, renewed by each message). A
//! deferred triplet is remembered for `retry_window_hours`. Real mail servers retry;
//! most spam software does not.
//!
//! It belongs in a listener's own chain: it needs the connection and MAIL, which a
//! tenant's chain on a routing listener does not see (there it answers `451 4.3.5` and
//! logs why). Needs `store = true` in the plugin's configuration: its entries live in the `greylist`
//! bucket of its tenant's namespace (in Redis, shared by every node). If the store cannot
//! be reached, recipients get `451 4.3.0` (retried later), never a pass by accident.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package wasmtpd:greylist;
        world greylist {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/connect-hook@0.1.0;
            export wasmtpd:plugin/mail-hook@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
        }
    ",
    world: "wasmtpd:greylist/greylist",
    generate_all,
});

mod triplet;

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use exports::wasmtpd::plugin::connect_hook::Guest as ConnectHook;
use exports::wasmtpd::plugin::handler::Guest as Handler;
use exports::wasmtpd::plugin::mail_hook::Guest as MailHook;
use exports::wasmtpd::plugin::rcpt_hook::Guest as RcptHook;
use triplet::{Decision, Entry, Timing};
use wasi::keyvalue::store::{self, Bucket};
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::keyvalue_extras;
use wasmtpd::plugin::types::Peer;

struct Greylist;

/// What this session's instance learnt: the client's address and the sender.
#[derive(Default)]
struct Session {
    client: Option<String>,
    sender: Option<String>,
    bucket: Option<Bucket>,
}

thread_local! {
    static SESSION: RefCell<Session> = RefCell::default();
}

fn setting(name: &str, default: u64) -> u64 {
    host::get_setting(name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The settings, read once an instance (a session): each RCPT needs them.
fn timing() -> Timing {
    static TIMING: OnceLock<Timing> = OnceLock::new();
    *TIMING.get_or_init(|| Timing {
        delay: setting("delay_secs", 300).saturating_mul(1000),
        // At least one unit: a time to live of 0 would mean "never expires".
        retry_window: setting("retry_window_hours", 24).max(1).saturating_mul(3_600_000),
        pass_lifetime: setting("pass_days", 36).max(1).saturating_mul(86_400_000),
    })
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn unavailable(what: &str, e: store::Error) -> Option<String> {
    host::log(Level::Warn, &format!("greylisting: cannot {what}: {e:?}"));
    Some("451 4.3.0 Cannot check greylisting now, try again later".to_owned())
}

impl ConnectHook for Greylist {
    fn on_connect(peer: Peer) -> Option<String> {
        SESSION.with_borrow_mut(|s| s.client = Some(peer.ip));
        None
    }
}

impl MailHook for Greylist {
    fn on_mail(mail_from: String, _options: Vec<String>) -> Option<String> {
        SESSION.with_borrow_mut(|s| s.sender = Some(mail_from));
        None
    }
}

impl RcptHook for Greylist {
    fn on_rcpt(rcpt_to: String, _options: Vec<String>) -> Option<String> {
        SESSION.with_borrow_mut(|session| {
            // Only a chain that saw the connection and MAIL can greylist (a tenant's chain
            // on a routing listener sees neither): never key on what is not known.
            let (Some(client), Some(sender)) = (session.client.clone(), session.sender.clone()) else {
                host::log(
                    Level::Error,
                    "greylisting needs the connection and MAIL: put it in a listener's own chain",
                );
                return Some("451 4.3.5 Greylisting is misconfigured, try again later".to_owned());
            };
            if session.bucket.is_none() {
                match store::open("greylist") {
                    Ok(bucket) => session.bucket = Some(bucket),
                    Err(e) => return unavailable("open its bucket", e),
                }
            }
            let bucket = session.bucket.as_ref()?;
            let key = triplet::key(&client, &sender, &rcpt_to);
            let entry = match bucket.get(&key) {
                Ok(stored) => stored.as_deref().and_then(Entry::parse),
                Err(e) => return unavailable("read", e),
            };
            let (reply, store) = match triplet::decide(entry, now_ms(), timing()) {
                Decision::Pass { store } => (None, Some(store)),
                Decision::Defer { store, retry_in } => (
                    Some(format!("451 4.7.1 Greylisted, please try again in {retry_in} seconds")),
                    store,
                ),
            };
            if let Some((entry, ttl)) = store
                && let Err(e) = keyvalue_extras::set_with_expiry(bucket, &key, entry.to_text().as_bytes(), ttl)
            {
                return unavailable("write", e);
            }
            reply
        })
    }
}

impl Handler for Greylist {
    fn process_message(
        _peer: Peer,
        _mail_from: String,
        _rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        None
    }
}

export!(Greylist);
