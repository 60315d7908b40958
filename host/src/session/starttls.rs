//! STARTTLS (RFC 3207): the handshake in the middle of a session, and what the session
//! forgets once it is done. Implicit TLS (RFC 8314) uses the same handshake before the
//! greeting.

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::replies;

use super::{Flow, Session};
use crate::tls::ListenerTls;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn starttls(&mut self) -> std::io::Result<Flow> {
        if self.stream.is_tls() {
            return Ok(self.client_error(&replies::TLS_ALREADY_ON));
        }
        let Some(tls) = self.ctx.access.tls.clone() else {
            return Ok(self.client_error(&replies::TLS_NOT_AVAILABLE));
        };
        if self.greeting.is_none() {
            return Ok(self.client_error(&replies::NEED_HELO));
        }
        if self.transaction.is_some() {
            return Ok(self.client_error(&replies::TRANSACTION_IN_PROGRESS));
        }
        self.send(&replies::READY_FOR_TLS);
        self.flush().await?;
        // What the client sent behind STARTTLS came in the clear: taking it as said over
        // TLS is the command injection of CVE-2011-0411 and its kin. It is dropped.
        let injected = self.input.len();
        self.input.clear();
        self.discarding = false;
        if injected > 0 {
            tracing::warn!(peer = %self.peer, octets = injected, "dropped input sent behind STARTTLS before the handshake");
        }
        if !self.start_tls(&tls).await {
            return Ok(Flow::Gone);
        }
        // RFC 3207 4.2: everything learnt from the client before TLS is forgotten; it
        // has to greet again.
        self.greeting = None;
        Ok(Flow::Continue)
    }

    /// The handshake, within the idle timeout; false (and logged) if it fails.
    pub(super) async fn start_tls(&mut self, tls: &ListenerTls) -> bool {
        let timeout = self.ctx.limits.idle_timeout();
        match tokio::time::timeout(timeout, self.stream.upgrade(&tls.acceptor)).await {
            Ok(Ok(())) => {
                let tls = self.stream.tls_parameters();
                tracing::debug!(peer = %self.peer, ?tls, "TLS started");
                self.learn(|facts| facts.tls = tls);
                true
            }
            Ok(Err(e)) => {
                tracing::info!(peer = %self.peer, "TLS handshake failed: {e}");
                false
            }
            Err(_) => {
                tracing::info!(peer = %self.peer, "TLS handshake timed out");
                false
            }
        }
    }
}
