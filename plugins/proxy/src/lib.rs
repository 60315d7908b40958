//! smtpd's `PureProxy`, done safely: relays each message to the configured upstream
//! through the host, keeping the envelope. Not an open relay: it accepts recipients only
//! in the domains its settings name. An upstream that is down or answers 4xx means a
//! `451` to our client, which retries: nothing is lost. An upstream 5xx is passed back.
//!
//! A client that authenticated (AUTH, which the host offers over TLS only) may relay to
//! any domain: that is what a submission port is for.
//!
//! Settings: `upstream` (`host:port`, required; the plugin's `relay` capability must
//! allow it), `relay_domains` (list; `*` relays for any domain).

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package wasmtpd:proxy;
        world proxy {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/stateless@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
        }
    ",
    world: "wasmtpd:proxy/proxy",
    // The wasmtpd:plugin interfaces come from ../wit, not from the inline world.
    generate_all,
});

mod policy;

use std::ops::Not;

use exports::wasmtpd::plugin::handler::Guest as Handler;
use exports::wasmtpd::plugin::rcpt_hook::Guest as RcptHook;
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::types::Peer;

struct Proxy;

impl RcptHook for Proxy {
    fn on_rcpt(rcpt_to: String, _options: Vec<String>) -> Option<String> {
        let domains = host::get_setting("relay_domains").unwrap_or_default();
        let allowed = policy::relays_for(&domains, &rcpt_to) || host::session().authenticated.is_some();
        allowed
            .not()
            .then(|| format!("550 5.7.1 <{rcpt_to}>: Relay access denied"))
    }
}

impl Handler for Proxy {
    fn process_message(
        _peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let Some(upstream) = host::get_setting("upstream") else {
            host::log(Level::Error, "no `upstream` setting: cannot relay");
            return Some("451 4.3.5 Proxy not configured, try again later".into());
        };
        match host::relay(&upstream, &mail_from, &rcpt_tos, &data) {
            Ok(_) => None,
            Err(error) => {
                // The detail (the upstream's address, the OS error) is for the operator.
                host::log(Level::Warn, &format!("relay to {upstream} failed: {error:?}"));
                Some(policy::reply_for(&error))
            }
        }
    }
}

/// Nothing is kept between calls: the host may share instances between sessions.
impl exports::wasmtpd::plugin::stateless::Guest for Proxy {
    fn keeps_no_session_state() -> bool {
        true
    }
}

export!(Proxy);
