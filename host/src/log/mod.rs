//! The server's log: the text of tracing-subscriber's full format on standard error,
//! filtered by `WASMTPD_LOG` (default `info`), gathered and written by one thread.
//!
//! Measured against tracing-appender's non-blocking writer (one server at a time,
//! unpinned, smtp-source on the same 2 cores, sink plugin): the gathering writer moved
//! about 5,000 messages a second at 1 session against 4,100 (87 against 116 µs of CPU a
//! message: a channel wakes its thread for every line, about one more context switch a
//! message) and as many at 10 sessions; so it stays.
//!
//! To a file or a pipe the line is written by [`LineFormat`]: the line each message logs
//! took 13,700 instructions through tracing-subscriber's format and takes 5,100 through
//! ours, of about 86,000 for a small message's whole session (callgrind, the difference
//! between `WASMTPD_LOG=info` and `warn`; a throughput A/B on a noisy 2-core machine
//! could not tell them apart). A terminal gets tracing-subscriber's format, in colour.

pub mod line;
pub mod writer;

use std::io::IsTerminal;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use line::LineFormat;
pub use writer::LogWriter;

/// Installs the log for the process; the returned writer is flushed at exit.
pub fn init() -> LogWriter {
    let log = LogWriter::start();
    let format = if std::io::stderr().is_terminal() {
        LogFormat::Terminal(Format::default())
    } else {
        LogFormat::Plain(LineFormat)
    };
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(matches!(format, LogFormat::Terminal(_)))
        .event_format(format)
        .with_env_filter(EnvFilter::try_from_env("WASMTPD_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    log
}

/// The same text either way; colour only for a person at a terminal.
enum LogFormat {
    Plain(LineFormat),
    Terminal(Format),
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        match self {
            LogFormat::Plain(format) => format.format_event(ctx, writer, event),
            LogFormat::Terminal(format) => format.format_event(ctx, writer, event),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::LogWriter;
    use crate::gathering_writer::{Bound, GatheringWriter};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn warnings_are_written_at_once_after_the_lines_before_them() {
        let buffer = Buffer::default();
        let gathered = GatheringWriter::start("test-log", Box::new(buffer.clone()), Bound::WriteThrough(1 << 20));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(LogWriter::to(gathered))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("gathered");
            tracing::warn!(peer = "127.0.0.1:2525", "urgent");
        });
        // Written by the time `warn!` returns: not left to the thread.
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().map(|line| &line[27..]).collect();
        assert_eq!(
            lines,
            [
                "  INFO wasmtpd::log::tests: gathered",
                "  WARN wasmtpd::log::tests: urgent peer=\"127.0.0.1:2525\""
            ]
        );
    }
}
