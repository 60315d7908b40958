//! The SMTP client that relays a message upstream for a plugin (the proxy): one
//! connection per message, EHLO (HELO if refused), STARTTLS as the plugin's `relay_tls`
//! says (then EHLO again), MAIL, every RCPT, DATA, QUIT.
//! All or nothing: if the upstream refuses any recipient, nothing is sent, so that our
//! client's single reply is true for every recipient.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsConnector, TlsStream};
use wasmtpd_protocol::address::parse_mailbox;
use wasmtpd_protocol::{ChunkReceiver, ServerReply, data_to_send};

use crate::handler::Message;
use crate::reply_reader::ReplyReader;
use crate::session_stream::SessionStream;
use crate::upstream_tls::UpstreamTls;

/// Why a relay did not deliver (the WIT `relay-error`; `not-allowed` for an upstream is
/// decided by the plugin runtime before calling here).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    /// The envelope holds something that is not an RFC 5321 path: nothing was sent (it
    /// would have been written into `MAIL FROM:<...>` or `RCPT TO:<...>` as it is).
    #[error("{0}")]
    InvalidEnvelope(String),
    /// Unreachable, too slow, or not speaking SMTP: temporary.
    #[error("{0}")]
    Unavailable(String),
    /// The upstream's refusal, on one line.
    #[error("{0}")]
    Rejected(String),
}

/// RFC 5321 4.5.3.1.6: a text line, CRLF included.
const MAX_TEXT_LINE: usize = 1000;

/// What a relay sends: the envelope and the message.
pub struct Envelope<'a> {
    /// `""` for the null reverse path.
    pub mail_from: &'a str,
    pub rcpt_tos: &'a [String],
    pub data: &'a [u8],
    /// A `Received:` field (without its CRLF) sent before `data`: the trace of the
    /// message in hand.
    pub trace: Option<&'a str>,
    /// The message in hand, whose DSN parameters go on to an upstream that offers DSN
    /// and whose body type says whether DATA can carry it.
    pub in_hand: Option<&'a Message>,
}

/// RFC 3461's MAIL parameters among a message's (checked by the session when received).
fn dsn_mail_params(message: &Message) -> impl Iterator<Item = &str> {
    message
        .mail_options
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("RET=") || p.starts_with("ENVID="))
}

/// RFC 3461's RCPT parameters of one recipient of a message.
fn dsn_rcpt_params<'a>(message: &'a Message, rcpt: &str) -> impl Iterator<Item = &'a str> {
    message
        .rcpt_options_of(rcpt)
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("NOTIFY=") || p.starts_with("ORCPT="))
}

impl Envelope<'_> {
    /// Every address an RFC 5321 path (the sender may be empty, the null path), and at
    /// least one recipient: checked before any byte goes upstream.
    pub fn check(&self) -> Result<(), RelayError> {
        if !self.mail_from.is_empty() {
            check_path("sender", self.mail_from)?;
        }
        if self.rcpt_tos.is_empty() {
            return Err(RelayError::InvalidEnvelope("no recipient".into()));
        }
        self.rcpt_tos.iter().try_for_each(|rcpt| check_path("recipient", rcpt))
    }
}

fn check_path(role: &str, address: &str) -> Result<(), RelayError> {
    parse_mailbox(address)
        .map(drop)
        .map_err(|_| RelayError::InvalidEnvelope(format!("{role} {address:?} is not an RFC 5321 path")))
}

/// RFC 5321 4.5.3.2's client timeouts, shortened: a relay runs while our own client
/// waits for its reply.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    /// For the reply after the final `.`, which the upstream may take time over.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(30),
            data_end: Duration::from_secs(60),
        }
    }
}

/// Relays one message to `upstream` (`host:port`) and returns its final reply.
pub async fn relay(
    upstream: &str,
    helo_name: &str,
    envelope: &Envelope<'_>,
    timeouts: Timeouts,
    tls: &UpstreamTls,
) -> Result<ServerReply, RelayError> {
    envelope.check()?;
    // A BINARYMIME body (RFC 3030) that is not also valid text cannot go by DATA, and this
    // client does not convert it: refused before any connection, for good.
    if envelope
        .in_hand
        .is_some_and(|m| m.mail_options.iter().any(|o| o == "BODY=BINARYMIME"))
        && !ChunkReceiver::is_text(envelope.data, MAX_TEXT_LINE)
    {
        return Err(RelayError::Rejected(
            "554 5.6.3 A binary message cannot be relayed: the relay sends by DATA and does not convert".into(),
        ));
    }
    let first = attempt(upstream, helo_name, envelope, timeouts, tls).await;
    match (first, tls) {
        // Opportunistic TLS is never a reason to defer mail: as Postfix's `may`, a
        // failed handshake means a new connection in the clear.
        (Err(Attempt::Handshake(why)), UpstreamTls::Opportunistic(_)) => {
            tracing::warn!(upstream, "TLS handshake failed ({why}); relaying in the clear");
            match attempt(upstream, helo_name, envelope, timeouts, &UpstreamTls::Off).await {
                Ok(reply) => Ok(reply),
                Err(Attempt::Failed(e)) => Err(e),
                Err(Attempt::Handshake(why)) => Err(RelayError::Unavailable(format!("TLS handshake: {why}"))),
            }
        }
        (Ok(reply), _) => Ok(reply),
        (Err(Attempt::Failed(e)), _) => Err(e),
        (Err(Attempt::Handshake(why)), _) => Err(RelayError::Unavailable(format!("TLS handshake: {why}"))),
    }
}

