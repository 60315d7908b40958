//! SMTP command lines parsed into typed commands (RFC 5321 4.1.1), with typed errors
//! that know their reply. The session decides what is allowed when; this decides syntax.

use crate::address::{Address, PathError, parse_path};
use crate::dsn;
use crate::reply::{EnhancedCode, Reply};

/// One command line, parsed. Text arguments borrow from the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Helo(&'a str),
    Ehlo(&'a str),
    /// RFC 2033: LMTP's greeting, in place of HELO and EHLO.
    Lhlo(&'a str),
    /// `from` is `None` for the null reverse path `<>`.
    Mail {
        from: Option<Address>,
        params: MailParams,
    },
    Rcpt {
        to: Address,
        params: RcptParams,
    },
    Data,
    /// RFC 3030: a chunk of `size` octets follows the command line; `last` ends the message.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(&'a str),
    Expn,
    Help(Option<&'a str>),
    /// RFC 3207: the rest of the session is to go over TLS.
    StartTls,
    /// RFC 4954: a SASL mechanism's name (upper-cased) and the client's first response
    /// (base64, or `=` for an empty one), if it sent it along.
    Auth {
        mechanism: String,
        initial: Option<&'a str>,
    },
}

/// RFC 6152 and RFC 3030 BODY values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// RFC 3030: binary content, which only BDAT can carry.
    BinaryMime,
}

/// The MAIL parameters this server implements, parsed, and the raw list as smtpd
/// handed it to `process_message` (`mail_options`: upper-cased, as sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 declared size.
    pub size: Option<u64>,
    pub body: Option<Body>,
    /// RFC 6531: the transaction may carry UTF-8 addresses and headers.
    pub smtputf8: bool,
    /// RFC 3461 `RET`: what a bounce returns of the message (`FULL` or `HDRS`).
    pub ret: bool,
    /// RFC 3461 `ENVID`: the sender's name for the transaction, as sent (xtext).
    pub envid: Option<String>,
    pub raw: Vec<String>,
}

/// The RCPT parameters this server implements (RFC 3461's), checked, and the raw list
/// as handlers are handed it: keywords upper-cased, `NOTIFY` upper-cased, `ORCPT` as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY`: when the recipient's delivery is to be reported.
    pub notify: bool,
    /// `ORCPT`: the original recipient, `addr-type;xtext`.
    pub orcpt: bool,
    pub raw: Vec<String>,
}

/// Why a command line was refused; each maps to one reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command this server knows (500).
    Unrecognized,
    /// Wrong arguments; holds the usage line (501).
    Syntax(&'static str),
    BadSender(PathError),
    BadRecipient(PathError),
    /// A parameter this server does not implement (555).
    UnknownParameter(String),
    /// A known parameter with a bad or repeated value (501).
    BadParameter(&'static str),
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        let reply = |code, (class, subject, detail), text: String| {
            Reply::new(code, Some(EnhancedCode { class, subject, detail }), text)
        };
        match self {
            CommandError::Unrecognized => crate::replies::UNRECOGNIZED,
            CommandError::Syntax(usage) => reply(501, (5, 5, 4), format!("Syntax: {usage}")),
            CommandError::BadSender(PathError::Syntax) => reply(501, (5, 1, 7), "Bad sender address syntax".into()),
            CommandError::BadRecipient(PathError::Syntax) => {
                reply(501, (5, 1, 3), "Bad recipient address syntax".into())
            }
            CommandError::BadSender(PathError::TooLong) | CommandError::BadRecipient(PathError::TooLong) => {
                reply(501, (5, 5, 4), "Path too long".into())
            }
            CommandError::UnknownParameter(name) => reply(
                555,
                (5, 5, 4),
                format!("Parameter {name} not recognized or not implemented"),
            ),
            CommandError::BadParameter(name) => reply(501, (5, 5, 4), format!("Bad or repeated {name} parameter")),
        }
    }
}

const USAGE_HELO: &str = "HELO hostname";
const USAGE_EHLO: &str = "EHLO hostname";
const USAGE_MAIL: &str = "MAIL FROM:<address> [parameters]";
const USAGE_RCPT: &str = "RCPT TO:<address> [parameters]";
const USAGE_VRFY: &str = "VRFY <address>";

