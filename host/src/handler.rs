//! What a finished message is handed to: smtpd's `process_message` as a Rust trait, and
//! chains of handlers where the first reply ends the chain.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use wasmtpd_protocol::Address;

/// A received message with its envelope: smtpd's `process_message` arguments.
#[derive(Clone, Debug)]
pub struct Message {
    /// The client's address.
    pub peer: SocketAddr,
    /// The envelope sender; `None` for the null reverse path `<>`.
    pub mail_from: Option<Address>,
    pub rcpt_to: Vec<Address>,
    /// The message as received: CRLF line endings, dot-stuffing removed, the final CRLF kept.
    pub data: Vec<u8>,
    /// MAIL parameters as sent, upper-cased (smtpd's `mail_options`, e.g. `SIZE=236`).
    pub mail_options: Vec<String>,
    /// RCPT parameters (smtpd's `rcpt_options`); none is implemented yet, so always empty.
    pub rcpt_options: Vec<String>,
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Option<String>>> + Send + 'a>>;

/// smtpd's contract: `Ok(None)` means `250 OK`; `Ok(Some(reply))` is the reply to send
/// (checked by the session); `Err` means the handler failed, and the client gets a
/// `451` tempfail so that nothing is lost.
pub trait MessageHandler: Send + Sync {
    fn name(&self) -> &str;
    fn process_message<'a>(&'a self, message: &'a Message) -> HandlerFuture<'a>;
}

/// Handlers run in order; the first that answers `Some(reply)` ends the chain.
#[derive(Clone, Default)]
pub struct Chain(Vec<Arc<dyn MessageHandler>>);

/// The first handler that answered, and its answer: a reply string, or its failure.
pub struct ChainReply<'a> {
    pub handler: &'a str,
    pub result: anyhow::Result<String>,
}

impl Chain {
    pub fn new(handlers: Vec<Arc<dyn MessageHandler>>) -> Chain {
        Chain(handlers)
    }

    pub async fn process_message(&self, message: &Message) -> Option<ChainReply<'_>> {
        for handler in &self.0 {
            let result = match handler.process_message(message).await {
                Ok(None) => continue,
                Ok(Some(reply)) => Ok(reply),
                Err(e) => Err(e),
            };
            return Some(ChainReply {
                handler: handler.name(),
                result,
            });
        }
        None
    }
}

/// Accepts and discards every message (smtp-sink's job; for benchmarks).
pub struct Sink;

impl MessageHandler for Sink {
    fn name(&self) -> &str {
        "sink"
    }

    fn process_message<'a>(&'a self, _message: &'a Message) -> HandlerFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}