/// How one connection's try went wrong: a failed handshake is told apart, to be tried
/// again in the clear where TLS was only opportunistic.
enum Attempt {
    Failed(RelayError),
    Handshake(String),
}

impl From<RelayError> for Attempt {
    fn from(e: RelayError) -> Attempt {
        Attempt::Failed(e)
    }
}

async fn attempt(
    upstream: &str,
    helo_name: &str,
    envelope: &Envelope<'_>,
    timeouts: Timeouts,
    tls: &UpstreamTls,
) -> Result<ServerReply, Attempt> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| RelayError::Unavailable(format!("{what}: {e}"));
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(upstream))
        .await
        .map_err(|e| unavailable("connect", &e))?
        .map_err(|e| unavailable("connect", &e))?;
    let _ = stream.set_nodelay(true);
    let mut conn = Connection {
        stream: SessionStream::Plain(stream),
        replies: ReplyReader::default(),
        timeouts,
    };
    let host = upstream.rsplit_once(':').map_or(upstream, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let result = conn.transaction(helo_name, host, tls, envelope).await;
    if matches!(result, Ok(_) | Err(Attempt::Failed(RelayError::Rejected(_)))) {
        // Polite, and not worth waiting long for.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.command("QUIT", timeouts.command)).await;
    }
    result
}

struct Connection {
    stream: SessionStream<TcpStream>,
    replies: ReplyReader,
    timeouts: Timeouts,
}

