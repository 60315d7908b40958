//! What a session asks about its client's commands and hands its messages to: smtpd's
//! `process_message` and the optional per-command hooks, as traits. The plugin runtime
//! implements them with WebAssembly components; session tests with plain Rust.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use wasmtpd_protocol::{Address, Reply};

use crate::hook::{Hook, HookKind};

/// A received message with its envelope: smtpd's `process_message` arguments.
#[derive(Clone, Debug)]
pub struct Message {
    /// The client's address.
    pub peer: SocketAddr,
    /// The envelope sender; `None` for the null reverse path `<>`.
    pub mail_from: Option<Address>,
    pub rcpt_to: Vec<Address>,
    /// The message as received: CRLF line endings, dot-stuffing removed, the final CRLF
    /// kept. Shared, not copied, by every tenant's and plugin's view of it.
    pub data: Bytes,
    /// MAIL parameters as sent, upper-cased (smtpd's `mail_options`, e.g. `SIZE=236`).
    pub mail_options: Vec<String>,
    /// RCPT parameters (smtpd's `rcpt_options`) of the recipients that have any: the
    /// client's (DSN's `NOTIFY`, `ORCPT`) and those plugins' `add-recipient` edits gave.
    pub rcpt_options: Vec<RcptOptions>,
    /// The most octets the message may grow to through plugins' edits (the SIZE limit).
    pub size_limit: usize,
    /// The id that names the message in the log and its trace.
    pub id: String,
    /// The `Received:` field the server stamps on the message where it leaves (relayed or
    /// stored), folded, without its final CRLF; not part of `data`.
    pub received: String,
}

/// One recipient's RCPT parameters, as handed to handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptOptions {
    pub to: Address,
    pub options: Vec<String>,
}

impl Message {
    /// Every recipient's RCPT parameters in one list, in RCPT order: `process-message`'s
    /// `rcpt-options` (smtpd's shape; the `rcpt` hook has them one recipient at a time).
    pub fn all_rcpt_options(&self) -> Vec<String> {
        self.rcpt_options
            .iter()
            .flat_map(|r| r.options.iter().cloned())
            .collect()
    }

    /// The message for some of its recipients (`places` in `rcpt_to`), with only their
    /// RCPT parameters: a tenant or a plugin handed a part sees nothing of the others.
    pub fn part_for(&self, places: &[usize]) -> Message {
        let rcpt_to: Vec<Address> = places.iter().map(|&p| self.rcpt_to[p].clone()).collect();
        let rcpt_options = self
            .rcpt_options
            .iter()
            .filter(|r| rcpt_to.contains(&r.to))
            .cloned()
            .collect();
        // The rest as it is; the envelope lists are not copied to be dropped.
        Message {
            peer: self.peer,
            mail_from: self.mail_from.clone(),
            rcpt_to,
            data: self.data.clone(),
            mail_options: self.mail_options.clone(),
            rcpt_options,
            size_limit: self.size_limit,
            id: self.id.clone(),
            received: self.received.clone(),
        }
    }

    /// The RCPT parameters of one recipient (none if it had none).
    pub fn rcpt_options_of(&self, to: &str) -> &[String] {
        self.rcpt_options
            .iter()
            .find(|r| r.to.as_str() == to)
            .map_or(&[], |r| &r.options)
    }
}

/// What a session has learnt about its client beyond the commands' arguments; handed to
/// the handlers whenever it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFacts {
    /// The TLS version and cipher suite, once the session is encrypted.
    pub tls: Option<(String, String)>,
    /// The identity the client proved with AUTH.
    pub authenticated: Option<String>,
}

/// What the handlers made of a hook or a message. A handler's answer was checked where
/// it left the handler: a `Reply` here is a valid reply.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// No handler answered: the server does what it would do anyway.
    Continue,
    /// A handler answered this reply.
    Reply { handler: String, reply: Reply },
    /// A handler failed (trapped, ran out of time or memory, answered something that is
    /// not a reply, could not start): the client gets a 4xx, so that nothing is lost.
    Failed { handler: String, failure: PluginFailure },
}

