//! RSET: drops the transaction, keeps the greeting. (NOOP, VRFY, EXPN, HELP and QUIT are
//! a fixed reply each, answered in the dispatch.)

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::replies;

use super::{Flow, Session};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) fn rset(&mut self) -> Flow {
        self.transaction = None;
        self.reply(&replies::OK)
    }
}