impl Connection {
    async fn transaction(
        &mut self,
        helo_name: &str,
        host: &str,
        tls: &UpstreamTls,
        envelope: &Envelope<'_>,
    ) -> Result<ServerReply, Attempt> {
        let timeout = self.timeouts.command;
        expect_positive(self.read_reply(timeout).await?)?;
        let mut extensions = self.greet(helo_name).await?;
        let offered = extensions.iter().any(|e| e.split(' ').next() == Some("STARTTLS"));
        match tls {
            UpstreamTls::Off => {}
            UpstreamTls::Opportunistic(config) if offered => {
                // Refused (454, say): RFC 3207 lets the session go on in the clear.
                if self.start_tls(host, config).await? {
                    extensions = self.greet(helo_name).await?;
                }
            }
            UpstreamTls::Opportunistic(_) => {}
            UpstreamTls::Required(config) if offered => {
                if !self.start_tls(host, config).await? {
                    let refused = "the upstream refused STARTTLS, which relay_tls = \"required\" asks";
                    return Err(RelayError::Unavailable(refused.into()).into());
                }
                extensions = self.greet(helo_name).await?;
            }
            UpstreamTls::Required(_) => {
                let absent = "the upstream does not offer STARTTLS, which relay_tls = \"required\" asks";
                return Err(RelayError::Unavailable(absent.into()).into());
            }
        }
        let has = |ext: &str| extensions.iter().any(|e| e.split(' ').next() == Some(ext));
        let mut mail = format!("MAIL FROM:<{}>", envelope.mail_from);
        if has("SIZE") {
            mail.push_str(&format!(" SIZE={}", envelope.data.len()));
        }
        if !envelope.data.is_ascii() && has("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        let utf8_envelope = !envelope.mail_from.is_ascii() || envelope.rcpt_tos.iter().any(|r| !r.is_ascii());
        if utf8_envelope {
            if !has("SMTPUTF8") {
                return Err(RelayError::Rejected(
                    "553 5.6.7 Upstream does not support SMTPUTF8 for this envelope".into(),
                )
                .into());
            }
            mail.push_str(" SMTPUTF8");
        }
        // DSN requests go on only to an upstream that takes them; to one that does not,
        // they are dropped (no "relayed" report is made: the server keeps no queue).
        let dsn = envelope.in_hand.filter(|_| has("DSN"));
        for param in dsn.into_iter().flat_map(dsn_mail_params) {
            mail.push(' ');
            mail.push_str(param);
        }
        expect_positive(self.command(&mail, timeout).await?)?;
        let mut refusals = Vec::new();
        for rcpt in envelope.rcpt_tos {
            let mut command = format!("RCPT TO:<{rcpt}>");
            for param in dsn.into_iter().flat_map(|m| dsn_rcpt_params(m, rcpt)) {
                command.push(' ');
                command.push_str(param);
            }
            let reply = self.command(&command, timeout).await?;
            if !reply.is_positive() {
                refusals.push(reply);
            }
        }
        if let Some(first) = refusals.iter().find(|r| r.code < 500).or(refusals.first()) {
            // All or nothing: our client gets one reply for every recipient.
            let _ = self.command("RSET", timeout).await;
            return Err(RelayError::Rejected(first.one_line()).into());
        }
        let go_ahead = self.command("DATA", timeout).await?;
        if go_ahead.code != 354 {
            return Err(RelayError::Rejected(go_ahead.one_line()).into());
        }
        if let Some(trace) = envelope.trace {
            // Sent on its own: the message is not copied to put it first. A trace line
            // starts with no dot, and ends a line, so the data is stuffed as it would be.
            self.write(format!("{trace}\r\n").as_bytes()).await?;
        }
        self.write(&data_to_send(envelope.data)).await?;
        Ok(expect_positive(self.read_reply(self.timeouts.data_end).await?)?)
    }

    /// EHLO (HELO if refused): the extensions the upstream offers, upper-cased.
    async fn greet(&mut self, helo_name: &str) -> Result<Vec<String>, RelayError> {
        let timeout = self.timeouts.command;
        let ehlo = self.command(&format!("EHLO {helo_name}"), timeout).await?;
        if ehlo.is_positive() {
            return Ok(ehlo.lines.iter().skip(1).map(|l| l.to_ascii_uppercase()).collect());
        }
        expect_positive(self.command(&format!("HELO {helo_name}"), timeout).await?)?;
        Ok(Vec::new())
    }

    /// STARTTLS and the handshake: `false` if the upstream refused STARTTLS (the session
    /// goes on in the clear), a handshake that failed told apart.
    async fn start_tls(&mut self, host: &str, config: &Arc<ClientConfig>) -> Result<bool, Attempt> {
        let reply = self.command("STARTTLS", self.timeouts.command).await?;
        if reply.code != 220 {
            tracing::info!(reply = %reply.one_line(), "the upstream refused STARTTLS");
            return Ok(false);
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| Attempt::Handshake(format!("{host:?} is not a server name: {e}")))?;
        if self.stream.is_tls() {
            return Err(RelayError::Unavailable("STARTTLS twice".into()).into());
        }
        let (connector, timeout) = (TlsConnector::from(Arc::clone(config)), self.timeouts.command);
        let handshake = |tcp| async move {
            let shaken = tokio::time::timeout(timeout, connector.connect(name, tcp)).await;
            shaken
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))?
                .map(TlsStream::from)
        };
        self.stream
            .upgrade_with(handshake)
            .await
            .map_err(|e| Attempt::Handshake(e.to_string()))?;
        // Whatever came before the handshake is not trusted (RFC 3207 4.2).
        self.replies = ReplyReader::default();
        Ok(true)
    }

    async fn command(&mut self, line: &str, timeout: Duration) -> Result<ServerReply, RelayError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(timeout).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), RelayError> {
        tokio::time::timeout(self.timeouts.command, self.stream.write_all(bytes))
            .await
            .map_err(|_| RelayError::Unavailable("timed out sending".into()))?
            .map_err(|e| RelayError::Unavailable(format!("send: {e}")))
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<ServerReply, RelayError> {
        match tokio::time::timeout(timeout, self.replies.next(&mut self.stream)).await {
            Err(_) => Err(RelayError::Unavailable("timed out waiting for a reply".into())),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(RelayError::Unavailable(match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "upstream closed the connection".into(),
                std::io::ErrorKind::InvalidData => format!("upstream: {e}"),
                _ => format!("receive: {e}"),
            })),
        }
    }
}

fn expect_positive(reply: ServerReply) -> Result<ServerReply, RelayError> {
    if reply.is_positive() {
        Ok(reply)
    } else if reply.code == 421 {
        Err(RelayError::Unavailable(reply.one_line()))
    } else {
        Err(RelayError::Rejected(reply.one_line()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope<'a>(mail_from: &'a str, rcpt_tos: &'a [String]) -> Envelope<'a> {
        Envelope {
            mail_from,
            rcpt_tos,
            data: b"",
            trace: None,
            in_hand: None,
        }
    }

    #[test]
    fn an_envelope_that_would_inject_commands_is_refused_before_sending() {
        let one = ["b@example.com".to_owned()];
        assert_eq!(envelope("a@example.org", &one).check(), Ok(()));
        assert_eq!(envelope("", &one).check(), Ok(()));
        for (from, rcpts) in [
            ("a@example.org>\r\nRCPT TO:<evil@example.net", &one[..]),
            ("a@example.org> SIZE=1", &one[..]),
            ("not an address", &one[..]),
            ("a@example.org", &["b@example.com>\r\nDATA".to_owned()][..]),
            ("a@example.org", &["<b@example.com>".to_owned()][..]),
            ("a@example.org", &[][..]),
        ] {
            let refused = envelope(from, rcpts).check();
            assert!(
                matches!(refused, Err(RelayError::InvalidEnvelope(_))),
                "{from:?} {rcpts:?}: {refused:?}"
            );
        }
    }
}
