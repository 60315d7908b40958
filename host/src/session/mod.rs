//! One SMTP session: the state, the command loop and the one dispatch `match`. Each verb
//! lives in its own file as an `impl Session` block. Generic over the stream, so tests
//! drive it over an in-memory pipe.

mod ask;
mod auth;
mod bdat;
mod client_address;
mod data;
mod greeting;
mod incoming;
mod input;
mod mail;
mod rcpt;
mod read_waits;
mod rset;
mod starttls;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use wasmtpd_protocol::{Address, ChunkFraming, Command, MailParams, Reply, chunk_framing, parse_command, replies};

use crate::handler::{RcptOptions, SessionFacts, SessionHandlers};
use crate::hook::Hook;
use crate::listener::ListenerContext;
use crate::rate::CommandBudget;
use crate::session_stream::SessionStream;
use client_address::ClientAddress;
use input::{ChunkRead, Input};
use read_waits::ReadWaits;

/// Facts about the client's greeting, kept across transactions.
struct Greeting {
    /// EHLO rather than HELO: extensions and enhanced status codes are on.
    extended: bool,
    /// The name the client gave, for the trace.
    name: String,
}

/// One mail transaction: from MAIL to the end of DATA, or RSET.
struct Transaction {
    from: Option<Address>,
    params: MailParams,
    recipients: Vec<Address>,
    /// The RCPT parameters of the recipients that came with any.
    rcpt_options: Vec<RcptOptions>,
    /// The message so far, once BDAT has started sending it.
    chunks: Option<bdat::Chunks>,
}

/// Whether the session goes on after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    /// Send what is queued, then close.
    Close,
    /// The client is gone: nothing more to send.
    Gone,
}

pub struct Session<S> {
    stream: SessionStream<S>,
    input: BytesMut,
    output: Vec<u8>,
    /// Dropping the rest of an over-long command line.
    discarding: bool,
    ctx: Arc<ListenerContext>,
    peer: ClientAddress,
    greeting: Option<Greeting>,
    transaction: Option<Transaction>,
    errors: u32,
    shutdown: CancellationToken,
    /// The deadline and the shutdown each read waits for beside its data.
    waits: ReadWaits,
    /// This session's handlers (plugin instances), asked at each hook and given each message.
    handlers: Box<dyn SessionHandlers>,
    /// The commands a minute its client address may send, if limited.
    command_budget: Option<CommandBudget>,
    /// What the session learnt about its client (TLS, AUTH), as the handlers were told.
    facts: Arc<SessionFacts>,
    /// AUTH attempts that failed.
    auth_failures: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn new(stream: S, peer: SocketAddr, ctx: Arc<ListenerContext>, shutdown: CancellationToken) -> Session<S> {
        let handlers = ctx.handlers.session(peer);
        Session {
            stream: SessionStream::Plain(stream),
            input: BytesMut::new(),
            output: Vec::new(),
            discarding: false,
            ctx,
            peer: ClientAddress::new(peer),
            greeting: None,
            transaction: None,
            errors: 0,
            waits: ReadWaits::new(&shutdown),
            shutdown,
            handlers,
            command_budget: None,
            facts: Arc::default(),
            auth_failures: 0,
        }
    }

    /// Updates what the session knows of its client and tells the handlers.
    fn learn(&mut self, update: impl FnOnce(&mut SessionFacts)) {
        update(Arc::make_mut(&mut self.facts));
        self.handlers.learn(Arc::clone(&self.facts));
    }

    pub fn with_command_budget(mut self, budget: Option<CommandBudget>) -> Session<S> {
        self.command_budget = budget;
        self
    }

    /// Input that came before the session started (behind a PROXY header): read first.
    pub fn with_early_input(mut self, input: BytesMut) -> Session<S> {
        self.input = input;
        self
    }

    /// Serves the session until QUIT, a closing error, shutdown or the client leaving,
    /// then tells the handlers it is over.
    pub async fn run(mut self) -> std::io::Result<()> {
        self.ctx.metrics.session_started();
        let result = self.serve().await;
        let _ = self.handlers.hook(Hook::Quit).await;
        result
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        if let Some(tls) = self.ctx.access.tls.clone().filter(|t| t.implicit)
            && !self.start_tls(&tls).await
        {
            return Ok(());
        }
        if !self.ctx.limits.greeting_delay().is_zero() && !self.waited_for_greeting().await? {
            return Ok(());
        }
        if let Some(refusal) = self.ask(Hook::Connect).await.refusal() {
            tracing::info!(peer = %self.peer, reply = %refusal.text(), "connection refused by a handler");
            self.send(&refusal);
            self.flush().await?;
            return self.stream.finish().await;
        }
        let ctx = Arc::clone(&self.ctx);
        self.send(&ctx.greeting);
        loop {
            let input = self.next_command().await?;
            let over_rate = match (&input, &self.command_budget) {
                (Input::Line(_, _), Some(budget)) => !budget.allow().await,
                _ => false,
            };
            let flow = match input {
                Input::Line(_, _) if over_rate => {
                    tracing::info!(peer = %self.peer, "closing a session over its address's command rate");
                    self.close_with(&replies::COMMAND_RATE)
                }
                Input::Line(line, len) => self.handle_line(&line[..len]).await?,
                Input::TooLong { bdat: true } => self.close_with(&replies::CHUNK_UNFRAMED),
                Input::TooLong { bdat: false } => self.client_error(&replies::LINE_TOO_LONG),
                Input::BareLf(line, len) => self.refuse_line(&line[..len], &replies::BARE_LF_COMMAND).await?,
                Input::TimedOut => self.close_with(&replies::TIMEOUT),
                Input::ShuttingDown => self.close_with(&replies::SHUTTING_DOWN),
                Input::Closed => {
                    if self.transaction.is_some() {
                        tracing::info!(peer = %self.peer, "client left in the middle of a transaction");
                    }
                    return Ok(());
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    self.flush().await?;
                    return self.stream.finish().await;
                }
                Flow::Gone => return Ok(()),
            }
        }
    }

