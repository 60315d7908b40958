//! A plugin's stdout and stderr: captured during a call, then printed on the host's
//! stdout in one write (debug-printer) or logged line by line, never mixed into the SMTP
//! stream and never lost (up to a cap per call).

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::gathering_writer::{Bound, GatheringWriter, clear_keeping};

/// Where a plugin's standard output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A capture bigger than this after a large output is let go rather than kept.
const KEEP: usize = 64 * 1024;

impl Capture {
    /// Octets written since the last [`Capture::drain`], and how many past the cap were
    /// lost since the last time this was asked.
    pub fn len_and_dropped(&self) -> (usize, usize) {
        let mut captured = self.lock();
        (captured.bytes.len(), std::mem::take(&mut captured.dropped))
    }

    /// Hands what was written since the last call to `to`, then empties the capture,
    /// keeping its room for the next call's output.
    pub fn drain(&self, to: impl FnOnce(&[u8])) {
        let mut captured = self.lock();
        to(&captured.bytes);
        clear_keeping(&mut captured.bytes, KEEP);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
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
    /// Adds the host's own line after what was kept, past the cap: a cut output says so.
    fn note_cut(&self, dropped: usize) {
        let note =
            format!("\n[wasmtpd: this call's output was cut at {CAPTURE_LIMIT} octets; {dropped} more were dropped]\n");
        self.lock().bytes.extend_from_slice(note.as_bytes());
    }

    fn append(&self, buf: &[u8]) {
        let mut captured = self.lock();
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

static STDOUT: OnceLock<GatheringWriter> = OnceLock::new();

/// The one thread that writes plugin output to the host's stdout, each call's output
/// whole, so that sessions never interleave and no runtime thread blocks on a slow pipe.
fn stdout() -> &'static GatheringWriter {
    STDOUT.get_or_init(|| {
        let out = Box::new(std::io::stdout());
        GatheringWriter::start_to("wasmtpd-stdout", out, Bound::Room(&STDOUT_ROOM), stdout_is_a_file())
    })
}

/// Waits (a second at most) until every plugin output handed over so far is written:
/// before the process exits, so that the last messages printed are not lost.
pub fn flush_stdout() {
    if let Some(stdout) = STDOUT.get() {
        stdout.flush(Duration::from_secs(1));
    }
}

/// Whether stdout is a regular file, whose writes never wait on a reader (a pipe's or a
/// terminal's may): then a session writes its message's output itself.
fn stdout_is_a_file() -> bool {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let duplicate = stdout.as_fd().try_clone_to_owned();
    duplicate
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .is_ok_and(|metadata| metadata.file_type().is_file())
}

/// Sends what a call wrote where it belongs.
pub async fn deliver(plugin: &str, stream: &'static str, target: OutputTarget, capture: &Capture) {
    let (len, dropped) = capture.len_and_dropped();
    if dropped > 0 {
        tracing::warn!(
            plugin,
            stream,
            dropped,
            "plugin output over {CAPTURE_LIMIT} octets in one call; the rest was dropped"
        );
    }
    if len == 0 {
        return;
    }
    match target {
        OutputTarget::Stdout => {
            if dropped > 0 {
                capture.note_cut(dropped);
            }
            let room = room_for(len);
            // The semaphore is never closed. The permits go back once the output is written.
            let Ok(permits) = STDOUT_ROOM.acquire_many(room).await else {
                return;
            };
            permits.forget();
            // Written before the call returns: a message printed is on stdout before its
            // 250, so a process killed after the reply has not lost it. No timeout: a
            // stdout nobody reads holds the session (its client times out and retries),
            // as losing what was printed would be worse.
            let mut ticket = 0;
            capture.drain(|bytes| ticket = stdout().hand_over_urgently(bytes, room));
            stdout().written(ticket).await;
        }
        OutputTarget::Log => capture.drain(|bytes| {
            for line in String::from_utf8_lossy(bytes).lines() {
                tracing::info!(plugin, stream, "{line}");
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_output_ends_with_a_line_that_says_so() {
        let capture = Capture::default();
        capture.append(&vec![b'x'; CAPTURE_LIMIT + 10]);
        let (len, dropped) = capture.len_and_dropped();
        assert_eq!((len, dropped), (CAPTURE_LIMIT, 10));
        capture.note_cut(dropped);
        capture.drain(|bytes| {
            let tail = String::from_utf8_lossy(&bytes[CAPTURE_LIMIT..]).into_owned();
            assert_eq!(
                tail,
                format!("\n[wasmtpd: this call's output was cut at {CAPTURE_LIMIT} octets; 10 more were dropped]\n")
            );
        });
    }

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
