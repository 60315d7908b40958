//! A message's header section as a list of fields, for editing: parsed without changing
//! a byte (an unedited message is written back exactly as it came), and the checks a new
//! field must pass so that an edit cannot inject lines (RFC 5322 2.2, 3.6.8).

/// One header field as it stands in the message: its name, and the whole field (name,
/// colon, value, folded lines) without the final CRLF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    name_len: usize,
    raw: Vec<u8>,
}

impl Field {
    /// A new field `name: value`, checked (see [`check_name`] and [`check_value`]).
    pub fn new(name: &str, value: &str) -> Result<Field, FieldError> {
        check_name(name)?;
        check_value(value)?;
        let mut raw = Vec::with_capacity(name.len() + 2 + value.len());
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        Ok(Field {
            name_len: name.len(),
            raw,
        })
    }

    pub fn name(&self) -> &[u8] {
        &self.raw[..self.name_len]
    }

    /// Whether the field is called `name`, whatever the case.
    pub fn is_named(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// The header section of `data` (CRLF line endings) with the empty line that ends it;
/// all of `data` when it has no empty line (a message that is all header).
pub fn header_section(data: &[u8]) -> &[u8] {
    let end = if data.starts_with(b"\r\n") {
        Some(2)
    } else {
        memchr::memmem::find(data, b"\r\n\r\n").map(|at| at + 4)
    };
    &data[..end.unwrap_or(data.len())]
}

/// A message split into its header fields and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<Field>,
    /// What ends the header section (`\r\n`, the empty line) and the body after it, as
    /// they came; empty if the message is all header.
    pub rest: Vec<u8>,
}

impl Message {
    /// Splits `data` (CRLF line endings) into fields and the rest. The header section
    /// ends at the first empty line, or at the first line that is neither a field nor
    /// the continuation of one (which then starts the rest).
    pub fn parse(data: &[u8]) -> Message {
        let mut fields: Vec<Field> = Vec::new();
        let mut at = 0;
        while at < data.len() {
            // A last line without its CRLF is left as it is, in the rest.
            let Some(end) = find_crlf(&data[at..]).map(|i| at + i) else {
                break;
            };
            let line = &data[at..end];
            let next = end + 2;
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
                && let Some(field) = fields.last_mut()
            {
                field.raw.extend_from_slice(b"\r\n");
                field.raw.extend_from_slice(line);
                at = next;
                continue;
            }
            match field_name_len(line) {
                Some(name_len) => fields.push(Field {
                    name_len,
                    raw: line.to_vec(),
                }),
                None => break,
            }
            at = next;
        }
        Message {
            fields,
            rest: data[at..].to_vec(),
        }
    }

    /// Octets of the message as [`Message::to_bytes`] writes it.
    pub fn len(&self) -> usize {
        self.fields.iter().map(|f| f.raw.len() + 2).sum::<usize>() + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message as bytes: each field and its CRLF, then the rest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for field in &self.fields {
            out.extend_from_slice(&field.raw);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&self.rest);
        out
    }

    /// The body: what follows the empty line that ends the header section.
    pub fn body(&self) -> &[u8] {
        self.rest.strip_prefix(b"\r\n").unwrap_or(&self.rest)
    }

    /// Replaces the body, keeping (or adding) the empty line before it.
    pub fn set_body(&mut self, body: &[u8]) {
        let mut rest = Vec::with_capacity(body.len() + 2);
        rest.extend_from_slice(b"\r\n");
        rest.extend_from_slice(body);
        self.rest = rest;
    }

    /// The index in `fields` of the `occurrence`-th (1 for the first) field called `name`.
    pub fn position(&self, name: &str, occurrence: u32) -> Option<usize> {
        let nth = usize::try_from(occurrence).ok()?.checked_sub(1)?;
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_named(name))
            .nth(nth)
            .map(|(i, _)| i)
    }
}