    /// The pause before the greeting: true if the client kept quiet through it. One that
    /// talked is refused and the session closed.
    async fn waited_for_greeting(&mut self) -> std::io::Result<bool> {
        let talked = !self.input.is_empty()
            || match tokio::time::timeout(self.ctx.limits.greeting_delay(), self.stream.read_buf(&mut self.input)).await
            {
                Err(_quiet) => false,
                Ok(Ok(0)) => return Ok(false),
                Ok(Ok(_)) => true,
                Ok(Err(e)) => return Err(e),
            };
        if talked {
            tracing::info!(peer = %self.peer, "refused a client that talked before the greeting");
            self.send(&replies::EARLY_TALKER);
            self.flush().await?;
            self.stream.finish().await?;
        }
        Ok(!talked)
    }

    async fn handle_line(&mut self, line: &[u8]) -> std::io::Result<Flow> {
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(e) => return self.refuse_line(line, &e.reply()).await,
        };
        Ok(match command {
            Command::Helo(_) | Command::Ehlo(_) if self.ctx.lmtp => self.client_error(&replies::USE_LHLO),
            Command::Helo(name) => self.helo(name, false).await,
            Command::Ehlo(name) => self.helo(name, true).await,
            Command::Lhlo(name) if self.ctx.lmtp => self.helo(name, true).await,
            Command::Lhlo(_) => self.client_error(&replies::UNRECOGNIZED),
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, params } => self.rcpt(to, params).await,
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => self.rset().await,
            Command::Noop => self.reply(&replies::OK),
            Command::Quit => self.close_with(&replies::BYE),
            Command::Vrfy(_) => self.reply(&replies::CANNOT_VRFY),
            Command::Expn => self.reply(&replies::EXPN_NOT_IMPLEMENTED),
            Command::Help(topic) => self.reply(&wasmtpd_protocol::help(topic)),
            Command::StartTls => self.starttls().await?,
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial).await?,
        })
    }

    /// Refuses a command line with `reply`. A BDAT line's chunk follows it whatever the
    /// answer: it is read and dropped first, so that none of it is taken for a command;
    /// when its size cannot be read, the session cannot go on.
    async fn refuse_line(&mut self, line: &[u8], reply: &Reply) -> std::io::Result<Flow> {
        match chunk_framing(line) {
            None => Ok(self.client_error(reply)),
            Some(ChunkFraming::Unknown) => {
                tracing::info!(peer = %self.peer, "closing: a BDAT command whose chunk size cannot be read");
                Ok(self.close_with(&replies::CHUNK_UNFRAMED))
            }
            Some(ChunkFraming::Size(size)) => match self.read_chunk(size, None).await? {
                ChunkRead::Done => Ok(self.client_error(reply)),
                ChunkRead::Closed => Ok(Flow::Gone),
                ChunkRead::TimedOut => Ok(self.close_with(&replies::TIMEOUT)),
            },
        }
    }

    /// Queues a reply; it is written before the session next waits for input (RFC 2920).
    fn send(&mut self, reply: &Reply) {
        let extended = self.greeting.as_ref().is_some_and(|g| g.extended);
        reply.write_to(&mut self.output, extended);
    }

    fn reply(&mut self, reply: &Reply) -> Flow {
        self.send(reply);
        Flow::Continue
    }

    fn close_with(&mut self, reply: &Reply) -> Flow {
        self.send(reply);
        Flow::Close
    }

    /// A reply to a client's mistake; too many of them end the session.
    fn client_error(&mut self, reply: &Reply) -> Flow {
        self.send(reply);
        self.errors += 1;
        if self.errors >= self.ctx.limits.max_errors {
            tracing::info!(peer = %self.peer, errors = self.errors, "closing a session with too many errors");
            return self.close_with(&replies::TOO_MANY_ERRORS);
        }
        Flow::Continue
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        self.stream.flush().await
    }
}
