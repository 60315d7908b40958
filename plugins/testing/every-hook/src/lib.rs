//! For tests only: exports `process-message` and every hook of the contract, logs each
//! call (`called: rcpt <b@example.com>`), and answers at each what the setting named
//! after it says (`connect`, `helo`, `mail`, `rcpt`, `data`, `auth`, `message`): a reply
//! such as `550 5.7.1 no`, or nothing (`none`) when the setting is absent. `rset` and
//! `quit` are notices: they are logged only; with the setting `quit-spin-ms`, `quit` then
//! computes for that many milliseconds (a plugin slow to finish a session).
//!
//! A build of it from version 0.1.0 of the contract is kept in
//! `tests/fixtures/contract-0.1.0/`, so that the host is tested against a component built
//! before any later change of the WIT.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package wasmtpd:every-hook;
        world every-hook {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/connect-hook@0.1.0;
            export wasmtpd:plugin/helo-hook@0.1.0;
            export wasmtpd:plugin/mail-hook@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
            export wasmtpd:plugin/data-hook@0.1.0;
            export wasmtpd:plugin/auth-hook@0.1.0;
            export wasmtpd:plugin/rset-hook@0.1.0;
            export wasmtpd:plugin/quit-hook@0.1.0;
        }
    ",
    world: "wasmtpd:every-hook/every-hook",
    generate_all,
});

use exports::wasmtpd::plugin::{
    auth_hook, connect_hook, data_hook, handler, helo_hook, mail_hook, quit_hook, rcpt_hook, rset_hook,
};
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::types::Peer;

struct EveryHook;

/// Logs the call and answers what the stage's setting says.
fn answer(stage: &str, call: String) -> Option<String> {
    host::log(Level::Info, &format!("called: {call}"));
    host::get_setting(stage)
}

impl connect_hook::Guest for EveryHook {
    fn on_connect(peer: Peer) -> Option<String> {
        answer("connect", format!("connect {}", peer.ip))
    }
}

impl helo_hook::Guest for EveryHook {
    fn on_helo(name: String, extended: bool) -> Option<String> {
        answer("helo", format!("helo {name} {extended}"))
    }
}

impl mail_hook::Guest for EveryHook {
    fn on_mail(mail_from: String, options: Vec<String>) -> Option<String> {
        answer("mail", format!("mail <{mail_from}> {options:?}"))
    }
}

impl rcpt_hook::Guest for EveryHook {
    fn on_rcpt(rcpt_to: String, options: Vec<String>) -> Option<String> {
        answer("rcpt", format!("rcpt <{rcpt_to}> {options:?}"))
    }
}

impl data_hook::Guest for EveryHook {
    fn on_data() -> Option<String> {
        answer("data", "data".into())
    }
}

impl auth_hook::Guest for EveryHook {
    fn on_auth(identity: String, _password: String) -> Option<String> {
        answer("auth", format!("auth {identity}"))
    }
}

impl rset_hook::Guest for EveryHook {
    fn on_rset() {
        host::log(Level::Info, "called: rset");
    }
}

impl quit_hook::Guest for EveryHook {
    fn on_quit() {
        host::log(Level::Info, "called: quit");
        let spin = host::get_setting("quit-spin-ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(spin) {
            std::hint::spin_loop();
        }
    }
}

impl handler::Guest for EveryHook {
    fn process_message(
        _peer: Peer,
        mail_from: String,
        rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let call = format!("message <{mail_from}> {rcpt_tos:?} {} octets", data.len());
        answer("message", call)
    }
}

export!(EveryHook);
