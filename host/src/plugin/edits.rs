//! The `message-edit` host interface: a plugin's edits to the message in hand, made on a
//! draft during its `process-message` call and handed on only if the call accepts. The
//! draft is made at the first edit (a call that edits nothing costs nothing), every edit
//! is checked as it is made, and the first that cannot be made fails the call.

use std::sync::Arc;

use bytes::Bytes;
use wasmtpd_protocol::Address;
use wasmtpd_protocol::address::parse_mailbox;
use wasmtpd_protocol::esmtp_param;
use wasmtpd_protocol::header::{self, Field, check_body};

use super::bindings::message_edit;
use super::state::PluginState;
use crate::handler::{Message, RcptOptions};

/// What one `process-message` call did to its message.
pub struct Edits {
    base: Arc<Message>,
    draft: Option<Draft>,
    /// The first edit that could not be made, described for the log.
    refused: Option<String>,
    quarantine: Option<String>,
}

struct Draft {
    message: header::Message,
    mail_from: Option<Address>,
    mail_options: Vec<String>,
    rcpt_to: Vec<Address>,
    rcpt_options: Vec<RcptOptions>,
}

/// What a call's edits come to once it accepted.
#[derive(Debug)]
pub struct Edited {
    /// The message for the rest of the chain, if the call changed it.
    pub message: Option<Message>,
    /// Why the call quarantined the message, if it did.
    pub quarantine: Option<String>,
}

impl Edits {
    pub fn new(base: Arc<Message>) -> Edits {
        Edits {
            base,
            draft: None,
            refused: None,
            quarantine: None,
        }
    }

    /// The call's outcome: nothing if it did not accept (its edits are dropped), the
    /// edits if it did, or the reason they cannot stand.
    pub fn finish(self, accepted: bool) -> Result<Option<Edited>, String> {
        if !accepted {
            return Ok(None);
        }
        if let Some(refused) = self.refused {
            return Err(refused);
        }
        let message = match self.draft {
            Some(draft) if draft.rcpt_to.is_empty() => {
                return Err(
                    "remove-recipient: every recipient was removed, and the call did not refuse the message".into(),
                );
            }
            Some(draft) => Some(Message {
                data: Bytes::from(draft.message.to_bytes()),
                mail_from: draft.mail_from,
                rcpt_to: draft.rcpt_to,
                mail_options: draft.mail_options,
                rcpt_options: draft.rcpt_options,
                // The rest as it was; the base's envelope lists are not copied to be dropped.
                peer: self.base.peer,
                size_limit: self.base.size_limit,
                id: self.base.id.clone(),
                received: self.base.received.clone(),
            }),
            None => None,
        };
        if message.is_none() && self.quarantine.is_none() {
            return Ok(None);
        }
        Ok(Some(Edited {
            message,
            quarantine: self.quarantine,
        }))
    }

    /// The `Received:` field the server stamps on this message.
    pub fn received(&self) -> &str {
        &self.base.received
    }

    /// The message in hand as the call received it.
    pub fn message(&self) -> &Message {
        &self.base
    }

    fn draft(&mut self) -> &mut Draft {
        let base = &self.base;
        self.draft.get_or_insert_with(|| Draft {
            message: header::Message::parse(&base.data),
            mail_from: base.mail_from.clone(),
            mail_options: base.mail_options.clone(),
            rcpt_to: base.rcpt_to.clone(),
            rcpt_options: base.rcpt_options.clone(),
        })
    }

    /// Makes an edit, unless one was refused already; a refused edit is remembered with
    /// its name and arguments.
    fn edit(&mut self, what: impl FnOnce() -> String, make: impl FnOnce(&mut Draft) -> Result<(), String>) {
        if self.refused.is_some() {
            return;
        }
        let limit = self.base.size_limit;
        let draft = self.draft();
        let result = make(draft).and_then(|()| {
            let size = draft.message.len();
            if size > limit {
                Err(format!(
                    "the message would grow to {size} octets, past the limit of {limit}"
                ))
            } else {
                Ok(())
            }
        });
        if let Err(why) = result {
            self.refused = Some(format!("{}: {why}", what()));
        }
    }
}

fn field(name: &str, value: &str) -> Result<Field, String> {
    Field::new(name, value).map_err(|e| e.to_string())
}

/// ESMTP parameters as MAIL's are handed on: each checked, its keyword upper-cased.
fn esmtp_parameters(given: &[String]) -> Result<Vec<String>, String> {
    given
        .iter()
        .map(|p| esmtp_param(p).ok_or_else(|| format!("{p:?} is not an ESMTP parameter (KEYWORD or KEYWORD=value)")))
        .collect()
}

