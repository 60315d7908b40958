//! DATA: receives the message, refuses what breaks the limits or the framing rules, and
//! hands the rest to the handler chain. The transaction ends here whatever happens. The
//! end of a message sent by BDAT comes here too ([`Session::conclude`]).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Body, DataSummary, Reply, received_count, replies};

use super::incoming::Incoming;
use super::input::DataInput;
use super::{Flow, Session, Transaction};
use time::OffsetDateTime;

use crate::handler::{Message, PluginError, PluginFailure, Verdict};
use crate::hook::Hook;
use crate::metrics::Outcome;
use crate::trace::{self, Protocol, Trace};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn data(&mut self) -> std::io::Result<Flow> {
        let size_hint = match &self.transaction {
            None => return Ok(self.client_error(&replies::NEED_MAIL)),
            Some(t) if t.recipients.is_empty() => return Ok(self.client_error(&replies::NEED_RCPT)),
            Some(t) if t.params.body == Some(Body::BinaryMime) => {
                return Ok(self.client_error(&replies::BINARYMIME_NEEDS_BDAT));
            }
            // RFC 3030 2: DATA and BDAT are not mixed in one transaction.
            Some(t) if t.chunks.is_some() => return Ok(self.client_error(&replies::DATA_AFTER_BDAT)),
            Some(t) => t.params.size.unwrap_or(0) as usize,
        };
        if let Some(refusal) = self.ask(Hook::Data).await.refusal() {
            // The transaction stays: the client may RSET or try DATA again.
            return Ok(self.reply(&refusal));
        }
        self.send(&replies::START_DATA);
        let received = self.receive_data(size_hint).await?;
        let Some(transaction) = self.transaction.take() else {
            return Ok(Flow::Continue);
        };
        Ok(match received {
            DataInput::Closed => {
                tracing::info!(peer = %self.peer, "client left during DATA; nothing was accepted");
                Flow::Gone
            }
            DataInput::TimedOut => self.close_with(&replies::TIMEOUT),
            DataInput::Message(body, summary) => self.conclude(transaction, body, summary, true).await,
        })
    }

    /// The end of a message, by DATA or BDAT: refused for what it is, or handed to the
    /// handlers, and answered.
    /// `ended`: the client ended the message (the end of DATA, `BDAT ... LAST`), rather
    /// than a chunk ending it by passing the size limit (answered once, as chunks are).
    pub(super) async fn conclude(
        &mut self,
        transaction: Transaction,
        incoming: Incoming,
        summary: DataSummary,
        ended: bool,
    ) -> Flow {
        let recipients = self.replies_owed(&transaction, ended);
        let replies = match refusal(&summary) {
            Some(refused) => vec![refused; recipients],
            None => match incoming
                .finish(self.ctx.handlers.body_copies(), self.ctx.limits.data_timeout())
                .await
            {
                Err(no_room) => {
                    tracing::warn!(tenant = %self.ctx.tenant, peer = %self.peer, size = summary.size, "deferred a message: {no_room}");
                    vec![replies::NO_ROOM; recipients]
                }
                // Room for the message and the plugins' copies, held until they are done (an
                // instance that took a big message is dropped after it).
                Ok((body, _held)) => match received_count(&body) {
                    hops if hops > self.ctx.limits.max_hops => {
                        tracing::info!(tenant = %self.ctx.tenant, peer = %self.peer, hops, "refused a message with too many Received fields: a loop");
                        vec![replies::TOO_MANY_HOPS; recipients]
                    }
                    _ => self.deliver(transaction, body).await,
                },
            },
        };
        self.ctx.metrics.message(Outcome::of_reply(worst(&replies)));
        for reply in &replies {
            self.send(reply);
        }
        Flow::Continue
    }

    /// The replies a message that has ended (or stopped) is answered with: on LMTP (RFC
    /// 2033 4.2) one for each recipient once the client ended it, a refusal included;
    /// otherwise one.
    pub(super) fn replies_owed(&self, transaction: &Transaction, ended: bool) -> usize {
        if self.ctx.lmtp && ended {
            transaction.recipients.len()
        } else {
            1
        }
    }

    /// The message to the handlers: its one reply, or on LMTP one for each recipient.
    async fn deliver(&mut self, transaction: Transaction, data: Vec<u8>) -> Vec<Reply> {
        let id = trace::new_id();
        let (helo, extended) = self
            .greeting
            .as_ref()
            .map_or(("", false), |g| (g.name.as_str(), g.extended));
        let received = Trace {
            helo,
            peer: self.peer.addr,
            by: &self.ctx.hostname,
            protocol: Protocol::of(
                extended,
                self.ctx.lmtp,
                self.stream.is_tls(),
                self.facts.authenticated.is_some(),
            ),
            id: &id,
            recipients: &transaction.recipients,
            date: OffsetDateTime::now_utc(),
        }
        .received();
        let message = Arc::new(Message {
            peer: self.peer.addr,
            mail_from: transaction.from,
            rcpt_to: transaction.recipients,
            data: data.into(),
            mail_options: transaction.params.raw,
            rcpt_options: transaction.rcpt_options,
            size_limit: self.ctx.limits.max_message_size,
            id,
            received,
        });
        let verdicts = if self.ctx.lmtp {
            let mut verdicts = self.handlers.process_message_each(&message).await;
            if verdicts.len() != message.rcpt_to.len() {
                // Never a reply too many or too few: the client would read them as the
                // answers to its next commands.
                tracing::error!(id = %message.id, verdicts = verdicts.len(), recipients = message.rcpt_to.len(), "handlers answered for the wrong number of recipients; deferring the rest");
                let failure = PluginFailure::new(PluginError::Other, "no answer for this recipient");
                let missing = Verdict::Failed {
                    handler: "host".into(),
                    failure,
                };
                verdicts.resize(message.rcpt_to.len(), missing);
            }
            verdicts
        } else {
            vec![self.handlers.process_message(&message).await]
        };
        let replies: Vec<Reply> = verdicts
            .into_iter()
            .map(|verdict| self.judge(verdict, "message").unwrap_or(replies::MESSAGE_ACCEPTED))
            .collect();
        let accepted = replies.iter().filter(|r| r.is_positive()).count();
        if accepted > 0 {
            tracing::info!(tenant = %self.ctx.tenant, peer = %self.peer, id = %message.id, size = message.data.len(), recipients = message.rcpt_to.len(), accepted, "message accepted");
        }
        replies
    }
}

/// The reply that counts for the metrics when recipients got different ones: a deferral
/// first, then a refusal.
fn worst(replies: &[Reply]) -> &Reply {
    let class = |wanted: u16| replies.iter().find(|r| r.code() / 100 == wanted);
    class(4).or_else(|| class(5)).unwrap_or(&replies[0])
}

/// The reply for a message that is refused for what it is, before any handler sees it.
fn refusal(summary: &DataSummary) -> Option<Reply> {
    if summary.too_big {
        Some(replies::SIZE_EXCEEDED)
    } else if summary.bare_line_ending {
        Some(replies::BARE_LINE_ENDING)
    } else if summary.long_line {
        Some(replies::TEXT_LINE_TOO_LONG)
    } else {
        None
    }
}