/// Why a field an edit asked for was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// Empty, or holding a character that is not RFC 5322 `ftext` (printable ASCII but
    /// the colon).
    Name,
    /// A CR or LF that is not part of a CRLF followed by a space or tab (a fold): it would
    /// end the field and start another, or the header section.
    LineBreak,
    /// Another control character than tab, or NUL.
    Control,
    /// A line over 900 octets (a header line is at most 998 with its name).
    LongLine,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FieldError::Name => "the field name is not RFC 5322 ftext (printable ASCII but the colon)",
            FieldError::LineBreak => "the value has a CR or LF that is not a fold (CRLF then a space or tab)",
            FieldError::Control => "the value has a control character",
            FieldError::LongLine => "the value has a line over 900 octets (fold it)",
        })
    }
}

impl std::error::Error for FieldError {}

/// RFC 5322 3.6.8: a field name is one or more printable ASCII characters but the colon.
pub fn check_name(name: &str) -> Result<(), FieldError> {
    let ftext = |b: u8| (33..=126).contains(&b) && b != b':';
    if name.is_empty() || !name.bytes().all(ftext) {
        return Err(FieldError::Name);
    }
    Ok(())
}

/// A field value: any text, UTF-8 included (RFC 6532), folded only as RFC 5322 2.2.3
/// allows (CRLF followed by a space or tab).
pub fn check_value(value: &str) -> Result<(), FieldError> {
    let bytes = value.as_bytes();
    // RFC 5322 3.2.2: a folded line holds more than white space.
    if value
        .split("\r\n")
        .skip(1)
        .any(|line| line.trim_matches([' ', '\t']).is_empty())
    {
        return Err(FieldError::LineBreak);
    }
    if value.split("\r\n").any(|line| line.len() > 900) {
        return Err(FieldError::LongLine);
    }
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => {
                let folds = bytes.get(i + 1) == Some(&b'\n') && matches!(bytes.get(i + 2), Some(b' ' | b'\t'));
                if !folds {
                    return Err(FieldError::LineBreak);
                }
            }
            b'\n' if i == 0 || bytes[i - 1] != b'\r' => return Err(FieldError::LineBreak),
            b'\n' | b'\t' => {}
            0..=31 | 127 => return Err(FieldError::Control),
            _ => {}
        }
    }
    Ok(())
}

/// Why a body an edit asked for was refused: what the server refuses from a client
/// (RFC 5321 2.3.8, 4.5.3.1.6) it does not let a plugin write either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// A CR or LF that is not part of a CRLF: a line end some servers see and others
    /// do not (SMTP smuggling).
    BareLineEnding,
    Nul,
    /// A line over 998 octets without its CRLF.
    LongLine,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyError::BareLineEnding => "the body has a CR or LF that is not part of a CRLF",
            BodyError::Nul => "the body has a NUL",
            BodyError::LongLine => "the body has a line over 998 octets",
        })
    }
}

