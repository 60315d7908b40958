//! Asking the handlers at a hook, and what their verdict means for the session: the
//! server's own reply, an acceptance (with the handler's 2xx where the hook sends it, see
//! [`Positive`]), or a refusal (the handler's 4xx/5xx, or `451 4.3.0` when it failed).

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Reply, replies};

use super::Session;
use crate::handler::Verdict;
use crate::hook::{Hook, Positive};

/// The handlers' answer at a hook.
#[derive(Debug)]
pub(super) enum Answer {
    /// Nobody answered: the server does what it would do anyway.
    Pass,
    /// A handler answered a 2xx: its reply where the hook sends it, else `None` (the
    /// server's own reply goes out).
    Accepted(Option<Reply>),
    /// A handler refused (4xx/5xx), or failed (`451 4.3.0`).
    Refused(Reply),
}

impl Answer {
    pub(super) fn refusal(self) -> Option<Reply> {
        match self {
            Answer::Refused(reply) => Some(reply),
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// What the handlers make of `hook`.
    pub(super) async fn ask(&mut self, hook: Hook<'_>) -> Answer {
        let kind = hook.kind();
        if !self.handlers.wants(kind) {
            return Answer::Pass;
        }
        let verdict = self.handlers.hook(hook).await;
        match self.judge(verdict, kind.name()) {
            None => Answer::Pass,
            Some(reply) if !reply.is_positive() => Answer::Refused(reply),
            Some(reply) => match kind.positive() {
                Positive::Sent => Answer::Accepted(Some(reply)),
                Positive::HostReply | Positive::Ignored => {
                    tracing::debug!(peer = %self.peer, stage = kind.name(), reply = %reply.one_line(), "a 2xx at this stage accepts; the server's own reply is sent");
                    Answer::Accepted(None)
                }
            },
        }
    }

    /// The reply a verdict makes, logged: `None` when no handler answered.
    pub(super) fn judge(&self, verdict: Verdict, stage: &str) -> Option<Reply> {
        match verdict {
            Verdict::Continue => None,
            Verdict::Reply { handler, reply } => {
                tracing::info!(tenant = %self.ctx.tenant, peer = %self.peer, handler, stage, reply = %reply.one_line(), "handler answered");
                Some(reply)
            }
            Verdict::Failed { handler, failure } => {
                tracing::warn!(tenant = %self.ctx.tenant, peer = %self.peer, handler, stage, kind = failure.kind.label(), "handler failed: {failure}; answering 451");
                Some(replies::LOCAL_ERROR)
            }
        }
    }
}
