//! HELO and EHLO: a (new) greeting, which also ends any transaction (RFC 5321 4.1.4).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Greeting, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) fn helo(&mut self, client_name: &str, extended: bool) -> Flow {
        tracing::debug!(peer = %self.peer, client_name, extended, "greeting");
        self.transaction = None;
        self.greeting = Some(Greeting { extended });
        let reply = if extended {
            self.ctx.ehlo.clone()
        } else {
            self.ctx.helo.clone()
        };
        self.reply(&reply)
    }
}
