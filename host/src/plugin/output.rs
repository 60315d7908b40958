//! A plugin's stdout and stderr: captured during a call, then printed on the host's
//! stdout in one write (debug-printer) or logged line by line, never mixed into the SMTP
//! stream and never lost (up to a cap per call).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Where a plugin's standard output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputTarget {
    /// The host's stdout, as written (the debug printer's job).
    Stdout,
    /// The host's log, a line at a time.
    Log,
}

/// Octets kept from one call's output; the rest is counted and reported.
const CAPTURE_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Captured>>);

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl Capture {
    /// What was written since the last call, and how many octets past the cap were lost.
    pub fn take(&self) -> (Vec<u8>, usize) {
        let mut captured = self.0.lock().unwrap();
        let dropped = std::mem::take(&mut captured.dropped);
        (std::mem::take(&mut captured.bytes), dropped)
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut captured = self.0.lock().unwrap();
        let room = CAPTURE_LIMIT.saturating_sub(captured.bytes.len());
        let kept = buf.len().min(room);
        captured.bytes.extend_from_slice(&buf[..kept]);
        captured.dropped += buf.len() - kept;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Sends what a call wrote where it belongs.
pub async fn deliver(plugin: &str, stream: &'static str, target: OutputTarget, capture: &Capture) {
    let (bytes, dropped) = capture.take();
    if dropped > 0 {
        tracing::warn!(
            plugin,
            stream,
            dropped,
            "plugin output over {CAPTURE_LIMIT} octets in one call; the rest was dropped"
        );
    }
    if bytes.is_empty() {
        return;
    }
    match target {
        OutputTarget::Stdout => {
            // One write under the lock, so that sessions never interleave their output.
            let written = tokio::task::spawn_blocking(move || {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)?;
                out.flush()
            })
            .await;
            if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                tracing::warn!(plugin, "cannot write plugin output to stdout: {e}");
            }
        }
        OutputTarget::Log => {
            for line in String::from_utf8_lossy(&bytes).lines() {
                tracing::info!(plugin, stream, "{line}");
            }
        }
    }
}
