//! Asking the handlers at a hook, and turning what they answer into a reply: theirs if
//! it is a valid reply, `451 4.3.0` if it is not or if a handler failed.

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Reply, replies};

use super::Session;
use crate::handler::{Hook, Verdict};
use crate::metrics::PluginError;
use crate::plugin::instance::CallError;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The handlers' reply at `hook`, or `None` for the server's own.
    pub(super) async fn ask(&mut self, hook: Hook<'_>) -> Option<Reply> {
        if !self.handlers.wants(&hook) {
            return None;
        }
        let verdict = self.handlers.hook(hook).await;
        self.judge(verdict, hook.name())
    }

    pub(super) fn judge(&self, verdict: Verdict, stage: &str) -> Option<Reply> {
        match verdict {
            Verdict::Continue => None,
            Verdict::Reply { handler, text } => match Reply::from_handler(&text) {
                Ok(reply) => {
                    tracing::info!(tenant = %self.ctx.tenant, peer = %self.peer, handler, stage, reply = %text, "handler answered");
                    Some(reply)
                }
                Err(why) => {
                    self.ctx.metrics.plugin_error(PluginError::Malformed);
                    tracing::warn!(tenant = %self.ctx.tenant, peer = %self.peer, handler, stage, reply = ?text, "handler reply {why}; answering 451");
                    Some(replies::LOCAL_ERROR)
                }
            },
            Verdict::Failed { handler, error } => {
                let kind = error.downcast_ref::<CallError>().map_or(PluginError::Other, |e| e.kind);
                self.ctx.metrics.plugin_error(kind);
                tracing::warn!(tenant = %self.ctx.tenant, peer = %self.peer, handler, stage, "handler failed: {error:#}; answering 451");
                Some(replies::LOCAL_ERROR)
            }
        }
    }
}
