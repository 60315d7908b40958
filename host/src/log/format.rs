//! The log's line: `2026-11-23T03:04:17.899115Z  INFO target: message key=value ...`,
//! the same text as tracing-subscriber's default format, written without its generic
//! formatting. Under load the server logs a line per message, and the default's date
//! formatting and padding cost about a tenth of a small message's handling; here the
//! date is formatted once a second per thread and everything else is copied as is.
//! Fields likewise: [`LineFields`] writes `name=value` straight out, and hands the rare
//! cases (errors, a terminal's colours) to tracing-subscriber's own visitor.

use std::cell::RefCell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format: timestamp (UTC, microseconds), level, spans, target, fields.
pub struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // Records from the `log` crate carry their own target.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let ansi = writer.has_ansi_escapes();
        writer.write_str(&timestamp(SystemTime::now()))?;
        writer.write_char(' ')?;
        let (level, color) = level_text(meta.level());
        if ansi {
            write!(writer, "\x1b[{color}m{level}\x1b[0m ")?;
        } else {
            writer.write_str(level)?;
            writer.write_char(' ')?;
        }
        if let Some(scope) = ctx.event_scope() {
            let mut any = false;
            for span in scope.from_root() {
                writer.write_str(span.metadata().name())?;
                if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_char(':')?;
                any = true;
            }
            if any {
                writer.write_char(' ')?;
            }
        }
        if ansi {
            write!(writer, "\x1b[2m{}:\x1b[0m ", meta.target())?;
        } else {
            writer.write_str(meta.target())?;
            writer.write_str(": ")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

/// The fields as tracing-subscriber's `DefaultFields` writes them: the message as it is
/// (control characters that could steer a terminal escaped), then `name=value` with the
/// value's `Debug` form, separated by spaces.
pub struct LineFields;

impl<'writer> FormatFields<'writer> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct FieldWriter<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// Writes one field; `None` for the names only the default visitor knows how to
    /// write (`log.` metadata, raw identifiers).
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) -> Option<()> {
        let name = field.name();
        if name.starts_with("log.") || name.starts_with("r#") {
            return None;
        }
        if self.result.is_ok() {
            self.result = self.separate().and_then(|()| {
                if name != "message" {
                    self.writer.write_str(name)?;
                    self.writer.write_char('=')?;
                }
                value(&mut self.writer)
            });
        }
        Some(())
    }

    fn separate(&mut self) -> fmt::Result {
        if std::mem::take(&mut self.first) {
            Ok(())
        } else {
            self.writer.write_char(' ')
        }
    }

    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.first);
        record(&mut default);
        self.result = default.finish();
        // What it skips (`log.` metadata) follows the message, so never comes first.
        self.first = false;
    }
}

impl Visit for FieldWriter<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.field(field, |w| write!(w, "{value}")).is_none() {
            self.by_default(|d| d.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.field(field, |w| write!(w, "{value}")).is_none() {
            self.by_default(|d| d.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.field(field, |w| write!(w, "{value}")).is_none() {
            self.by_default(|d| d.record_bool(field, value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        let written = self.field(field, |w| {
            if message {
                write_escaped(w, value)
            } else {
                write!(w, "{value:?}")
            }
        });
        if written.is_none() {
            self.by_default(|d| d.record_str(field, value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(|d| d.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let message = field.name() == "message";
        let written = self.field(field, |w| {
            if message && w.sanitizes_ansi_escapes() {
                fmt::Write::write_fmt(&mut Escaping(w), format_args!("{value:?}"))
            } else {
                write!(w, "{value:?}")
            }
        });
        if written.is_none() {
            self.by_default(|d| d.record_debug(field, value));
        }
    }
}

fn write_escaped(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    if writer.sanitizes_ansi_escapes() {
        fmt::Write::write_str(&mut Escaping(writer), text)
    } else {
        writer.write_str(text)
    }
}

/// Escapes what tracing-subscriber escapes in messages: ESC, BEL, BS, FF, DEL and the C1
/// controls, which could steer a terminal that shows the log. Runs of other characters
/// are written whole.
struct Escaping<'w, 'a>(&'w mut Writer<'a>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut run_start = 0;
        for (at, c) in text.char_indices() {
            let escaped = matches!(c, '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}');
            if !escaped {
                continue;
            }
            self.0.write_str(&text[run_start..at])?;
            if (c as u32) < 0x80 {
                write!(self.0, "\\x{:02x}", c as u32)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", c as u32)?;
            }
            run_start = at + c.len_utf8();
        }
        self.0.write_str(&text[run_start..])
    }
}

/// The level as tracing-subscriber prints it (five columns) and its ANSI colour.
fn level_text(level: &Level) -> (&'static str, u8) {
    match *level {
        Level::TRACE => ("TRACE", 35),
        Level::DEBUG => ("DEBUG", 34),
        Level::INFO => (" INFO", 32),
        Level::WARN => (" WARN", 33),
        Level::ERROR => ("ERROR", 31),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`; the part up to the seconds is kept per thread and
/// formatted again only when the second changes.
fn timestamp(now: SystemTime) -> TimestampText {
    thread_local! {
        static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let mut text = [0u8; 27];
    SECOND.with_borrow_mut(|(cached_secs, cached)| {
        if *cached_secs != secs {
            *cached = date_time(secs);
            *cached_secs = secs;
        }
        text[..19].copy_from_slice(cached);
    });
    text[19] = b'.';
    put_digits(&mut text[20..26], since_epoch.subsec_micros());
    text[26] = b'Z';
    TimestampText(text)
}

struct TimestampText([u8; 27]);

impl std::ops::Deref for TimestampText {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the Unix epoch, UTC.
fn date_time(secs: u64) -> [u8; 19] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    let mut text = *b"0000-00-00T00:00:00";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], (in_day / 3600) as u32);
    put_digits(&mut text[14..16], (in_day / 60 % 60) as u32);
    put_digits(&mut text[17..19], (in_day % 60) as u32);
    text
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

/// Writes `value`'s last `out.len()` decimal digits, zero-padded.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00");
        // 2000-02-29 (a leap day in a century leap year), 12:34:56.
        assert_eq!(&date_time(951_827_696), b"2000-02-29T12:34:56");
        assert_eq!(&date_time(4_107_542_399), b"2100-02-28T23:59:59");
        assert_eq!(&date_time(4_107_542_400), b"2100-03-01T00:00:00");
        // The first second of 2027.
        assert_eq!(&date_time(1_798_761_600), b"2027-01-01T00:00:00");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_day_before() {
        // Counted forward from the epoch, day by day: no gaps and no repeats.
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > length {
                (day, month) = (1, month + 1);
                if month > 12 {
                    (month, year) = (1, year + 1);
                }
            }
        }
    }

    #[test]
    fn timestamps_have_microseconds_and_follow_the_second() {
        let at = |secs, micros| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
        assert_eq!(&*timestamp(at(951_827_696, 7)), "2000-02-29T12:34:56.000007Z");
        assert_eq!(&*timestamp(at(951_827_696, 999_999)), "2000-02-29T12:34:56.999999Z");
        assert_eq!(&*timestamp(at(951_827_697, 0)), "2000-02-29T12:34:57.000000Z");
    }
}