/// Parses one command line, without its line ending.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let (verb, args) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &b""[..]),
    };
    let args = std::str::from_utf8(args).map_err(|_| CommandError::Syntax("arguments must be UTF-8"))?;
    let no_args = |cmd: Command<'static>, usage: &'static str| {
        if args.trim_end_matches(' ').is_empty() {
            Ok(cmd)
        } else {
            Err(CommandError::Syntax(usage))
        }
    };
    // The one verb longer than four letters.
    if verb.eq_ignore_ascii_case(b"STARTTLS") {
        return no_args(Command::StartTls, "STARTTLS");
    }
    let mut verb: [u8; 4] = verb.try_into().map_err(|_| CommandError::Unrecognized)?;
    verb.make_ascii_uppercase();
    match &verb {
        b"HELO" => one_word(args)
            .map(Command::Helo)
            .ok_or(CommandError::Syntax(USAGE_HELO)),
        b"EHLO" => one_word(args)
            .map(Command::Ehlo)
            .ok_or(CommandError::Syntax(USAGE_EHLO)),
        b"LHLO" => one_word(args)
            .map(Command::Lhlo)
            .ok_or(CommandError::Syntax("LHLO hostname")),
        b"MAIL" => parse_mail(args),
        b"RCPT" => parse_rcpt(args),
        b"DATA" => no_args(Command::Data, "DATA"),
        b"BDAT" => parse_bdat(args),
        b"RSET" => no_args(Command::Rset, "RSET"),
        b"QUIT" => no_args(Command::Quit, "QUIT"),
        // RFC 5321 4.1.1.9: NOOP may carry a string, which is ignored.
        b"NOOP" => Ok(Command::Noop),
        b"VRFY" => match args.trim() {
            "" => Err(CommandError::Syntax(USAGE_VRFY)),
            target => Ok(Command::Vrfy(target)),
        },
        b"EXPN" => Ok(Command::Expn),
        b"HELP" => Ok(Command::Help(Some(args.trim()).filter(|t| !t.is_empty()))),
        b"AUTH" => match args.trim_end_matches(' ').split(' ').collect::<Vec<_>>().as_slice() {
            [mechanism] if !mechanism.is_empty() => Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial: None,
            }),
            [mechanism, initial] if !mechanism.is_empty() && !initial.is_empty() => Ok(Command::Auth {
                mechanism: mechanism.to_ascii_uppercase(),
                initial: Some(initial),
            }),
            _ => Err(CommandError::Syntax("AUTH mechanism [initial-response]")),
        },
        _ => Err(CommandError::Unrecognized),
    }
}

/// The HELO/EHLO argument: one word of visible characters. Its form is not checked
/// further (RFC 5321 4.1.4: a server must not refuse mail for a wrong greeting name).
fn one_word(args: &str) -> Option<&str> {
    let word = args.trim_matches(' ');
    let visible = !word.is_empty() && word.chars().all(|c| !c.is_whitespace() && !c.is_control());
    visible.then_some(word)
}

/// `FROM:` or `TO:` after the verb, then an optional space that many clients send.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| {
        args[keyword.len()..]
            .strip_prefix(' ')
            .unwrap_or(&args[keyword.len()..])
    })
}

fn parse_mail(args: &str) -> Result<Command<'_>, CommandError> {
    let path = strip_keyword(args, "FROM:").ok_or(CommandError::Syntax(USAGE_MAIL))?;
    if !path.starts_with('<') {
        return Err(CommandError::Syntax(USAGE_MAIL));
    }
    let (from, rest) = parse_path(path).map_err(CommandError::BadSender)?;
    let mut params = MailParams::default();
    for (keyword, value) in esmtp_params(rest).map_err(|_| CommandError::Syntax(USAGE_MAIL))? {
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("SIZE", Some(v)) if params.size.is_none() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) => {
                params.size = Some(v.parse().map_err(|_| CommandError::BadParameter("SIZE"))?);
            }
            ("SIZE", _) => return Err(CommandError::BadParameter("SIZE")),
            ("BODY", Some(v)) if params.body.is_none() && v.eq_ignore_ascii_case("7BIT") => {
                params.body = Some(Body::SevenBit)
            }
            ("BODY", Some(v)) if params.body.is_none() && v.eq_ignore_ascii_case("8BITMIME") => {
                params.body = Some(Body::EightBitMime)
            }
            ("BODY", Some(v)) if params.body.is_none() && v.eq_ignore_ascii_case("BINARYMIME") => {
                params.body = Some(Body::BinaryMime)
            }
            ("BODY", _) => return Err(CommandError::BadParameter("BODY")),
            ("SMTPUTF8", None) if !params.smtputf8 => params.smtputf8 = true,
            ("SMTPUTF8", _) => return Err(CommandError::BadParameter("SMTPUTF8")),
            ("RET", Some(v)) if !params.ret && dsn::is_ret(v) => params.ret = true,
            ("RET", _) => return Err(CommandError::BadParameter("RET")),
            ("ENVID", Some(v)) if params.envid.is_none() && dsn::is_envid(v) => {
                // Case matters in an ENVID: it is handed on as sent.
                params.envid = Some(v.to_owned());
                params.raw.push(format!("ENVID={v}"));
                continue;
            }
            ("ENVID", _) => return Err(CommandError::BadParameter("ENVID")),
            _ => return Err(CommandError::UnknownParameter(upper)),
        }
        params.raw.push(as_handed(upper, value));
    }
    Ok(Command::Mail { from, params })
}

