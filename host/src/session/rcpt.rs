//! RCPT: adds a recipient to the transaction, up to the recipient limit, unless the
//! handlers refuse it.

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Address, RcptParams, replies};

use super::ask::Answer;
use super::{Flow, Session};
use crate::handler::RcptOptions;
use crate::hook::Hook;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn rcpt(&mut self, to: Address, params: RcptParams) -> Flow {
        let max_recipients = self.ctx.limits.max_recipients;
        let Some(transaction) = &self.transaction else {
            return self.client_error(&replies::NEED_MAIL);
        };
        if !params.raw.is_empty() && !self.greeting.as_ref().is_some_and(|g| g.extended) {
            return self.client_error(&replies::PARAMS_NEED_EHLO);
        }
        if !to.is_ascii() && !transaction.params.smtputf8 {
            return self.client_error(&replies::NON_ASCII_NEEDS_SMTPUTF8);
        }
        if transaction.recipients.len() >= max_recipients {
            // RFC 5321 4.5.3.1.10: 452, and the client sends the rest in another transaction.
            return self.reply(&replies::TOO_MANY_RECIPIENTS);
        }
        let hook = Hook::Rcpt {
            to: to.as_str(),
            options: &params.raw,
        };
        let accepted = match self.ask(hook).await {
            Answer::Refused(refusal) => return self.reply(&refusal),
            Answer::Accepted(reply) => reply,
            Answer::Pass => None,
        };
        if let Some(transaction) = &mut self.transaction {
            if !params.raw.is_empty() {
                transaction.rcpt_options.push(RcptOptions {
                    to: to.clone(),
                    options: params.raw,
                });
            }
            transaction.recipients.push(to);
        }
        self.reply(accepted.as_ref().unwrap_or(&replies::RECIPIENT_OK))
    }
}