/// A body as a message may carry it: lines ending in CRLF (the last may end without),
/// no NUL, none over 998 octets.
pub fn check_body(body: &[u8]) -> Result<(), BodyError> {
    let mut line = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                line = 0;
                i += 2;
                continue;
            }
            b'\r' | b'\n' => return Err(BodyError::BareLineEnding),
            0 => return Err(BodyError::Nul),
            _ => line += 1,
        }
        if line > 998 {
            return Err(BodyError::LongLine);
        }
        i += 1;
    }
    Ok(())
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// The length of the name if `line` starts a field (`name:`), else `None`.
fn field_name_len(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let ftext = |b: &u8| (33..=126).contains(b);
    (!name.is_empty() && name.iter().all(ftext)).then_some(colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Received: from a\r\n\tby b; date\r\nSubject: hello\r\nsubject: again\r\nTo: x@example.com\r\n\r\nbody line\r\nReceived: in the body\r\n";

    #[test]
    fn parsing_and_writing_back_changes_nothing() {
        for data in [
            MESSAGE,
            b"".as_slice(),
            b"\r\nonly a body\r\n",
            b"Subject: all header\r\n",
            b"Subject: no final CRLF",
            b"not a header line\r\n\r\nbody\r\n",
            b" leading fold\r\n",
            b"A: 1\r\nB: 2\r\n\r\n",
        ] {
            let parsed = Message::parse(data);
            assert_eq!(parsed.to_bytes(), data, "{:?}", String::from_utf8_lossy(data));
        }
        let parsed = Message::parse(MESSAGE);
        assert_eq!(parsed.fields.len(), 4);
        assert_eq!(parsed.fields[0].raw(), b"Received: from a\r\n\tby b; date");
        assert_eq!(parsed.body(), b"body line\r\nReceived: in the body\r\n");
        assert_eq!(Message::parse(b"not a header\r\n\r\n").fields.len(), 0);
    }

    #[test]
    fn fields_are_found_by_name_and_occurrence_whatever_the_case() {
        let parsed = Message::parse(MESSAGE);
        assert_eq!(parsed.position("SUBJECT", 1), Some(1));
        assert_eq!(parsed.position("Subject", 2), Some(2));
        assert_eq!(parsed.position("Subject", 3), None);
        assert_eq!(parsed.position("Subject", 0), None);
        assert_eq!(parsed.position("Cc", 1), None);
    }

    #[test]
    fn a_new_body_keeps_the_empty_line() {
        let mut parsed = Message::parse(b"Subject: s\r\n");
        parsed.set_body(b"new\r\n");
        assert_eq!(parsed.to_bytes(), b"Subject: s\r\n\r\nnew\r\n");
        assert_eq!(parsed.body(), b"new\r\n");
    }

    #[test]
    fn a_new_body_is_held_to_what_a_client_may_send() {
        assert_eq!(check_body(b"line\r\n.dot\r\nlast"), Ok(()));
        assert_eq!(check_body(b""), Ok(()));
        assert_eq!(check_body(b"a\r.\r\n"), Err(BodyError::BareLineEnding));
        assert_eq!(check_body(b"a\n.\n"), Err(BodyError::BareLineEnding));
        assert_eq!(check_body(b"a\0b"), Err(BodyError::Nul));
        assert_eq!(check_body(&[b'x'; 998]), Ok(()));
        assert_eq!(check_body(&[b'x'; 999]), Err(BodyError::LongLine));
    }

    #[test]
    fn new_fields_cannot_inject_lines() {
        assert_eq!(Field::new("X-Spam-Flag", "YES").unwrap().raw(), b"X-Spam-Flag: YES");
        assert!(Field::new("X-Folded", "a\r\n\tb").is_ok());
        assert!(Field::new("X-Utf8", "naïve ✓").is_ok());
        for (name, value, why) in [
            ("", "v", FieldError::Name),
            ("Bad Name", "v", FieldError::Name),
            ("Bad:Name", "v", FieldError::Name),
            ("Naïve", "v", FieldError::Name),
            ("X", "v\r\nBcc: victim@example.com", FieldError::LineBreak),
            ("X", "v\r\n\r\nbody", FieldError::LineBreak),
            ("X", "v\nBcc: x", FieldError::LineBreak),
            ("X", "v\rx", FieldError::LineBreak),
            ("X", "v\r\n", FieldError::LineBreak),
            ("X", "v\r\n \r\n\tw", FieldError::LineBreak),
            ("X", "v\0", FieldError::Control),
            ("X", "v\x1b[2J", FieldError::Control),
        ] {
            assert_eq!(Field::new(name, value), Err(why), "{name:?}: {value:?}");
        }
    }

    #[test]
    fn the_header_section_ends_after_its_empty_line() {
        assert_eq!(
            header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore"),
            b"A: 1\r\nB: 2\r\n\r\n"
        );
        assert_eq!(header_section(b"\r\nbody only\r\n"), b"\r\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
        assert_eq!(header_section(b""), b"");
    }
}