/// An address as the envelope keeps it; `""` is the null path where `null_ok`.
fn path(address: &str, null_ok: bool) -> Result<Option<Address>, String> {
    if address.is_empty() && null_ok {
        return Ok(None);
    }
    parse_mailbox(address)
        .map(Some)
        .map_err(|_| format!("{address:?} is not an RFC 5321 path"))
}

impl Draft {
    fn add_recipient(&mut self, address: Address, parameters: Vec<String>) {
        if !self.rcpt_to.iter().any(|r| r.as_str() == address.as_str()) {
            if !parameters.is_empty() {
                self.rcpt_options.push(RcptOptions {
                    to: address.clone(),
                    options: parameters,
                });
            }
            self.rcpt_to.push(address);
        }
    }
}

/// `message-edit` outside a `process-message` call: a trap, so that the call fails.
fn not_now() -> wasmtime::Error {
    wasmtime::Error::msg("message-edit is only for process-message")
}

impl PluginState {
    fn edits(&mut self) -> wasmtime::Result<&mut Edits> {
        self.edits.as_mut().ok_or_else(not_now)
    }
}

impl message_edit::Host for PluginState {
    fn add_header(&mut self, name: String, value: String) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("add-header({name:?}, {value:?})"),
            |d| {
                d.message.fields.push(field(&name, &value)?);
                Ok(())
            },
        );
        Ok(())
    }

    fn insert_header(&mut self, index: u32, name: String, value: String) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("insert-header({index}, {name:?}, {value:?})"),
            |d| {
                let at = usize::try_from(index).unwrap_or(usize::MAX).min(d.message.fields.len());
                d.message.fields.insert(at, field(&name, &value)?);
                Ok(())
            },
        );
        Ok(())
    }

    fn change_header(&mut self, name: String, occurrence: u32, value: String) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("change-header({name:?}, {occurrence}, {value:?})"),
            |d| {
                let new = field(&name, &value)?;
                if let Some(at) = d.message.position(&name, occurrence) {
                    d.message.fields[at] = new;
                }
                Ok(())
            },
        );
        Ok(())
    }

    fn delete_header(&mut self, name: String, occurrence: u32) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("delete-header({name:?}, {occurrence})"),
            |d| {
                if let Some(at) = d.message.position(&name, occurrence) {
                    d.message.fields.remove(at);
                }
                Ok(())
            },
        );
        Ok(())
    }

    fn replace_body(&mut self, body: Vec<u8>) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("replace-body({} octets)", body.len()),
            |d| {
                check_body(&body).map_err(|e| e.to_string())?;
                d.message.set_body(&body);
                Ok(())
            },
        );
        Ok(())
    }

    fn change_sender(&mut self, mail_from: String, parameters: Vec<String>) -> wasmtime::Result<()> {
        let what = format!("change-sender({mail_from:?}, {parameters:?})");
        let given = parameters;
        self.edits()?.edit(
            || what,
            |d| {
                d.mail_from = path(&mail_from, true)?;
                d.mail_options = esmtp_parameters(&given)?;
                Ok(())
            },
        );
        Ok(())
    }

    fn add_recipient(&mut self, rcpt_to: String, parameters: Vec<String>) -> wasmtime::Result<()> {
        let what = format!("add-recipient({rcpt_to:?}, {parameters:?})");
        let given = parameters;
        self.edits()?.edit(
            || what,
            |d| {
                let address = path(&rcpt_to, false)?.expect("a recipient is never the null path");
                d.add_recipient(address, esmtp_parameters(&given)?);
                Ok(())
            },
        );
        Ok(())
    }

    fn remove_recipient(&mut self, rcpt_to: String) -> wasmtime::Result<()> {
        self.edits()?.edit(
            || format!("remove-recipient({rcpt_to:?})"),
            |d| {
                d.rcpt_to.retain(|r| r.as_str() != rcpt_to);
                d.rcpt_options.retain(|r| r.to.as_str() != rcpt_to);
                Ok(())
            },
        );
        Ok(())
    }

    fn quarantine(&mut self, reason: String) -> wasmtime::Result<()> {
        let edits = self.edits()?;
        edits.quarantine.get_or_insert(reason);
        Ok(())
    }

    fn received_header(&mut self) -> wasmtime::Result<String> {
        Ok(self.edits()?.received().to_owned())
    }

    fn message(&mut self) -> wasmtime::Result<Vec<u8>> {
        let edits = self.edits()?;
        Ok(match &edits.draft {
            Some(draft) => draft.message.to_bytes(),
            None => edits.base.data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Arc<Message> {
        Arc::new(Message {
            peer: "127.0.0.1:2525".parse().unwrap(),
            mail_from: Some(Address::new_unchecked("a@example.org")),
            rcpt_to: vec![Address::new_unchecked("b@example.com")],
            data: Bytes::from_static(b"Subject: hi\r\nX-Old: 1\r\n\r\nbody\r\n"),
            mail_options: vec![],
            rcpt_options: vec![],
            size_limit: 100,
            id: "1".into(),
            received: "Received: from a ([127.0.0.1])".into(),
        })
    }

    fn edited(edits: Edits) -> Message {
        edits.finish(true).unwrap().unwrap().message.unwrap()
    }

    #[test]
    fn edits_apply_in_order_to_a_draft() {
        let mut edits = Edits::new(base());
        edits.edit(String::new, |d| {
            d.message.fields.push(field("X-Spam-Flag", "YES")?);
            Ok(())
        });
        edits.edit(String::new, |d| {
            let at = d.message.position("subject", 1).unwrap();
            d.message.fields[at] = field("Subject", "[SPAM] hi")?;
            Ok(())
        });
        edits.edit(String::new, |d| {
            d.rcpt_to.clear();
            d.add_recipient(Address::new_unchecked("c@example.com"), vec![]);
            Ok(())
        });
        let message = edited(edits);
        assert_eq!(
            &message.data[..],
            b"Subject: [SPAM] hi\r\nX-Old: 1\r\nX-Spam-Flag: YES\r\n\r\nbody\r\n"
        );
        assert_eq!(message.rcpt_to[0].as_str(), "c@example.com");
        assert_eq!(message.mail_from.unwrap().as_str(), "a@example.org");
    }

    #[test]
    fn a_refusal_names_the_edit_and_stops_the_rest() {
        let mut edits = Edits::new(base());
        edits.edit(
            || "add-header(\"Bad Name\")".into(),
            |d| field("Bad Name", "v").map(|f| d.message.fields.push(f)),
        );
        edits.edit(String::new, |d| field("X-Later", "v").map(|f| d.message.fields.push(f)));
        let why = edits.finish(true).unwrap_err();
        assert!(why.starts_with("add-header(\"Bad Name\"): the field name"), "{why}");
    }

    #[test]
    fn growing_past_the_size_limit_is_refused() {
        let mut edits = Edits::new(base());
        edits.edit(
            || "replace-body".into(),
            |d| {
                d.message.set_body(&[b'x'; 200]);
                Ok(())
            },
        );
        assert!(edits.finish(true).unwrap_err().contains("past the limit of 100"));
    }

    #[test]
    fn edits_are_dropped_when_the_call_does_not_accept() {
        let mut edits = Edits::new(base());
        edits.edit(String::new, |d| field("X-A", "1").map(|f| d.message.fields.push(f)));
        edits.quarantine = Some("spam".into());
        assert!(edits.finish(false).unwrap().is_none());
    }

    #[test]
    fn removing_every_recipient_without_refusing_is_an_error() {
        let mut edits = Edits::new(base());
        edits.edit(String::new, |d| {
            d.rcpt_to.clear();
            Ok(())
        });
        assert!(edits.finish(true).unwrap_err().contains("every recipient was removed"));
    }

    #[test]
    fn parameters_are_checked_and_upper_cased() {
        assert_eq!(
            esmtp_parameters(&["body=8bitmime".into()]),
            Ok(vec!["BODY=8BITMIME".into()])
        );
        assert_eq!(esmtp_parameters(&["SMTPUTF8".into()]), Ok(vec!["SMTPUTF8".into()]));
        for bad in ["A=1 B=2", "X=\r\nDATA", "=v", "K=", ""] {
            assert!(esmtp_parameters(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_checked_as_paths() {
        assert_eq!(path("", true), Ok(None));
        assert!(path("", false).is_err());
        assert!(path("a@example.org>\r\nRCPT TO:<x@y", true).is_err());
        assert_eq!(path("a@example.org", false).unwrap().unwrap().as_str(), "a@example.org");
    }

    #[test]
    fn no_edit_no_draft_no_change() {
        let edits = Edits::new(base());
        assert!(edits.finish(true).unwrap().is_none());
    }
}
