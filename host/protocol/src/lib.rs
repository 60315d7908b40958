//! The SMTP server protocol of wasmtpd as pure functions over bytes: command lines parsed
//! into typed commands, replies as values with one writer, and the DATA receiver that
//! frames messages strictly. No sockets here: the host's session does the I/O.

pub mod address;
pub mod chunk;
pub mod client;
pub mod command;
pub mod dsn;
pub mod header;
pub mod help;
pub mod line;
#[cfg(any(test, feature = "fuzzing"))]
pub mod oracle;
pub mod proxy_header;
pub mod receiver;
pub mod reply;
pub mod sasl;
pub mod trace;

pub use address::{Address, PathError};
pub use chunk::ChunkReceiver;
pub use client::{ReplyError, ServerReply, data_to_send, parse_reply, with_crlf_endings};
pub use command::{
    Body, ChunkFraming, Command, CommandError, MailParams, RcptParams, chunk_framing, esmtp_param, parse_command,
};
pub use help::help;
pub use line::{Frame, next_command_line, skip_to_line_end};
pub use proxy_header::{ProxyHeader, ProxyHeaderError, parse_proxy_header};
pub use receiver::{DataReceiver, DataSummary};
pub use reply::{BadReply, EnhancedCode, Reply, replies};
pub use trace::received_count;

#[cfg(test)]
mod tests;
