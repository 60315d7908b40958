//! AUTH (RFC 4954) with PLAIN and LOGIN, over TLS only: the 334 exchange, the check
//! (the plugins' auth hook, then the listener's users), and what a failure costs the
//! client (a pause, and the session after three).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::sasl::{self, Credentials, SaslError};
use wasmtpd_protocol::{Reply, replies};

use super::ask::Answer;
use super::input::Input;
use super::{Flow, Session};
use crate::hook::{Hook, Password};

/// The pause before a failed attempt is answered: guessing passwords is slow.
const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failed attempts a session before it is closed.
const MAX_FAILURES: u32 = 3;

/// A decoded response, or how the session must go on instead.
type Response = Result<Vec<u8>, Flow>;

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
            return Ok(self.client_error(&replies::TRANSACTION_IN_PROGRESS));
        }
        let credentials = match self.credentials(mechanism, initial).await? {
            Ok(credentials) => credentials,
            Err(flow) => return Ok(flow),
        };
        // Plugins with the auth hook first (a tenant's own user store), then the table.
        let hook = Hook::Auth {
            identity: &credentials.identity,
            password: Password(&credentials.password),
        };
        let refusal = match self.ask(hook).await {
            Answer::Accepted(_) => None,
            // Deferred (a user store that is down, a plugin that failed): not a failure.
            Answer::Refused(reply) if !reply.is_permanent() => return Ok(self.reply(&reply)),
            Answer::Refused(reply) => Some(reply),
            Answer::Pass if auth.verify(&credentials).await => None,
            Answer::Pass => Some(replies::AUTH_FAILED),
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

    /// What the client proves with `mechanism`, or how the session goes on instead (it
    /// cancelled, sent something that does not decode, or left).
    async fn credentials(
        &mut self,
        mechanism: &str,
        initial: Option<&str>,
    ) -> std::io::Result<Result<Credentials, Flow>> {
        Ok(match mechanism {
            "PLAIN" => match self.response(initial, "").await? {
                Ok(response) => sasl::decode_plain(&response).map_err(|e| self.sasl_refusal(e)),
                Err(flow) => Err(flow),
            },
            // The user name (perhaps sent along with AUTH), then the password.
            "LOGIN" => {
                let identity = match self.response(initial, sasl::LOGIN_USERNAME).await? {
                    Ok(response) => sasl::login_field(&response),
                    Err(flow) => return Ok(Err(flow)),
                };
                let identity = match identity {
                    Ok(identity) => identity,
                    Err(e) => return Ok(Err(self.sasl_refusal(e))),
                };
                match self.response(None, sasl::LOGIN_PASSWORD).await? {
                    Ok(response) => sasl::login_field(&response)
                        .map(|password| Credentials { identity, password })
                        .map_err(|e| self.sasl_refusal(e)),
                    Err(flow) => Err(flow),
                }
            }
            _ => Err(self.client_error(&replies::AUTH_UNKNOWN_MECHANISM)),
        })
    }

    /// The client's response, decoded: the one it sent with AUTH, else its answer to a
    /// `334` challenge.
    async fn response(&mut self, initial: Option<&str>, challenge: &'static str) -> std::io::Result<Response> {
        let line = match initial {
            Some(initial) => initial.to_owned(),
            None => {
                self.send(&Reply::new(334, None, challenge));
                match self.next_command().await? {
                    Input::Line(line, len) => String::from_utf8_lossy(&line[..len]).into_owned(),
                    Input::TooLong { .. } | Input::BareLf(..) => {
                        return Ok(Err(self.client_error(&replies::AUTH_MALFORMED)));
                    }
                    Input::TimedOut => return Ok(Err(self.close_with(&replies::TIMEOUT))),
                    Input::ShuttingDown => return Ok(Err(self.close_with(&replies::SHUTTING_DOWN))),
                    Input::Closed => return Ok(Err(Flow::Gone)),
                }
            }
        };
        Ok(sasl::decode_response(&line).map_err(|e| self.sasl_refusal(e)))
    }

    fn sasl_refusal(&mut self, error: SaslError) -> Flow {
        match error {
            SaslError::Cancelled => self.client_error(&replies::AUTH_CANCELLED),
            _ => self.client_error(&replies::AUTH_MALFORMED),
        }
    }
}
