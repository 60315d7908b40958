//! Where the log goes: standard error, with the lines of the moment gathered and written
//! together by one thread. Written line by line, the log line each message gets cost a
//! syscall on the session's thread, as much as a sixth of a small message's handling.
//! Warnings and errors, and everything once the buffer is full, are written at once.
//! While lines keep coming the thread wakes on its own every few milliseconds; it waits
//! to be woken only after a quiet spell, so that a busy server's sessions do not pay a
//! wake-up (a syscall and a context switch) for every batch.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather before they are written.
const GATHER: Duration = Duration::from_millis(4);
/// Rounds of [`GATHER`] without a line before the thread waits to be woken.
const QUIET_ROUNDS: u32 = 25;
/// Octets held at most; past this, the writer writes itself.
const HOLD: usize = 256 * 1024;

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The thread waits on `wake`: the next line must wake it.
    parked: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// No thread to gather: every line is written at once.
    direct: AtomicBool,
}

/// The log's [`MakeWriter`]: `tracing_subscriber::fmt().with_writer(LogWriter::start())`.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Starts the thread that writes gathered lines, once per process.
    pub fn start() -> LogWriter {
        static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let shared = Arc::new(Shared::default());
            let gatherer = Arc::clone(&shared);
            let started = std::thread::Builder::new()
                .name("wasmtpd-log".into())
                .spawn(move || gather(&gatherer));
            if let Err(e) = started {
                shared.direct.store(true, Ordering::Relaxed);
                eprintln!("cannot start the log thread ({e}); writing the log line by line");
            }
            shared
        });
        LogWriter {
            shared: Arc::clone(shared),
        }
    }

    fn line(&self, urgent: bool) -> Line {
        Line {
            shared: Arc::clone(&self.shared),
            bytes: Vec::with_capacity(256),
            urgent,
        }
    }

    /// Writes whatever is pending now (at exit).
    pub fn flush(&self) {
        write_out(&mut self.shared.lock().lines);
    }
}

fn gather(shared: &Shared) {
    let mut writing = Vec::new();
    let mut quiet = 0;
    loop {
        std::thread::sleep(GATHER);
        {
            let mut pending = shared.lock();
            if pending.lines.is_empty() {
                quiet += 1;
                if quiet < QUIET_ROUNDS {
                    continue;
                }
                while pending.lines.is_empty() {
                    pending.parked = true;
                    pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
                }
                quiet = 0;
                // Woken by the first line: the lines of the next moment join it.
                continue;
            }
            quiet = 0;
            // Swapped, not taken: both buffers keep their capacity.
            std::mem::swap(&mut pending.lines, &mut writing);
        }
        write_out(&mut writing);
    }
}

fn write_out(lines: &mut Vec<u8>) {
    let _ = std::io::stderr().lock().write_all(lines);
    lines.clear();
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One log line, handed over whole when dropped.
pub struct Line {
    shared: Arc<Shared>,
    bytes: Vec<u8>,
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let mut pending = self.shared.lock();
        pending.lines.extend_from_slice(&self.bytes);
        if self.urgent || pending.lines.len() >= HOLD || self.shared.direct.load(Ordering::Relaxed) {
            write_out(&mut pending.lines);
        } else if pending.parked {
            pending.parked = false;
            self.shared.wake.notify_one();
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        self.line(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        self.line(*meta.level() <= Level::WARN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_held_whole_until_written_and_warnings_go_out_at_once() {
        let writer = LogWriter { shared: Arc::default() };
        let mut line = writer.line(false);
        line.write_all(b"one ").unwrap();
        line.write_all(b"line\n").unwrap();
        assert!(writer.shared.lock().lines.is_empty(), "nothing before the line ends");
        drop(line);
        assert_eq!(writer.shared.lock().lines, b"one line\n");
        let mut warning = writer.line(true);
        warning.write_all(b"warning\n").unwrap();
        drop(warning);
        assert!(writer.shared.lock().lines.is_empty(), "written with the warning");
    }

    #[test]
    fn a_line_wakes_the_thread_only_when_it_waits() {
        let writer = LogWriter { shared: Arc::default() };
        writer.line(false).write_all(b"one\n").unwrap();
        assert!(!writer.shared.lock().parked);
        writer.shared.lock().parked = true;
        writer.line(false).write_all(b"two\n").unwrap();
        assert!(!writer.shared.lock().parked, "woken, and only once");
        assert_eq!(writer.shared.lock().lines, b"one\ntwo\n");
    }
}