/// Where the chunk behind a BDAT command line ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkFraming {
    /// After this many octets.
    Size(u64),
    /// Nobody can tell: the size cannot be read.
    Unknown,
}

/// Where a BDAT command line's chunk ends, whatever else is wrong with the line; `None`
/// for a line whose verb is not BDAT. A refused BDAT line must still have its chunk
/// read, or the chunk would be read as commands.
pub fn chunk_framing(line: &[u8]) -> Option<ChunkFraming> {
    let verb = line.get(..4)?;
    if !verb.eq_ignore_ascii_case(b"BDAT") || line.get(4).is_some_and(|&b| b != b' ') {
        return None;
    }
    let size = line.get(5..).unwrap_or_default();
    let size = &size[..size.iter().position(|&b| b == b' ').unwrap_or(size.len())];
    let readable = !size.is_empty() && size.len() <= 20 && size.iter().all(u8::is_ascii_digit);
    let size = std::str::from_utf8(size)
        .ok()
        .filter(|_| readable)
        .and_then(|s| s.parse().ok());
    Some(size.map_or(ChunkFraming::Unknown, ChunkFraming::Size))
}

/// `BDAT chunk-size [LAST]` (RFC 3030 2): the size is 1*DIGIT, here at most 20 of them.
fn parse_bdat(args: &str) -> Result<Command<'_>, CommandError> {
    const USAGE: &str = "BDAT chunk-size [LAST]";
    let mut words = args.trim_end_matches(' ').split(' ');
    let size = words
        .next()
        .filter(|s| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(CommandError::Syntax(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(word) if word.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(USAGE)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

fn parse_rcpt(args: &str) -> Result<Command<'_>, CommandError> {
    let path = strip_keyword(args, "TO:").ok_or(CommandError::Syntax(USAGE_RCPT))?;
    if !path.starts_with('<') {
        return Err(CommandError::Syntax(USAGE_RCPT));
    }
    let (to, rest) = parse_path(path).map_err(CommandError::BadRecipient)?;
    let to = to.ok_or(CommandError::BadRecipient(PathError::Syntax))?;
    let mut params = RcptParams::default();
    for (keyword, value) in esmtp_params(rest).map_err(|_| CommandError::Syntax(USAGE_RCPT))? {
        let upper = keyword.to_ascii_uppercase();
        match (upper.as_str(), value) {
            ("NOTIFY", Some(v)) if !params.notify && dsn::is_notify(v) => {
                params.notify = true;
                params.raw.push(as_handed(upper, value));
            }
            ("NOTIFY", _) => return Err(CommandError::BadParameter("NOTIFY")),
            ("ORCPT", Some(v)) if !params.orcpt && dsn::is_orcpt(v) => {
                // The original address is handed on as sent.
                params.orcpt = true;
                params.raw.push(format!("ORCPT={v}"));
            }
            ("ORCPT", _) => return Err(CommandError::BadParameter("ORCPT")),
            _ => return Err(CommandError::UnknownParameter(upper)),
        }
    }
    Ok(Command::Rcpt { to, params })
}

struct BadParamSyntax;

/// A parameter as handlers are handed it: `KEYWORD` or `KEYWORD=VALUE`, upper-cased.
fn as_handed(upper_keyword: String, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{upper_keyword}={}", v.to_ascii_uppercase()),
        None => upper_keyword,
    }
}

/// One ESMTP parameter (`KEYWORD` or `KEYWORD=value`, RFC 5321 4.1.2) written as MAIL's
/// parameters are handed to handlers (upper-cased); `None` if it is not one.
pub fn esmtp_param(param: &str) -> Option<String> {
    let spaced = format!(" {param}");
    let mut params = esmtp_params(&spaced).ok()?;
    let (keyword, value) = params.next()?;
    if params.next().is_some() {
        return None;
    }
    Some(as_handed(keyword.to_ascii_uppercase(), value))
}

/// `*(SP esmtp-param)` after a path; `esmtp-param = esmtp-keyword ["=" esmtp-value]`.
fn esmtp_params(rest: &str) -> Result<impl Iterator<Item = (&str, Option<&str>)>, BadParamSyntax> {
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(BadParamSyntax);
    }
    let params: Vec<(&str, Option<&str>)> = rest
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
        .collect();
    let keyword_ok = |k: &str| {
        k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    // esmtp-value: visible characters but '=', or UTF-8 (RFC 6531).
    let value_ok = |v: &str| !v.is_empty() && v.chars().all(|c| (c.is_ascii_graphic() && c != '=') || !c.is_ascii());
    if params.iter().all(|(k, v)| keyword_ok(k) && v.is_none_or(value_ok)) {
        Ok(params.into_iter())
    } else {
        Err(BadParamSyntax)
    }
}
