//! The server's log: lines in tracing-subscriber's usual text format on standard error,
//! filtered by `WASMTPD_LOG` (default `info`), gathered and written by one thread.

pub mod format;
pub mod writer;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use writer::LogWriter;

/// Installs the log for the process; the returned writer is flushed at exit.
pub fn init() -> LogWriter {
    let log = LogWriter::start();
    tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(format::LineFormat)
        .fmt_fields(format::LineFields)
        .with_env_filter(EnvFilter::try_from_env("WASMTPD_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    log
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::LogWriter;
    use super::format::{LineFields, LineFormat};
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

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn log_some_events() {
        let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        tracing::info!(tenant = %"example.org", %peer, size = 1064, recipients = 1, "message accepted");
        tracing::warn!(plugin = "filter", identity = "a \"quoted\" name", "a warning: {}", 42);
        tracing::info!(
            r#type = "raw",
            log.target = "skipped",
            ok = true,
            delta = -3,
            "\x1b[31mred\x1b[0m \u{85} {}",
            "\x07"
        );
        tracing::info!("{}", "\x1b plain str message");
        let error = std::io::Error::other(anyhow::anyhow!("inner"));
        tracing::warn!(error = &error as &dyn std::error::Error, "failed");
        let span = tracing::info_span!("reload", generation = 3);
        let _entered = span.enter();
        tracing::error!(cause = ?Some("trap"), "inside a span");
    }

    /// Each line without its timestamp, which differs between two runs.
    fn lines_after_timestamps(buffer: &Buffer) -> Vec<String> {
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| {
                let (stamp, rest) = line.split_at(27);
                assert!(stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.', "{line}");
                rest.to_owned()
            })
            .collect()
    }

    fn log_with(format: Option<LineFormat>, ansi: bool) -> Buffer {
        let buffer = Buffer::default();
        let builder = tracing_subscriber::fmt().with_writer(buffer.clone()).with_ansi(ansi);
        match format {
            Some(format) => tracing::subscriber::with_default(
                builder.event_format(format).fmt_fields(LineFields).finish(),
                log_some_events,
            ),
            None => tracing::subscriber::with_default(builder.finish(), log_some_events),
        }
        buffer
    }

    #[test]
    fn lines_read_as_tracing_subscribers_default_format() {
        let ours = lines_after_timestamps(&log_with(Some(LineFormat), false));
        let theirs = lines_after_timestamps(&log_with(None, false));
        assert_eq!(ours, theirs);
        assert_eq!(
            ours[0],
            "  INFO wasmtpd::log::tests: message accepted tenant=example.org peer=127.0.0.1:40000 size=1064 recipients=1"
        );
        assert_eq!(ours.len(), 6);
        assert!(
            ours[2].contains("\\x1b[31mred\\x1b[0m \\u{85} \\x07 type=\"raw\" ok=true delta=-3"),
            "{}",
            ours[2]
        );
    }

    #[test]
    fn warnings_are_written_at_once_after_the_lines_before_them() {
        let buffer = Buffer::default();
        let gathered = GatheringWriter::start("test-log", Box::new(buffer.clone()), Bound::WriteThrough(1 << 20));
        let log = LogWriter::to(gathered);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log)
            .with_ansi(false)
            .event_format(LineFormat)
            .fmt_fields(LineFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("gathered");
            tracing::warn!("urgent");
        });
        // Written by the time `warn!` returns: not left to the thread.
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().map(|line| &line[27..]).collect();
        assert_eq!(
            lines,
            [
                "  INFO wasmtpd::log::tests: gathered",
                "  WARN wasmtpd::log::tests: urgent"
            ]
        );
    }

    #[test]
    fn a_terminal_gets_the_level_in_colour() {
        let text = String::from_utf8(log_with(Some(LineFormat), true).0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("Z \x1b[32m INFO\x1b[0m \x1b[2mwasmtpd::log::tests:\x1b[0m "),
            "{text}"
        );
        assert!(text.contains("\x1b[31mERROR\x1b[0m reload{"), "{text}");
    }
}
