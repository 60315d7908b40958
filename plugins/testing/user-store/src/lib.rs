//! For tests only: a tenant's own user store, through the auth hook. Its setting `users`
//! lists `name:password` pairs (in the clear: a test fixture, not a way to keep
//! passwords). A listed user with the right password is accepted, with a wrong one
//! refused; the user `unavailable` gets a temporary failure, as when a store is down;
//! anyone else is left to the next plugin and the listener's own table.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package wasmtpd:user-store;
        world user-store {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/auth-hook@0.1.0;
        }
    ",
    world: "wasmtpd:user-store/user-store",
    generate_all,
});

use exports::wasmtpd::plugin::auth_hook::Guest as AuthHook;
use exports::wasmtpd::plugin::handler::Guest as Handler;
use wasmtpd::plugin::host;
use wasmtpd::plugin::types::Peer;

struct UserStore;

impl AuthHook for UserStore {
    fn on_auth(identity: String, password: String) -> Option<String> {
        if identity == "unavailable" {
            return Some("454 4.7.0 User store unavailable".into());
        }
        let users = host::get_setting("users").unwrap_or_default();
        let known = users.split(',').filter_map(|pair| pair.split_once(':'));
        let (_, expected) = known.into_iter().find(|(name, _)| *name == identity)?;
        Some(if *expected == password {
            "235 2.7.0 Authentication successful".into()
        } else {
            "535 5.7.8 Authentication credentials invalid".into()
        })
    }
}

impl Handler for UserStore {
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

export!(UserStore);
