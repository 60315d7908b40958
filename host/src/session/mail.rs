//! MAIL: starts a transaction after checking sequence, parameters and declared size,
//! then asks the handlers.

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Address, MailParams, replies};

use super::ask::Answer;
use super::{Flow, Session, Transaction};
use crate::hook::Hook;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn mail(&mut self, from: Option<Address>, params: MailParams) -> Flow {
        let Some(greeting) = &self.greeting else {
            return self.client_error(&replies::NEED_HELO);
        };
        if self.transaction.is_some() {
            return self.client_error(&replies::NESTED_MAIL);
        }
        if self.ctx.access.auth.as_ref().is_some_and(|a| a.required) && self.facts.authenticated.is_none() {
            return self.client_error(&replies::AUTH_REQUIRED);
        }
        if !greeting.extended && !params.raw.is_empty() {
            return self.client_error(&replies::PARAMS_NEED_EHLO);
        }
        if params
            .size
            .is_some_and(|size| size > self.ctx.limits.max_message_size as u64)
        {
            // RFC 1870 6.1: a permanent refusal of this message; the session goes on.
            return self.reply(&replies::SIZE_EXCEEDED);
        }
        if from.as_ref().is_some_and(|a| !a.is_ascii()) && !params.smtputf8 {
            return self.client_error(&replies::NON_ASCII_NEEDS_SMTPUTF8);
        }
        let hook = Hook::Mail {
            from: from.as_ref().map_or("", Address::as_str),
            options: &params.raw,
            size: params.size,
        };
        let accepted = match self.ask(hook).await {
            Answer::Refused(refusal) => return self.reply(&refusal),
            Answer::Accepted(reply) => reply,
            Answer::Pass => None,
        };
        self.transaction = Some(Transaction {
            from,
            params,
            recipients: Vec::new(),
            rcpt_options: Vec::new(),
            chunks: None,
        });
        self.reply(accepted.as_ref().unwrap_or(&replies::SENDER_OK))
    }
}
