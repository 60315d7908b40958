//! Reading a server's replies off a stream, for the host's own SMTP clients: the relay's
//! upstream connection and `--deliver`'s scripted client.

use tokio::io::{AsyncRead, AsyncReadExt};
use wasmtpd_protocol::{ServerReply, parse_reply};

/// What came in past the last whole reply is kept for the next.
#[derive(Default)]
pub struct ReplyReader {
    input: Vec<u8>,
}

impl ReplyReader {
    /// The next whole reply. A malformed one is `InvalidData`; the server closing the
    /// connection first is `UnexpectedEof`.
    pub async fn next<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> std::io::Result<ServerReply> {
        loop {
            match parse_reply(&self.input) {
                Ok(Some((reply, used))) => {
                    self.input.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }
}