#[cfg(test)]
impl Verdict {
    /// A handler's answer as text: its reply if the text is a valid one, else a failure.
    pub fn answered(handler: String, text: &str) -> Verdict {
        match checked_reply(text) {
            Ok(reply) => Verdict::Reply { handler, reply },
            Err(failure) => Verdict::Failed { handler, failure },
        }
    }
}

/// A handler's answer as text (smtpd's contract, e.g. `550 5.1.1 No such user`), checked
/// (see [`Reply::from_handler`]): the reply, or a failure of kind [`PluginError::Malformed`].
pub fn checked_reply(text: &str) -> Result<Reply, PluginFailure> {
    Reply::from_handler(text).map_err(|why| {
        // Debug-quoted: control characters are escaped before they reach the log.
        PluginFailure::new(PluginError::Malformed, format!("reply {why}: {text:?}"))
    })
}

/// Why a plugin call failed, as counted and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginError {
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    Trap,
    /// It ran past its time budget.
    Timeout,
    /// Its instance outgrew its memory cap.
    Memory,
    /// It answered something that is not a valid reply.
    Malformed,
    /// It was not called: it failed too often in a row and is resting (see the breaker).
    Resting,
    /// It could not start, or failed otherwise.
    Other,
}

impl PluginError {
    pub const ALL: [PluginError; 6] = [
        PluginError::Trap,
        PluginError::Timeout,
        PluginError::Memory,
        PluginError::Malformed,
        PluginError::Resting,
        PluginError::Other,
    ];

    /// The `kind` label in the metrics.
    pub const fn label(self) -> &'static str {
        match self {
            PluginError::Trap => "trap",
            PluginError::Timeout => "timeout",
            PluginError::Memory => "memory",
            PluginError::Malformed => "malformed",
            PluginError::Resting => "resting",
            PluginError::Other => "other",
        }
    }
}

/// A failed call: its kind, and what happened on one line for the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PluginFailure {
    pub kind: PluginError,
    pub message: String,
}

impl PluginFailure {
    pub fn new(kind: PluginError, message: impl Into<String>) -> PluginFailure {
        PluginFailure {
            kind,
            message: message.into(),
        }
    }
}

pub type VerdictFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;
pub type VerdictsFuture<'a> = Pin<Box<dyn Future<Output = Vec<Verdict>> + Send + 'a>>;

/// The handlers of one session, with whatever state they keep for it.
pub trait SessionHandlers: Send {
    /// Whether asking at `hook` can do anything: when not, the session does not ask (a
    /// call costs an allocated future, and most chains listen to few hooks).
    fn wants(&self, _hook: HookKind) -> bool {
        true
    }
    fn hook<'a>(&'a mut self, hook: Hook<'a>) -> VerdictFuture<'a>;
    /// The message is shared: a chain hands it on as it is until a plugin edits it.
    fn process_message<'a>(&'a mut self, message: &'a Arc<Message>) -> VerdictFuture<'a>;
    /// The message with a verdict for each of its recipients, in order (LMTP). By
    /// default the one verdict of [`SessionHandlers::process_message`] for every one.
    fn process_message_each<'a>(&'a mut self, message: &'a Arc<Message>) -> VerdictsFuture<'a> {
        Box::pin(async move {
            let verdict = self.process_message(message).await;
            vec![verdict; message.rcpt_to.len()]
        })
    }
    /// The session learnt something (TLS started, AUTH succeeded): later calls see it.
    fn learn(&mut self, facts: Arc<SessionFacts>);
}

/// A listener's handlers: each session gets its own [`SessionHandlers`].
pub trait Handlers: Send + Sync {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers>;
    /// The handlers' names, in order, for the log.
    fn names(&self) -> Vec<String>;
    /// How many copies of a message its handlers may take into memory at most (a
    /// plugin instance keeps its copy until its session ends): room is held for them.
    fn body_copies(&self) -> usize;
}
