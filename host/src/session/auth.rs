//! AUTH (RFC 4954) with PLAIN and LOGIN, over TLS only: the 334 exchange, the check
//! (the plugins' auth hook, then the listener's users), and what a failure costs the
//! client (a pause, and the session after three).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::sasl::{self, Credentials, SaslError};
use wasmtpd_protocol::{Reply, replies};

use super::input::Input;
use super::{Flow, Session};
use crate::handler::{Hook, Password};

/// The pause before a failed attempt is answered: guessing passwords is slow.
const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failed attempts a session before it is closed.
const MAX_FAILURES: u32 = 3;

/// A response line, or how the session must go on instead.
type Response = Result<String, Flow>;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn auth(&mut self, mechanism: &str, initial: Option<&str>) -> std::io::Result<Flow> {
        let Some(auth) = self.ctx.access.auth.clone() else {
            return Ok(self.client_error(&replies::AUTH_NOT_AVAILABLE));
        };
        if !self.stream.is_tls() {
            // Passwords never cross in the clear, not even wrong ones.
            return Ok(self.client_error(&replies::AUTH_NEEDS_TLS));
        }
        if self.greeting.is_none() {
            return Ok(self.client_error(&replies::NEED_HELO));
        }
        if self.facts.authenticated.is_some() {
            return Ok(self.client_error(&replies::AUTH_ALREADY));
        }
        if self.transaction.is_some() {
            return Ok(self.client_error(&replies::AUTH_IN_TRANSACTION));
        }
        let credentials = match mechanism {
            "PLAIN" => match self.response(initial, "").await? {
                Ok(line) => sasl::decode_response(&line).and_then(|r| sasl::decode_plain(&r)),
                Err(flow) => return Ok(flow),
            },
            "LOGIN" => match self.login(initial).await? {
                Ok(credentials) => credentials,
                Err(flow) => return Ok(flow),
            },
            _ => return Ok(self.client_error(&replies::AUTH_UNKNOWN_MECHANISM)),
        };
        let credentials = match credentials {
            Ok(credentials) => credentials,
            Err(SaslError::Cancelled) => return Ok(self.client_error(&replies::AUTH_CANCELLED)),
            Err(_) => return Ok(self.client_error(&replies::AUTH_MALFORMED)),
        };
        // Plugins with the auth hook first (a tenant's own user store), then the table.
        let hook = Hook::Auth {
            identity: &credentials.identity,
            password: Password(&credentials.password),
        };
        let refusal = match self.ask(hook).await {
            Some(reply) if reply.is_positive() => None,
            // Deferred (a user store that is down, a plugin that failed): not a failure.
            Some(reply) if reply.code() < 500 => return Ok(self.reply(&reply)),
            Some(reply) => Some(reply),
            None if auth.verify(&credentials).await => None,
            None => Some(replies::AUTH_FAILED),
        };
        let Some(refusal) = refusal else {
            tracing::info!(peer = %self.peer, identity = credentials.identity, "authenticated");
            self.learn(|facts| facts.authenticated = Some(credentials.identity));
            return Ok(self.reply(&replies::AUTH_OK));
        };
        self.auth_failures += 1;
        tracing::warn!(peer = %self.peer, identity = credentials.identity, failures = self.auth_failures, "authentication failed");
        tokio::time::sleep(FAILURE_DELAY).await;
        if self.auth_failures >= MAX_FAILURES {
            return Ok(self.close_with(&replies::AUTH_TOO_MANY_FAILURES));
        }
        Ok(self.reply(&refusal))
    }

    /// LOGIN: the user name (perhaps sent along with AUTH), then the password.
    async fn login(&mut self, initial: Option<&str>) -> std::io::Result<Result<Result<Credentials, SaslError>, Flow>> {
        let user = match self.response(initial, sasl::LOGIN_USERNAME).await? {
            Ok(line) => line,
            Err(flow) => return Ok(Err(flow)),
        };
        let identity = match sasl::decode_response(&user).and_then(|r| sasl::login_field(&r)) {
            Ok(identity) => identity,
            Err(e) => return Ok(Ok(Err(e))),
        };
        let password = match self.response(None, sasl::LOGIN_PASSWORD).await? {
            Ok(line) => line,
            Err(flow) => return Ok(Err(flow)),
        };
        let password = sasl::decode_response(&password).and_then(|r| sasl::login_field(&r));
        Ok(Ok(password.map(|password| Credentials { identity, password })))
    }

    /// The client's response: the one it sent with AUTH, else the answer to a `334`
    /// challenge.
    async fn response(&mut self, initial: Option<&str>, challenge: &'static str) -> std::io::Result<Response> {
        if let Some(initial) = initial {
            return Ok(Ok(initial.to_owned()));
        }
        self.send(&Reply::new(334, None, challenge));
        Ok(match self.next_command().await? {
            Input::Line(line, len) => Ok(String::from_utf8_lossy(&line[..len]).into_owned()),
            Input::TooLong => Err(self.client_error(&replies::AUTH_MALFORMED)),
            Input::TimedOut => Err(self.close_with(&replies::TIMEOUT)),
            Input::ShuttingDown => Err(self.close_with(&replies::SHUTTING_DOWN)),
            Input::Closed => Err(Flow::Gone),
        })
    }
}
