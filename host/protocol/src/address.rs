//! Mailbox and path syntax of RFC 5321 4.1.2, extended with UTF-8 by RFC 6531.

use std::fmt;

/// A mailbox as the client wrote it (`local@domain`, or `Postmaster` alone in RCPT).
/// Quoted local parts are kept quoted so the address can be handed on unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Address(String);

impl Address {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain, or `None` for the bare `Postmaster` recipient.
    pub fn domain(&self) -> Option<&str> {
        // Domains never contain '@'; a quoted local part may, so look from the right.
        self.0.rfind('@').map(|at| &self.0[at + 1..])
    }

    pub fn local_part(&self) -> &str {
        self.0.rfind('@').map_or(&self.0, |at| &self.0[..at])
    }

    /// RFC 6531: a non-ASCII address is allowed only in a transaction with SMTPUTF8.
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }

    /// An address from trusted text (configuration, tests); not checked.
    pub fn new_unchecked(s: impl Into<String>) -> Address {
        Address(s.into())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is wrong with a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Not `<mailbox>`: a missing bracket, a bad local part or domain.
    Syntax,
    /// Over the RFC 5321 4.5.3.1 limits: local part 64, domain 255, path 256 octets.
    TooLong,
}

const MAX_LOCAL_PART: usize = 64;
const MAX_DOMAIN: usize = 255;
const MAX_PATH: usize = 256;

/// A mailbox given without its brackets, as plugins hand addresses to the host
/// (`a@example.org`): the whole of `s` must be one RFC 5321 path's mailbox.
pub fn parse_mailbox(s: &str) -> Result<Address, PathError> {
    match parse_path(&format!("<{s}>"))? {
        (Some(address), "") => Ok(address),
        _ => Err(PathError::Syntax),
    }
}

/// Parses a path that starts at `s[0] == '<'`; returns the mailbox (`None` for `<>`) and
/// what follows the closing bracket. A source route (`<@a,@b:user@c>`) is checked and
/// dropped, as RFC 5321 4.1.2 and appendix C ask.
pub fn parse_path(s: &str) -> Result<(Option<Address>, &str), PathError> {
    let inner = s.strip_prefix('<').ok_or(PathError::Syntax)?;
    if let Some(rest) = inner.strip_prefix('>') {
        return Ok((None, rest));
    }
    let mailbox_start = skip_source_route(inner)?;
    let mailbox = &inner[mailbox_start..];
    let local_len = local_part_len(mailbox)?;
    let allow_bare_postmaster = mailbox_start == 0;
    let after_local = &mailbox[local_len..];
    let (domain_len, rest) = match after_local.strip_prefix('@') {
        Some(d) => {
            let len = domain_or_literal_len(d)?;
            (Some(len), &d[len..])
        }
        None => (None, after_local),
    };
    let rest = rest.strip_prefix('>').ok_or(PathError::Syntax)?;
    let text = match domain_len {
        Some(d) => &mailbox[..local_len + 1 + d],
        None if allow_bare_postmaster && mailbox[..local_len].eq_ignore_ascii_case("postmaster") => {
            &mailbox[..local_len]
        }
        None => return Err(PathError::Syntax),
    };
    if local_len > MAX_LOCAL_PART || domain_len.is_some_and(|d| d > MAX_DOMAIN) || s.len() - rest.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    Ok((Some(Address(text.to_owned())), rest))
}

/// `A-d-l ":"`, if present: returns where the mailbox starts.
fn skip_source_route(s: &str) -> Result<usize, PathError> {
    if !s.starts_with('@') {
        return Ok(0);
    }
    let mut pos = 0;
    loop {
        // At-domain = "@" Domain
        pos += 1;
        pos += domain_len(&s[pos..])?;
        match s.as_bytes().get(pos) {
            Some(b',') if s.as_bytes().get(pos + 1) == Some(&b'@') => pos += 1,
            Some(b':') => return Ok(pos + 1),
            _ => return Err(PathError::Syntax),
        }
    }
}

fn local_part_len(s: &str) -> Result<usize, PathError> {
    if s.starts_with('"') {
        quoted_string_len(s)
    } else {
        dot_string_len(s)
    }
}

/// RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// Dot-string = Atom *("." Atom)
fn dot_string_len(s: &str) -> Result<usize, PathError> {
    let len = s.find(|c: char| !(is_atext(c) || c == '.')).unwrap_or(s.len());
    let dots = &s[..len];
    if dots.is_empty() || dots.starts_with('.') || dots.ends_with('.') || dots.contains("..") {
        return Err(PathError::Syntax);
    }
    Ok(len)
}

/// Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE
fn quoted_string_len(s: &str) -> Result<usize, PathError> {
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok(i + 1),
            '\\' => match chars.next() {
                Some((_, q)) if (' '..='~').contains(&q) => {}
                _ => return Err(PathError::Syntax),
            },
            ' '..='~' => {}
            c if !c.is_ascii() => {}
            _ => return Err(PathError::Syntax),
        }
    }
    Err(PathError::Syntax)
}

fn domain_or_literal_len(s: &str) -> Result<usize, PathError> {
    if s.starts_with('[') {
        address_literal_len(s)
    } else {
        domain_len(s)
    }
}

/// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str], or a U-label.
fn domain_len(s: &str) -> Result<usize, PathError> {
    let len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || !c.is_ascii()))
        .unwrap_or(s.len());
    let domain = &s[..len];
    let labels_ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if labels_ok { Ok(len) } else { Err(PathError::Syntax) }
}

/// `[1.2.3.4]`, `[IPv6:...]` or a General-address-literal `[tag:text]`.
fn address_literal_len(s: &str) -> Result<usize, PathError> {
    let end = s.find(']').ok_or(PathError::Syntax)?;
    let body = &s[1..end];
    let valid = if let Some(v6) = body.strip_prefix("IPv6:") {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else if let Some((tag, text)) = body.split_once(':') {
        domain_len(tag) == Ok(tag.len())
            && !text.is_empty()
            && text
                .bytes()
                .all(|b| (33..=126).contains(&b) && b != b'[' && b != b']' && b != b'\\')
    } else {
        body.parse::<std::net::Ipv4Addr>().is_ok()
    };
    if valid { Ok(end + 1) } else { Err(PathError::Syntax) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(s: &str) -> Result<Option<String>, PathError> {
        parse_path(s).map(|(a, rest)| {
            assert_eq!(rest, "", "{s}");
            a.map(|a| a.0)
        })
    }

    #[test]
    fn accepted_paths() {
        for (input, want) in [
            ("<>", None),
            ("<user@example.com>", Some("user@example.com")),
            (
                "<first.last+tag@sub.example.com>",
                Some("first.last+tag@sub.example.com"),
            ),
            ("<\"john doe\"@example.com>", Some("\"john doe\"@example.com")),
            ("<\"a@b\\\"c\"@example.com>", Some("\"a@b\\\"c\"@example.com")),
            ("<user@[192.0.2.1]>", Some("user@[192.0.2.1]")),
            ("<user@[IPv6:2001:db8::1]>", Some("user@[IPv6:2001:db8::1]")),
            ("<@relay.example,@b.example:user@example.com>", Some("user@example.com")),
            ("<Postmaster>", Some("Postmaster")),
            ("<postmaster>", Some("postmaster")),
            ("<δοκιμή@παράδειγμα.δοκιμή>", Some("δοκιμή@παράδειγμα.δοκιμή")),
        ] {
            assert_eq!(mailbox(input), Ok(want.map(str::to_owned)), "{input}");
        }
    }

    #[test]
    fn rejected_paths() {
        for input in [
            "user@example.com",
            "<user@example.com",
            "<user>",
            "<@example.com>",
            "<user@>",
            "<.user@example.com>",
            "<user.@example.com>",
            "<us..er@example.com>",
            "<user@-example.com>",
            "<user@example..com>",
            "<user@exa mple.com>",
            "<\"unterminated@example.com>",
            "<user@[300.1.1.1]>",
            "<user@[IPv6:zz]>",
            "<@relay:postmaster>",
        ] {
            assert!(mailbox(input).is_err(), "{input}");
        }
    }

    #[test]
    fn length_limits() {
        let local = "a".repeat(64);
        assert!(mailbox(&format!("<{local}@example.com>")).is_ok());
        assert_eq!(mailbox(&format!("<a{local}@example.com>")), Err(PathError::TooLong));
        let long_domain = format!("{}.com", vec!["a".repeat(60); 5].join("."));
        assert_eq!(mailbox(&format!("<u@{long_domain}>")), Err(PathError::TooLong));
    }

    #[test]
    fn domain_and_local_part_split_on_the_last_at() {
        let (a, _) = parse_path("<\"x@y\"@example.com>").unwrap();
        let a = a.unwrap();
        assert_eq!(a.domain(), Some("example.com"));
        assert_eq!(a.local_part(), "\"x@y\"");
        assert_eq!(Address::new_unchecked("Postmaster").domain(), None);
    }
}
