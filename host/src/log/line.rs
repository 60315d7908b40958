//! The log's line when it goes to a file or a pipe: the text of tracing-subscriber's
//! full format (`2026-12-02T04:36:50.123456Z  INFO wasmtpd::session::data: message
//! accepted tenant=default size=1024`), written octet by octet.
//!
//! Each accepted message logs a line. Through tracing-subscriber's own format (a
//! `write!` for each part of the date, the level's and the target's colour wrappers, a
//! formatter for each number) that line was 13,700 instructions, a seventh of what the
//! server did for a small message; this writes the same text in 5,100.
//!
//! One thing differs, on purpose: control characters in the message and the fields are
//! escaped (`\n`, `\r`, `\x1b`, ...), so an event is always one line. A plugin's log
//! message or a value a client chose cannot start a line of its own, nor drive a
//! terminal. tracing-subscriber escapes only terminal sequences, and only in the message
//! and in errors.

use std::cell::RefCell;
use std::fmt::{self, Debug, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The log's plain format; see the module's documentation.
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        thread_local! {
            static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write_line(&mut line, ctx, event);
                writer.write_str(&line)
            }
            // A value's `Display` that logs while its own line is being written.
            Err(_) => {
                let mut line = String::new();
                write_line(&mut line, ctx, event);
                writer.write_str(&line)
            }
        })
    }
}

fn write_line<S, N>(line: &mut String, ctx: &FmtContext<'_, S, N>, event: &Event<'_>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    // Events that came through the `log` crate carry their real target in `log.` fields.
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    push_timestamp(line, SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default());
    line.push(' ');
    line.push_str(level_name(meta.level()));
    line.push(' ');
    let fields_start = line.len();
    // The server opens no spans of its own; a dependency's are written as the full format does.
    if let Some(scope) = ctx.event_scope() {
        for span in scope.from_root() {
            line.push_str(span.metadata().name());
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                let _ = write!(line, "{{{fields}}}");
            }
            line.push(':');
        }
        line.push(' ');
    }
    line.push_str(meta.target());
    line.push_str(": ");
    event.record(&mut Fields { line, first: true });
    escape_controls(line, fields_start);
    line.push('\n');
}

/// The level as the full format writes it: five columns, right-aligned.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC, as tracing-subscriber's `SystemTime` writes it.
fn push_timestamp(line: &mut String, since_epoch: Duration) {
    // The date and time to the second are made once a second: the lines of a second,
    // a message's among them, share them.
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != since_epoch.as_secs() {
            *second = since_epoch.as_secs();
            text.clear();
            push_date_time(text, *second);
        }
        line.push_str(text);
    });
    line.push('.');
    push_padded(line, since_epoch.subsec_micros().into(), 6);
    line.push('Z');
}

/// `YYYY-MM-DDTHH:MM:SS`, UTC.
fn push_date_time(line: &mut String, seconds: u64) {
    // The `time` crate's calendar: a conversion, not its formatting machinery.
    let at = i64::try_from(seconds)
        .ok()
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    push_padded(line, at.year().max(0) as u64, 4);
    line.push('-');
    push_padded(line, u8::from(at.month()).into(), 2);
    line.push('-');
    push_padded(line, at.day().into(), 2);
    line.push('T');
    push_padded(line, at.hour().into(), 2);
    line.push(':');
    push_padded(line, at.minute().into(), 2);
    line.push(':');
    push_padded(line, at.second().into(), 2);
}

/// `value` in decimal, at least `width` digits.
fn push_padded(line: &mut String, value: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(value);
    line.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    line.push_str(digits);
}

/// An event's fields as the full format writes them: the message bare, then
/// ` name=value` with the value's `Debug` (a `%value` field's is its `Display`).
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    /// The separator and the name; false for a field not to be written.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false; // the `log` crate's metadata, already in the target
        }
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
        if name != "message" {
            self.line.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.line.push('=');
        }
        true
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if self.start(field) {
            let _ = write!(self.line, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.start(field) {
            if field.name() == "message" {
                self.line.push_str(value);
            } else {
                let _ = write!(self.line, "{value:?}");
            }
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            push_padded(self.line, value, 1);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            if value < 0 {
                self.line.push('-');
            }
            push_padded(self.line, value.unsigned_abs(), 1);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    /// The error, then its sources: `error=refused error.sources=[timed out, reset]`.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.start(field) {
            let _ = write!(self.line, "{value}");
            if let Some(first) = value.source() {
                let _ = write!(self.line, " {}.sources=[{first}", field.name());
                let mut source = first.source();
                while let Some(error) = source {
                    let _ = write!(self.line, ", {error}");
                    source = error.source();
                }
                self.line.push(']');
            }
        }
    }
}

