//! What a session asks about its client's commands and hands its messages to: smtpd's
//! `process_message` and the optional per-command hooks, as traits. The plugin runtime
//! implements them with WebAssembly components; session tests with plain Rust.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use wasmtpd_protocol::Address;

/// A received message with its envelope: smtpd's `process_message` arguments.
#[derive(Clone, Debug)]
pub struct Message {
    /// The client's address.
    pub peer: SocketAddr,
    /// The envelope sender; `None` for the null reverse path `<>`.
    pub mail_from: Option<Address>,
    pub rcpt_to: Vec<Address>,
    /// The message as received: CRLF line endings, dot-stuffing removed, the final CRLF kept.
    pub data: Vec<u8>,
    /// MAIL parameters as sent, upper-cased (smtpd's `mail_options`, e.g. `SIZE=236`).
    pub mail_options: Vec<String>,
    /// RCPT parameters (smtpd's `rcpt_options`); none is implemented yet, so always empty.
    pub rcpt_options: Vec<String>,
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

/// A point in a session where handlers may answer instead of the server.
#[derive(Clone, Copy, Debug)]
pub enum Hook<'a> {
    Connect,
    Helo {
        name: &'a str,
        extended: bool,
    },
    /// `from` is `""` for the null reverse path; `size` is what `SIZE=` declared, as the
    /// session parsed it.
    Mail {
        from: &'a str,
        options: &'a [String],
        size: Option<u64>,
    },
    Rcpt {
        to: &'a str,
        options: &'a [String],
    },
    /// DATA, before `354`.
    Data,
    /// AUTH over TLS, decoded: a 2xx answer accepts the identity, `Continue` leaves it to
    /// the listener's own users.
    Auth {
        identity: &'a str,
        password: Password<'a>,
    },
    /// RSET, or a new greeting in the middle of a transaction. Answers are ignored.
    Rset,
    /// The session is over (QUIT, or the client left). Answers are ignored.
    Quit,
}

impl Hook<'_> {
    /// The hook's name, as the log and the WIT interfaces call it.
    pub fn name(&self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Helo { .. } => "helo",
            Hook::Mail { .. } => "mail",
            Hook::Rcpt { .. } => "rcpt",
            Hook::Data => "data",
            Hook::Auth { .. } => "auth",
            Hook::Rset => "rset",
            Hook::Quit => "quit",
        }
    }
}

/// A password on its way to the handlers: shown as `…` wherever a hook is printed.
#[derive(Clone, Copy)]
pub struct Password<'a>(pub &'a str);

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

/// What the handlers made of a hook or a message.
#[derive(Debug)]
pub enum Verdict {
    /// No handler answered: the server does what it would do anyway.
    Continue,
    /// A handler answered this reply (not checked yet: the session checks it).
    Reply { handler: String, text: String },
    /// A handler failed (trapped, ran out of time or memory, could not start): the
    /// client gets a 4xx tempfail, so that nothing is lost.
    Failed { handler: String, error: anyhow::Error },
}

pub type VerdictFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// The handlers of one session, with whatever state they keep for it.
pub trait SessionHandlers: Send {
    /// Whether asking at `hook` can do anything: when not, the session does not ask (a
    /// call costs an allocated future, and most chains listen to few hooks).
    fn wants(&self, _hook: &Hook<'_>) -> bool {
        true
    }
    fn hook<'a>(&'a mut self, hook: Hook<'a>) -> VerdictFuture<'a>;
    fn process_message<'a>(&'a mut self, message: &'a Message) -> VerdictFuture<'a>;
    /// The session learnt something (TLS started, AUTH succeeded): later calls see it.
    fn learn(&mut self, facts: Arc<SessionFacts>);
}

/// A listener's handlers: each session gets its own [`SessionHandlers`].
pub trait Handlers: Send + Sync {
    fn session(&self, peer: SocketAddr) -> Box<dyn SessionHandlers>;
    /// The handlers' names, in order, for the log.
    fn names(&self) -> Vec<String>;
}
