//! HELO and EHLO: a (new) greeting, which also ends any transaction (RFC 5321 4.1.4).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Greeting, Session};
use crate::hook::Hook;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn helo(&mut self, client_name: &str, extended: bool) -> Flow {
        tracing::debug!(peer = %self.peer, client_name, extended, "greeting");
        self.abandon_transaction().await;
        let hook = Hook::Helo {
            name: client_name,
            extended,
        };
        if let Some(reply) = self.ask(hook).await.refusal() {
            // Refused: the client has to greet again. The reply has the attempted
            // greeting's flavour (enhanced codes after EHLO).
            self.greeting = None;
            reply.write_to(&mut self.output, extended);
            return Flow::Continue;
        }
        self.greeting = Some(Greeting {
            extended,
            name: client_name.to_owned(),
        });
        // The context's own replies, written as they are (no copy of their text).
        let ctx = Arc::clone(&self.ctx);
        let encrypted = self.stream.is_tls();
        let starttls_offered = ctx.access.tls.as_ref().is_some_and(|t| !t.implicit) && !encrypted;
        let reply = if extended && starttls_offered {
            &ctx.ehlo_starttls
        } else if extended && encrypted && ctx.access.auth.is_some() {
            &ctx.ehlo_auth
        } else if extended {
            &ctx.ehlo
        } else {
            &ctx.helo
        };
        self.reply(reply)
    }
}
