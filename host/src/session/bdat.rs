//! BDAT (RFC 3030 CHUNKING): the message in chunks of declared size. Each chunk is read
//! whole whatever its answer (the client sent it behind the command), then answered; the
//! last one ends the message as DATA's end does. A refused chunk ends the transaction
//! (RFC 3030 2: the client sends no more, and chunks it had pipelined get `503`).

use tokio::io::{AsyncRead, AsyncWrite};
use wasmtpd_protocol::{Body, ChunkReceiver, EnhancedCode, Reply, replies};

use std::sync::Arc;

use super::incoming::Incoming;
use super::input::ChunkRead;
use super::{Flow, Session};
use crate::hook::Hook;

/// The message so far, between chunks.
pub(super) struct Chunks {
    receiver: ChunkReceiver,
    incoming: Incoming,
}

impl Chunks {
    /// Feeds the next octets of the chunk being read into the message.
    pub(super) async fn feed(&mut self, octets: &[u8]) {
        self.receiver.feed(octets, self.incoming.buffer());
        self.incoming.settle().await;
    }
}

/// Why a chunk is not taken.
enum Refused {
    /// Out of sequence: a client's mistake, counted as one.
    Mistake(Reply),
    /// A handler refused the message at its first chunk: the transaction ends.
    Ended(Reply),
}

/// Room reserved for a message before its size is known.
const FIRST_RESERVE: usize = 256 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn bdat(&mut self, size: u64, last: bool) -> std::io::Result<Flow> {
        let mut chunks = self.chunks_to_extend().await;
        let read = self.read_chunk(size, chunks.as_mut().ok()).await?;
        match read {
            ChunkRead::Done => {}
            ChunkRead::Closed => {
                if self.transaction.is_some() {
                    tracing::info!(peer = %self.peer, "client left during BDAT; nothing was accepted");
                }
                return Ok(Flow::Gone);
            }
            ChunkRead::TimedOut => return Ok(self.close_with(&replies::TIMEOUT)),
        }
        let Chunks { receiver, mut incoming } = match chunks {
            Ok(chunks) => chunks,
            Err(Refused::Mistake(reply)) => return Ok(self.client_error(&reply)),
            Err(Refused::Ended(reply)) => {
                // LMTP: BDAT LAST is answered for each recipient, whatever the answer.
                let recipients = self.transaction.take().map_or(1, |t| self.replies_owed(&t, last));
                for _ in 0..recipients {
                    self.send(&reply);
                }
                return Ok(Flow::Continue);
            }
        };
        if last || receiver.too_big() {
            let Some(transaction) = self.transaction.take() else {
                return Ok(Flow::Continue);
            };
            let summary = receiver.finish(incoming.buffer());
            return Ok(self.conclude(transaction, incoming, summary, last).await);
        }
        if let Some(transaction) = &mut self.transaction {
            transaction.chunks = Some(Chunks { receiver, incoming });
        }
        let ok = EnhancedCode {
            class: 2,
            subject: 0,
            detail: 0,
        };
        Ok(self.reply(&Reply::new(250, Some(ok), format!("{size} octets received"))))
    }

    /// The message so far, or (at the first chunk, once the handlers let it come) a new
    /// one; else why this chunk is not taken.
    async fn chunks_to_extend(&mut self) -> Result<Chunks, Refused> {
        let transaction = match &mut self.transaction {
            None => return Err(Refused::Mistake(replies::NEED_MAIL)),
            Some(t) if t.recipients.is_empty() => return Err(Refused::Mistake(replies::NEED_RCPT)),
            Some(t) => t,
        };
        if let Some(chunks) = transaction.chunks.take() {
            return Ok(chunks);
        }
        let binary = transaction.params.body == Some(Body::BinaryMime);
        let declared = transaction.params.size.unwrap_or(0);
        if let Some(refusal) = self.ask(Hook::Data).await.refusal() {
            return Err(Refused::Ended(refusal));
        }
        let limits = &self.ctx.limits;
        let max_line = (!binary).then_some(limits.max_text_line);
        let reserve = usize::try_from(declared)
            .unwrap_or(usize::MAX)
            .min(limits.max_message_size);
        Ok(Chunks {
            receiver: ChunkReceiver::new(limits.max_message_size, max_line),
            incoming: Incoming::new(Arc::clone(&self.ctx.room), reserve.min(FIRST_RESERVE)),
        })
    }
}
