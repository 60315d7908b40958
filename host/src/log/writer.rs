//! Where the log goes: standard error, through a [`GatheringWriter`]. Written line by
//! line, the log line each message gets cost a syscall on the session's thread, as much as
//! a sixth of a small message's handling. Warnings and errors, and everything once the
//! buffer is full, are written at once, after the lines before them.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::gathering_writer::{Bound, GatheringWriter};

/// Octets held at most; past this, the line's writer writes them all.
const HOLD: usize = 256 * 1024;

/// The log's [`MakeWriter`]: `tracing_subscriber::fmt().with_writer(LogWriter::start())`.
#[derive(Clone)]
pub struct LogWriter {
    gathered: GatheringWriter,
}

impl LogWriter {
    /// Starts the thread that writes gathered lines, once per process.
    pub fn start() -> LogWriter {
        static STDERR: OnceLock<GatheringWriter> = OnceLock::new();
        let gathered = STDERR.get_or_init(|| {
            GatheringWriter::start("wasmtpd-log", Box::new(std::io::stderr()), Bound::WriteThrough(HOLD))
        });
        LogWriter::to(gathered.clone())
    }

    /// Lines through `gathered` (tests give it a buffer of their own).
    pub(super) fn to(gathered: GatheringWriter) -> LogWriter {
        LogWriter { gathered }
    }

    fn line(&self, urgent: bool) -> Line<'_> {
        Line {
            gathered: &self.gathered,
            bytes: Vec::with_capacity(256),
            urgent,
        }
    }

    /// Writes whatever is pending now (at exit; a second at most).
    pub fn flush(&self) {
        self.gathered.flush(Duration::from_secs(1));
    }
}

/// One log line, handed over whole when dropped.
pub struct Line<'a> {
    gathered: &'a GatheringWriter,
    bytes: Vec<u8>,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if self.urgent {
            self.gathered.write_now(&self.bytes);
        } else {
            self.gathered.hand_over(&self.bytes, 0);
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        self.line(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        self.line(*meta.level() <= Level::WARN)
    }
}
