//! Asks rspamd about each message (`POST /checkv2` with the envelope in its headers) and
//! applies its verdict: `reject` refuses (`550 5.7.1` with rspamd's message), `soft
//! reject` and `greylist` defer (`451 4.7.1`; `honour_greylist = false` accepts instead),
//! `add header` adds `X-Spam: Yes`, `rewrite subject` changes the Subject; every accepted
//! message gets `X-Spamd-Score` and `X-Spamd-Action`. If rspamd cannot be asked, the
//! message is deferred with `451 4.7.0` (never an accept by accident).
//!
//! Settings: `rspamd` (its `host:port`, default `127.0.0.1:11333`, which must be in the
//! plugin's `http` list), `password` (sent as rspamd's `Password` header, for a controller
//! port), `honour_greylist`.

wit_bindgen::generate!({ path: "../../wit", world: "plugin", generate_all });

pub mod verdict;

use exports::wasmtpd::plugin::handler::Guest;
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::message_edit as edit;
use wasmtpd::plugin::types::Peer;

use verdict::Verdict;

struct Rspamd;

fn ask(peer: &Peer, mail_from: &str, rcpt_tos: &[String], data: &[u8]) -> Result<verdict::Answer, String> {
    let authority = host::get_setting("rspamd").unwrap_or_else(|| "127.0.0.1:11333".to_owned());
    let password = host::get_setting("password");
    let mut headers = vec![("IP", peer.ip.as_str()), ("From", mail_from)];
    headers.extend(rcpt_tos.iter().map(|r| ("Rcpt", r.as_str())));
    if let Some(password) = password.as_deref() {
        headers.push(("Password", password));
    }
    let response = http_call::request("POST", &authority, "/checkv2", &headers, Some(data))?;
    if response.status != 200 {
        return Err(format!("rspamd answered HTTP {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("rspamd's answer does not parse: {e}"))
}

impl Guest for Rspamd {
    fn process_message(
        peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        _data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        // The message as the plugins before this one left it.
        let message = edit::message();
        let answer = match ask(&peer, &mail_from, &rcpt_tos, &message) {
            Ok(answer) => answer,
            Err(why) => {
                host::log(Level::Warn, &format!("cannot ask rspamd: {why}"));
                return Some("451 4.7.0 Spam filter unavailable, try again later".to_owned());
            }
        };
        let honour = host::get_setting("honour_greylist").is_none_or(|v| v != "false");
        host::log(Level::Info, &format!("rspamd: {} ({:.2})", answer.action, answer.score));
        match verdict::verdict(&answer, honour) {
            Verdict::Refuse(reply) => Some(reply),
            Verdict::Accept { headers, subject } => {
                for (name, value) in &headers {
                    edit::add_header(name, value);
                }
                if let Some(subject) = subject {
                    edit::change_header("Subject", 1, &subject);
                }
                None
            }
        }
    }
}

export!(Rspamd);
