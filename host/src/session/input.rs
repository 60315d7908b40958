//! Reading: the next command line, or message data after `354`, with the idle and
//! DATA timeouts and the shutdown signal. Replies are flushed before every wait.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use wasmtpd_protocol::{DataReceiver, DataSummary, Frame, chunk_framing, next_command_line, skip_to_line_end};

use super::Session;
use super::bdat::Chunks;
use super::incoming::Incoming;
use crate::config::BareLf;

/// What came in while waiting for a command.
pub(super) enum Input {
    /// A command line: `line[..len]` is the line without its ending.
    Line(Bytes, usize),
    /// A line over the limit (dropped); `bdat` if it was a BDAT command, whose chunk
    /// cannot be framed then.
    TooLong {
        bdat: bool,
    },
    /// A line ended by LF without CR, on a listener that refuses them: `line[..len]`.
    BareLf(Bytes, usize),
    TimedOut,
    ShuttingDown,
    Closed,
}

/// What came in while receiving message data.
pub(super) enum DataInput {
    Message(Incoming, DataSummary),
    TimedOut,
    Closed,
}

/// How reading a BDAT chunk ended.
pub(super) enum ChunkRead {
    Done,
    TimedOut,
    Closed,
}

enum Read {
    Some,
    Eof,
    TimedOut,
    ShuttingDown,
}

/// Room kept free in the input buffer before a read: small, so idle sessions stay small.
const COMMAND_READ_ROOM: usize = 1024;
/// Room during DATA, where bigger reads mean fewer of them.
const DATA_READ_ROOM: usize = 64 * 1024;
/// An input buffer that grew past this during DATA is given back afterwards.
const KEEP_INPUT_CAPACITY: usize = 16 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn next_command(&mut self) -> std::io::Result<Input> {
        loop {
            // No new transaction starts once shutdown began; one in flight may finish.
            if self.shutdown.is_cancelled() && self.transaction.is_none() {
                return Ok(Input::ShuttingDown);
            }
            if self.discarding {
                match skip_to_line_end(&self.input) {
                    Some(n) => {
                        self.input.advance(n);
                        self.discarding = false;
                    }
                    None => self.input.clear(),
                }
            }
            if !self.discarding {
                match next_command_line(&self.input, self.ctx.limits.max_command_line) {
                    Frame::Line { len, consumed } if consumed == len + 1 && self.ctx.bare_lf == BareLf::Reject => {
                        return Ok(Input::BareLf(self.input.split_to(consumed).freeze(), len));
                    }
                    Frame::Line { len, consumed } => {
                        return Ok(Input::Line(self.input.split_to(consumed).freeze(), len));
                    }
                    Frame::TooLong { consumed } => {
                        let bdat = chunk_framing(&self.input).is_some();
                        self.input.advance(consumed);
                        return Ok(Input::TooLong { bdat });
                    }
                    Frame::TooLongUnfinished => {
                        let bdat = chunk_framing(&self.input).is_some();
                        self.input.clear();
                        self.discarding = true;
                        return Ok(Input::TooLong { bdat });
                    }
                    Frame::Incomplete => {}
                }
            }
            self.flush().await?;
            let stop_on_shutdown = self.transaction.is_none();
            // Between BDAT chunks the message so far holds room: the client gets the data
            // timeout to go on, as inside DATA, not the idle one.
            let timeout = match &self.transaction {
                Some(t) if t.chunks.is_some() => self.ctx.limits.data_timeout(),
                _ => self.ctx.limits.idle_timeout(),
            };
            match self.read_more(COMMAND_READ_ROOM, timeout, stop_on_shutdown).await? {
                Read::Some => {}
                Read::Eof => return Ok(Input::Closed),
                Read::TimedOut => return Ok(Input::TimedOut),
                Read::ShuttingDown => return Ok(Input::ShuttingDown),
            }
        }
    }

    /// Receives one message after `354` (which the caller queued) up to `<CRLF>.<CRLF>`.
    pub(super) async fn receive_data(&mut self, size_hint: usize) -> std::io::Result<DataInput> {
        let (max_size, max_line) = (self.ctx.limits.max_message_size, self.ctx.limits.max_text_line);
        let mut receiver = DataReceiver::new(max_size, max_line);
        let hint = size_hint.min(max_size).min(DATA_READ_ROOM * 4);
        let mut incoming = Incoming::new(Arc::clone(&self.ctx.room), hint);
        let data_timeout = self.ctx.limits.data_timeout();
        loop {
            let end = receiver.feed(&self.input, incoming.buffer());
            incoming.settle().await;
            if let Some(n) = end {
                self.input.advance(n);
                self.give_back_input_buffer();
                return Ok(DataInput::Message(incoming, receiver.summary()));
            }
            self.input.clear();
            self.flush().await?;
            match self.read_more(DATA_READ_ROOM, data_timeout, false).await? {
                // Shutdown does not interrupt DATA (it was not asked for here).
                Read::Some | Read::ShuttingDown => {}
                Read::Eof => return Ok(DataInput::Closed),
                Read::TimedOut => return Ok(DataInput::TimedOut),
            }
        }
    }

    /// Reads the `size` octets of a BDAT chunk that follow its command line into the
    /// message so far, or drops them (`None`: the chunk is refused).
    pub(super) async fn read_chunk(
        &mut self,
        size: u64,
        mut chunks: Option<&mut Chunks>,
    ) -> std::io::Result<ChunkRead> {
        let data_timeout = self.ctx.limits.data_timeout();
        let mut left = size;
        loop {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(self.input.len());
            if let Some(chunks) = chunks.as_deref_mut() {
                chunks.feed(&self.input[..n]).await;
            }
            self.input.advance(n);
            left -= n as u64;
            if left == 0 {
                self.give_back_input_buffer();
                return Ok(ChunkRead::Done);
            }
            self.flush().await?;
            match self.read_more(DATA_READ_ROOM, data_timeout, false).await? {
                // Shutdown does not interrupt a chunk, as it does not interrupt DATA.
                Read::Some | Read::ShuttingDown => {}
                Read::Eof => return Ok(ChunkRead::Closed),
                Read::TimedOut => return Ok(ChunkRead::TimedOut),
            }
        }
    }

    async fn read_more(&mut self, room: usize, timeout: Duration, stop_on_shutdown: bool) -> std::io::Result<Read> {
        if self.input.capacity() - self.input.len() < room / 2 {
            self.input.reserve(room);
        }
        let (deadline, shutdown) = self.waits.arm(timeout);
        tokio::select! {
            biased;
            () = shutdown, if stop_on_shutdown => Ok(Read::ShuttingDown),
            read = self.stream.read_buf(&mut self.input) => match read {
                Ok(0) => Ok(Read::Eof),
                Ok(_) => Ok(Read::Some),
                Err(e) => Err(e),
            },
            () = deadline => Ok(Read::TimedOut),
        }
    }

    /// After a large message, keep what is pipelined behind it in a small buffer again,
    /// so that an idle session does not hold on to a message-sized allocation.
    fn give_back_input_buffer(&mut self) {
        if self.input.capacity() > KEEP_INPUT_CAPACITY {
            let mut small = BytesMut::with_capacity(self.input.len().max(COMMAND_READ_ROOM));
            small.extend_from_slice(&self.input);
            self.input = small;
        }
    }
}