/// Escapes, from `start` on, every control character but tab (C0, DEL and C1).
fn escape_controls(line: &mut String, start: usize) {
    let is_control = |c: char| c.is_control() && c != '\t';
    // First a look at the octets, without a branch for each (it vectorises), for what
    // may start a control: an octet below 0x20 (tab included), DEL, or 0xC2, which
    // starts the C1 controls in UTF-8 as well as other characters. The usual line has none.
    let suspect = line.as_bytes()[start..]
        .iter()
        .fold(false, |seen, &b| seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2));
    if !suspect {
        return;
    }
    let Some(first) = line[start..].find(is_control) else {
        return; // tabs, or characters that start with 0xC2 and are not controls
    };
    let tail = line.split_off(start + first);
    for c in tail.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c if is_control(c) && u32::from(c) < 0x80 => {
                let _ = write!(line, "\\x{:02x}", u32::from(c));
            }
            c if is_control(c) => {
                let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
            }
            c => line.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(str::to_owned).collect()
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// The events the comparison writes: every kind of field value.
    fn events() {
        let peer: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let error = Failure(
            "refused",
            Some(Box::new(Failure("timed out", Some(Box::new(Failure("reset", None)))))),
        );
        tracing::info!(tenant = %"default", %peer, id = %"18F2A0001", size = 1024_usize, recipients = 1_usize, accepted = 1_usize, "message accepted");
        tracing::warn!(peer = "127.0.0.1:2525", "urgent");
        tracing::error!(code = -42_i64, ok = false, ratio = 0.5_f64, "{} of {}", 3, 4);
        tracing::debug!(r#type = "x", list = ?[1, 2], "debug");
        tracing::trace!("only a message");
        tracing::info!(answer = 42_u64);
        tracing::info!(error = &error as &(dyn std::error::Error + 'static), "with sources");
        tracing::info!(quoted = "a \"b\"", "{:>6}|", "pad");
        let alone = Failure("alone", None);
        tracing::warn!(r#err = &alone as &(dyn std::error::Error + 'static), "no sources");
        tracing::info!(r#type = &error as &(dyn std::error::Error + 'static));
        warning_through_the_log_crate();
        let span = tracing::info_span!("outer", tenant = "t");
        let _entered = span.enter();
        tracing::info!("inside a span");
        let bare = tracing::info_span!("bare");
        let _inner = bare.enter();
        tracing::info!(depth = 2_u64, "inside two spans");
    }

    /// What a dependency that logs through the `log` crate (as Cranelift does) sends.
    fn warning_through_the_log_crate() {
        let record = log::Record::builder()
            .args(format_args!("from log"))
            .level(log::Level::Warn)
            .target("cranelift::compile")
            .module_path_static(Some("cranelift::compile"))
            .file_static(Some("compile.rs"))
            .line(Some(7))
            .build();
        tracing_log::format_trace(&record).unwrap();
    }

    /// The lines [`LineFormat`] writes for the events `log` sends.
    fn lines_of(log: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(LineFormat)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        buffer.lines()
    }

    fn written_by<E>(format: E) -> Vec<String>
    where
        E: FormatEvent<tracing_subscriber::Registry, tracing_subscriber::fmt::format::DefaultFields>
            + Send
            + Sync
            + 'static,
    {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        buffer.lines()
    }

    #[test]
    fn lines_are_the_text_of_tracing_subscribers_full_format() {
        let ours = written_by(LineFormat);
        let theirs = written_by(tracing_subscriber::fmt::format().with_ansi(false));
        assert_eq!(ours.len(), 13, "{ours:#?}");
        assert_eq!(ours.len(), theirs.len());
        for (ours, theirs) in ours.iter().zip(&theirs) {
            // The same text after the timestamp, which has the same shape.
            assert_eq!(ours[27..], theirs[27..]);
            let shape = |line: &str| line[..27].bytes().map(|b| b.is_ascii_digit()).collect::<Vec<_>>();
            assert_eq!(shape(ours), shape(theirs), "{ours} / {theirs}");
        }
        assert!(
            ours[0].ends_with(" INFO wasmtpd::log::line::tests: message accepted tenant=default peer=192.0.2.7:40000 id=18F2A0001 size=1024 recipients=1 accepted=1"),
            "{}",
            ours[0]
        );
    }

    #[test]
    fn events_of_the_log_crate_carry_their_own_target() {
        let lines = lines_of(warning_through_the_log_crate);
        assert_eq!(lines.len(), 1);
        assert_eq!(&lines[0][27..], "  WARN cranelift::compile: from log");
    }

    #[test]
    fn control_characters_are_escaped_so_that_an_event_is_one_line() {
        let lines = lines_of(|| {
            let forged = "hello\r\n2026-12-02T00:00:00.000000Z  INFO wasmtpd: forged";
            tracing::info!(plugin = "p", "{forged}");
            tracing::info!(name = %"a\x1b[31mred\x07\u{9b}\x7f £\u{a0}é", "tab\tkept");
        });
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(
            &lines[0][27..],
            "  INFO wasmtpd::log::line::tests: hello\\r\\n2026-12-02T00:00:00.000000Z  INFO wasmtpd: forged plugin=\"p\""
        );
        assert_eq!(
            &lines[1][27..],
            "  INFO wasmtpd::log::line::tests: tab\tkept name=a\\x1b[31mred\\x07\\u{9b}\\x7f £\u{a0}é"
        );
    }

    #[test]
    fn timestamps_are_utc_to_the_microsecond() {
        let at = |seconds: u64, micros: u32| {
            let mut line = String::new();
            push_timestamp(&mut line, Duration::new(seconds, micros * 1000));
            line
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_187_410, 123_456), "2026-12-02T04:56:50.123456Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
        // Within a second the date is kept and only the microseconds change; the next
        // second and a second back in time each get theirs.
        assert_eq!(at(1_796_187_410, 1), "2026-12-02T04:56:50.000001Z");
        assert_eq!(at(1_796_187_410, 654_321), "2026-12-02T04:56:50.654321Z");
        assert_eq!(at(1_796_187_411, 0), "2026-12-02T04:56:51.000000Z");
        assert_eq!(at(1_796_187_410, 2), "2026-12-02T04:56:50.000002Z");
    }

    #[test]
    fn numbers_are_written_in_full_and_padded() {
        let mut line = String::new();
        push_padded(&mut line, 0, 1);
        line.push(' ');
        push_padded(&mut line, u64::MAX, 1);
        line.push(' ');
        push_padded(&mut line, 7, 6);
        assert_eq!(line, "0 18446744073709551615 000007");
    }
}
