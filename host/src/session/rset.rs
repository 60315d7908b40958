//! RSET: drops the transaction, keeps the greeting. (NOOP, VRFY, EXPN, HELP and QUIT are
//! a fixed reply each, answered in the dispatch.)

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::replies;

use super::{Flow, Session};
use crate::hook::{Hook, HookKind};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn rset(&mut self) -> Flow {
        self.abandon_transaction().await;
        self.reply(&replies::OK)
    }

    /// Drops the transaction in progress, if any, and tells the handlers.
    pub(super) async fn abandon_transaction(&mut self) {
        if self.transaction.take().is_some() && self.handlers.wants(HookKind::Rset) {
            // RSET always succeeds (RFC 5321 4.1.1.5): what handlers answer is ignored.
            let _ = self.handlers.hook(Hook::Rset).await;
        }
    }
}
