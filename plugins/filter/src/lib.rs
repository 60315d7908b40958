//! Configurable rules that reject mail at each stage, each with its own reply:
//!
//! | setting | stage | default reply |
//! | --- | --- | --- |
//! | `blocked_senders`: addresses or `@domain`s | MAIL | `550 5.7.1 Sender blocked` |
//! | `local_domains`: the domains we take mail for | RCPT | `550 5.1.2 Unknown domain` |
//! | `local_users`: the addresses we take mail for | RCPT | `550 5.1.1 No such user` |
//! | `max_size`: octets | end of DATA | `552 5.3.4 Message too big` |
//! | `header_rules`: `Name:text` items | end of DATA | `550 5.7.1 Message rejected` |
//!
//! Each reply is set with the setting's name and `_reply`, e.g. `blocked_senders_reply`.
//! Lists are `,`-separated. A header rule matches when that header's value contains the
//! text, ignoring case.
//!
//! `dnsbl_zones` (DNSBL zones, e.g. `zen.spamhaus.org`): at connect, a client whose IPv4
//! address a zone lists gets `554 5.7.1` naming it; a lookup that fails, `451 4.7.1`.
//! Needs `dns = true` in the plugin's configuration.
//!
//! Rules that edit instead of refusing, at the end of DATA, after `header_rules`:
//! `quarantine_rules` (`Name:text` items) quarantine the message (it is accepted and kept
//! in the listener's or tenant's quarantine Maildir); `tag_rules` mark it as spam: an
//! `X-Spam-Flag: YES` field and the Subject prefixed with `tag_subject_prefix` (default
//! `[SPAM] `), and let it go on down the chain.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package wasmtpd:filter;
        world filter {
            include wasmtpd:plugin/plugin@0.1.0;
            export wasmtpd:plugin/stateless@0.1.0;
            export wasmtpd:plugin/connect-hook@0.1.0;
            export wasmtpd:plugin/mail-hook@0.1.0;
            export wasmtpd:plugin/rcpt-hook@0.1.0;
        }
    ",
    world: "wasmtpd:filter/filter",
    // The wasmtpd:plugin interfaces come from ../wit, not from the inline world.
    generate_all,
});

mod rules;

use exports::wasmtpd::plugin::connect_hook::Guest as ConnectHook;
use exports::wasmtpd::plugin::handler::Guest as Handler;
use exports::wasmtpd::plugin::mail_hook::Guest as MailHook;
use exports::wasmtpd::plugin::rcpt_hook::Guest as RcptHook;
use wasmtpd::plugin::dns::{self, DnsError, RecordType};
use wasmtpd::plugin::host::{self, Level};
use wasmtpd::plugin::message_edit as edit;
use wasmtpd::plugin::types::Peer;

struct Filter;

/// The reply configured for `rule`, or its default.
fn reply(rule: &str, default: &str) -> String {
    host::get_setting(&format!("{rule}_reply")).unwrap_or_else(|| default.to_owned())
}

fn setting(name: &str) -> String {
    host::get_setting(name).unwrap_or_default()
}

impl ConnectHook for Filter {
    /// DNSBLs: the client's address, reversed, looked up in each zone of `dnsbl_zones`.
    /// Listed: `554 5.7.1` naming the list. A lookup that failed: `451`, never an accept by
    /// accident. Needs `dns = true` in the plugin's configuration.
    fn on_connect(peer: Peer) -> Option<String> {
        let zones = setting("dnsbl_zones");
        let reversed = rules::reversed_ipv4(&peer.ip)?;
        for zone in zones.split(',').map(str::trim).filter(|z| !z.is_empty()) {
            match dns::lookup(&format!("{reversed}.{zone}"), RecordType::A) {
                Ok(answers) if answers.iter().any(|a| a.starts_with("127.")) => {
                    host::log(Level::Info, &format!("{} listed in {zone}", peer.ip));
                    return Some(format!(
                        "554 5.7.1 Service unavailable; client [{}] blocked using {zone}",
                        peer.ip
                    ));
                }
                Ok(_) | Err(DnsError::NoRecords) => {}
                Err(e) => {
                    host::log(Level::Warn, &format!("DNSBL {zone} lookup failed: {e:?}"));
                    return Some("451 4.7.1 Cannot check your address now, try again later".into());
                }
            }
        }
        None
    }
}

impl MailHook for Filter {
    fn on_mail(mail_from: String, _options: Vec<String>) -> Option<String> {
        rules::sender_blocked(&setting("blocked_senders"), &mail_from)
            .then(|| reply("blocked_senders", "550 5.7.1 Sender blocked"))
    }
}

impl RcptHook for Filter {
    fn on_rcpt(rcpt_to: String, _options: Vec<String>) -> Option<String> {
        let domains = setting("local_domains");
        if !domains.is_empty() && !rules::domain_listed(&domains, &rcpt_to) {
            return Some(reply("local_domains", "550 5.1.2 Unknown domain"));
        }
        let users = setting("local_users");
        if !users.is_empty() && !rules::address_listed(&users, &rcpt_to) {
            return Some(reply("local_users", "550 5.1.1 No such user"));
        }
        None
    }
}

impl Handler for Filter {
    fn process_message(
        _peer: Peer,
        _mail_from: String,
        _rcpt_tos: Vec<String>,
        data: Vec<u8>,
        _mail_options: Vec<String>,
        _rcpt_options: Vec<String>,
    ) -> Option<String> {
        let max_size = host::get_setting("max_size").and_then(|s| s.parse::<usize>().ok());
        if max_size.is_some_and(|max| data.len() > max) {
            return Some(reply("max_size", "552 5.3.4 Message too big"));
        }
        if rules::headers_match(&setting("header_rules"), &data) {
            return Some(reply("header_rules", "550 5.7.1 Message rejected"));
        }
        if let Some(rule) = rules::first_match(&setting("quarantine_rules"), &data) {
            edit::quarantine(&format!("quarantine_rules matched {rule}"));
            return None;
        }
        if rules::first_match(&setting("tag_rules"), &data).is_some() {
            tag(&data);
        }
        None
    }
}

/// Marks the message as spam: `X-Spam-Flag: YES`, and its Subject prefixed.
fn tag(data: &[u8]) {
    let prefix = host::get_setting("tag_subject_prefix").unwrap_or_else(|| "[SPAM] ".to_owned());
    edit::add_header("X-Spam-Flag", "YES");
    match rules::header_value(data, "Subject") {
        // A Subject the host would not take back as it reads here (8-bit that is not
        // UTF-8, a control character, a line too long) keeps its words: the flag says it.
        Some(subject) if !rules::is_plain_text(&subject) || subject.len() > 800 => {}
        Some(subject) if !subject.starts_with(&prefix) => {
            edit::change_header("Subject", 1, &format!("{prefix}{subject}"))
        }
        Some(_) => {}
        None => edit::add_header("Subject", prefix.trim_end()),
    }
}

/// Nothing is kept between calls: the host may share instances between sessions.
impl exports::wasmtpd::plugin::stateless::Guest for Filter {
    fn keeps_no_session_state() -> bool {
        true
    }
}

export!(Filter);
