//! A plugin's stdout and stderr: captured during a call, then printed on the host's
//! stdout in one write (debug-printer) or logged line by line, never mixed into the SMTP
//! stream and never lost (up to a cap per call).

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

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

    /// Written directly, not through wasmtime-wasi's default adapter, whose background
    /// task costs a task switch per write: a capture is a memory copy and never blocks.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl Capture {
    fn append(&self, buf: &[u8]) {
        let mut captured = self.0.lock().unwrap();
        let room = CAPTURE_LIMIT.saturating_sub(captured.bytes.len());
        let kept = buf.len().min(room);
        captured.bytes.extend_from_slice(&buf[..kept]);
        captured.dropped += buf.len() - kept;
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always room: past the cap, output is counted and dropped, never refused.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Output held for stdout, in KiB, before a plugin call has to wait: bounded in octets (a
/// count of outputs would let a few hundred large messages be held), so that a stdout
/// nobody reads slows the plugins down instead of filling memory.
const STDOUT_HOLD_KIB: usize = 16 * 1024;

static STDOUT_ROOM: Semaphore = Semaphore::const_new(STDOUT_HOLD_KIB);

/// The KiB of room an output of `len` octets takes: at least one, at most all of it (one
/// output bigger than the hold waits until nothing else is held).
fn room_for(len: usize) -> u32 {
    u32::try_from(len.div_ceil(1024).clamp(1, STDOUT_HOLD_KIB)).unwrap_or(u32::MAX)
}

/// Octets gathered into one write to stdout when calls' outputs queue up.
const STDOUT_BATCH: usize = 256 * 1024;

/// How long the writer lets output gather after a write. While it waits, calls queue
/// their output without waking it: under load one wake-up and one write serve many calls
/// (a wake-up per message cost a tenth of the server's time), and output is at most this
/// much later.
const STDOUT_GATHER: Duration = Duration::from_millis(2);

/// Rounds of [`STDOUT_GATHER`] without output before the writer waits to be woken:
/// while output keeps coming it wakes on its own, and calls never pay for waking it.
const QUIET_ROUNDS: u32 = 50;

/// What the stdout writer is sent: a call's output, or a request to say when everything
/// before it is written.
enum ToStdout {
    /// The room it takes is given back once it is written.
    Output(Vec<u8>, SemaphorePermit<'static>),
    Flush(std::sync::mpsc::Sender<()>),
}

static WRITER: OnceLock<mpsc::UnboundedSender<ToStdout>> = OnceLock::new();

/// The one thread that writes plugin output to the host's stdout, one call's output in one
/// write, so that sessions never interleave and no runtime thread blocks on a slow pipe.
fn stdout_writer() -> &'static mpsc::UnboundedSender<ToStdout> {
    WRITER.get_or_init(|| {
        let (sender, receiver) = mpsc::unbounded_channel::<ToStdout>();
        std::thread::Builder::new()
            .name("wasmtpd-stdout".into())
            .spawn(move || write_stdout(receiver))
            .expect("cannot start the stdout thread");
        sender
    })
}

fn write_stdout(mut receiver: mpsc::UnboundedReceiver<ToStdout>) {
    let mut batch = Batch::default();
    let mut quiet = QUIET_ROUNDS;
    let mut failed = false;
    loop {
        if quiet >= QUIET_ROUNDS {
            // Nothing for a while: wait for the next output, and write it at once.
            let Some(first) = receiver.blocking_recv() else {
                return;
            };
            batch.take(first);
        }
        // Whatever else is queued goes out in the same write.
        while batch.bytes.len() < STDOUT_BATCH
            && let Ok(more) = receiver.try_recv()
        {
            batch.take(more);
        }
        if batch.is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            let mut out = std::io::stdout().lock();
            let written = out.write_all(&batch.bytes).and_then(|()| out.flush());
            drop(out);
            if let Err(e) = written
                && !failed
            {
                tracing::warn!("cannot write plugin output to stdout: {e}");
                failed = true;
            }
            batch.written();
        }
        std::thread::sleep(STDOUT_GATHER);
    }
}

/// Outputs gathered for one write, the room they hold, and who waits for them.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    room: Vec<SemaphorePermit<'static>>,
    flushed: Vec<std::sync::mpsc::Sender<()>>,
}

impl Batch {
    fn take(&mut self, message: ToStdout) {
        match message {
            ToStdout::Output(bytes, room) => {
                if self.bytes.is_empty() {
                    self.bytes = bytes;
                } else {
                    self.bytes.extend_from_slice(&bytes);
                }
                self.room.push(room);
            }
            ToStdout::Flush(done) => self.flushed.push(done),
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.flushed.is_empty()
    }

    /// Gives the room back and says so to whoever waits.
    fn written(&mut self) {
        self.bytes.clear();
        self.room.clear();
        for done in self.flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Waits (a second at most) until every plugin output queued so far is written: before
/// the process exits, so that the last messages printed are not lost.
pub fn flush_stdout() {
    let Some(writer) = WRITER.get() else {
        return;
    };
    let (done, written) = std::sync::mpsc::channel();
    if writer.send(ToStdout::Flush(done)).is_ok() {
        let _ = written.recv_timeout(Duration::from_secs(1));
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
            // The semaphore is never closed.
            let Ok(room) = STDOUT_ROOM.acquire_many(room_for(bytes.len())).await else {
                return;
            };
            if stdout_writer().send(ToStdout::Output(bytes, room)).is_err() {
                tracing::warn!(plugin, "the stdout writer has stopped; plugin output lost");
            }
        }
        OutputTarget::Log => {
            for line in String::from_utf8_lossy(&bytes).lines() {
                tracing::info!(plugin, stream, "{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_takes_room_by_the_kib_within_the_hold() {
        assert_eq!(room_for(0), 1);
        assert_eq!(room_for(1), 1);
        assert_eq!(room_for(1024), 1);
        assert_eq!(room_for(1025), 2);
        assert_eq!(room_for(CAPTURE_LIMIT), (CAPTURE_LIMIT / 1024) as u32);
        // Bigger than the whole hold: it waits for all of it, never for more than there is.
        assert_eq!(room_for(usize::MAX), STDOUT_HOLD_KIB as u32);
    }
}
