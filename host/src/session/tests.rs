//! Whole sessions over an in-memory pipe: the sequencing, limits and replies of the
//! protocol without a socket. The real binary with real clients is tested in tests/e2e.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_util::sync::CancellationToken;

mod bdat;

use super::Session;
use crate::auth::tests::quick_hash;
use crate::auth::{AuthConfig, Authenticator};
use crate::config::{BareLf, Limits};
use crate::handler::{
    Handlers, Message, PluginError, PluginFailure, SessionFacts, SessionHandlers, Verdict, VerdictFuture,
};
use crate::hook::Hook;
use crate::listener::{Access, ListenerContext};
use crate::tls::ListenerTls;

/// What the test handlers answer: `Ok(None)` to accept, `Ok(Some(reply))`, or
/// `Err(why)` to fail like a trapped plugin.
type Answer = Result<Option<String>, String>;

/// Keeps every message and every hook it saw, and answers as told.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<Message>>,
    hooks: Mutex<Vec<String>>,
    /// What the session told the handlers it learnt, in order.
    facts: Mutex<Vec<SessionFacts>>,
    message_answer: Mutex<Option<Answer>>,
    /// Answers for hooks whose recorded form starts with the key, e.g. `rcpt <b@`.
    hook_answers: Mutex<Vec<(String, Answer)>>,
}

fn verdict(answer: Answer) -> Verdict {
    match answer {
        Ok(None) => Verdict::Continue,
        Ok(Some(text)) => Verdict::answered("recorder".into(), &text),
        Err(why) => Verdict::Failed {
            handler: "recorder".into(),
            failure: PluginFailure::new(PluginError::Trap, why),
        },
    }
}

fn describe(hook: &Hook) -> String {
    match hook {
        Hook::Connect => "connect".into(),
        Hook::Helo { name, extended } => format!("helo {name} {extended}"),
        Hook::Mail { from, options, .. } => format!("mail <{from}> {options:?}"),
        Hook::Rcpt { to, .. } => format!("rcpt <{to}>"),
        Hook::Data => "data".into(),
        Hook::Rset => "rset".into(),
        Hook::Quit => "quit".into(),
        Hook::Auth { identity, .. } => format!("auth {identity}"),
    }
}

struct RecorderSession(Arc<Recorder>);

impl SessionHandlers for RecorderSession {
    fn hook<'a>(&'a mut self, hook: Hook<'a>) -> VerdictFuture<'a> {
        let seen = describe(&hook);
        let answer = self
            .0
            .hook_answers
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| seen.starts_with(k.as_str()))
            .map(|(_, a)| a.clone());
        self.0.hooks.lock().unwrap().push(seen);
        Box::pin(async move { verdict(answer.unwrap_or(Ok(None))) })
    }

    fn learn(&mut self, facts: Arc<SessionFacts>) {
        self.0.facts.lock().unwrap().push((*facts).clone());
    }

    fn process_message<'a>(&'a mut self, message: &'a Arc<Message>) -> VerdictFuture<'a> {
        self.0.messages.lock().unwrap().push(Message::clone(message));
        let answer = self.0.message_answer.lock().unwrap().clone().unwrap_or(Ok(None));
        Box::pin(async move { verdict(answer) })
    }
}

struct RecorderHandlers(Arc<Recorder>);

impl Handlers for RecorderHandlers {
    fn body_copies(&self) -> usize {
        1
    }

    fn session(&self, _peer: SocketAddr) -> Box<dyn SessionHandlers> {
        Box::new(RecorderSession(Arc::clone(&self.0)))
    }

    fn names(&self) -> Vec<String> {
        vec!["recorder".into()]
    }
}

/// The client's end: the in-memory pipe, or TLS over it after STARTTLS.
trait Pipe: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Pipe for T {}

struct Client {
    pipe: Box<dyn Pipe>,
    unread: Vec<u8>,
    recorder: Arc<Recorder>,
    shutdown: CancellationToken,
    session: JoinHandle<std::io::Result<()>>,
}

/// How long a test waits for a reply before failing (generous: a shared machine). Tests on
/// a paused clock set the session timeouts below it, so the session's fires first.
const REPLY_WAIT: Duration = Duration::from_secs(10);

fn start(limits: Limits) -> Client {
    start_answering(limits, Ok(None))
}

fn start_answering(limits: Limits, answer: Answer) -> Client {
    let recorder = Arc::new(Recorder::default());
    *recorder.message_answer.lock().unwrap() = Some(answer);
    start_with(limits, recorder)
}

fn start_with(limits: Limits, recorder: Arc<Recorder>) -> Client {
    start_listener(limits, recorder, Access::default())
}

fn start_listener(limits: Limits, recorder: Arc<Recorder>, access: Access) -> Client {
    let ctx = context(limits, &recorder, access);
    serve(ctx, recorder)
}

fn context(limits: Limits, recorder: &Arc<Recorder>, access: Access) -> ListenerContext {
    let handlers = Arc::new(RecorderHandlers(Arc::clone(recorder)));
    ListenerContext::new(
        "test".into(),
        Arc::default(),
        "mx.test".into(),
        limits,
        None,
        handlers,
        access,
    )
}

fn serve(ctx: ListenerContext, recorder: Arc<Recorder>) -> Client {
    let ctx = Arc::new(ctx);
    let (pipe, server_end) = tokio::io::duplex(256 * 1024);
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let shutdown = CancellationToken::new();
    let session = tokio::spawn(Session::new(server_end, peer, ctx, shutdown.clone()).run());
    Client {
        pipe: Box::new(pipe),
        unread: Vec::new(),
        recorder,
        shutdown,
        session,
    }
}

impl Client {
    /// The TLS handshake as a client that trusts `cert`, named `localhost` in it.
    async fn start_tls(&mut self, cert: &CertificateDer<'static>) -> std::io::Result<()> {
        assert!(self.unread.is_empty(), "unread before TLS: {:?}", self.unread);
        let mut roots = RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let plain = std::mem::replace(&mut self.pipe, Box::new(tokio::io::duplex(1).0));
        let name = ServerName::try_from("localhost").unwrap();
        let tls = TlsConnector::from(Arc::new(config)).connect(name, plain).await?;
        self.pipe = Box::new(tls);
        Ok(())
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.pipe.write_all(bytes).await.unwrap();
    }

    /// Reads one whole reply, its lines joined with `\n`, line endings removed.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.unread.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.unread[..end].to_vec()).unwrap();
                self.unread.drain(..end + 2);
                return line;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(REPLY_WAIT, self.pipe.read(&mut chunk))
                .await
                .expect("no reply in time")
                .unwrap();
            assert!(
                n > 0,
                "session closed; unread: {:?}",
                String::from_utf8_lossy(&self.unread)
            );
            self.unread.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command and returns the reply's first line.
    async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, reply_start: &str) {
        let reply = self.command(line).await;
        assert!(
            reply.starts_with(reply_start),
            "{line:?} got {reply:?}, wanted {reply_start:?}"
        );
    }

    /// Asserts that the server closed the connection after what was read so far.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(REPLY_WAIT, self.pipe.read_to_end(&mut rest))
            .await
            .expect("session did not close")
            .unwrap();
        assert!(
            rest.is_empty(),
            "more after the last reply: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let result = tokio::time::timeout(REPLY_WAIT, &mut self.session).await.unwrap();
        result.unwrap().unwrap();
    }

    fn messages(&self) -> Vec<Message> {
        self.recorder.messages.lock().unwrap().clone()
    }

    async fn greeted(limits: Limits) -> Client {
        let mut client = start(limits);
        assert!(client.reply().await.starts_with("220 mx.test ESMTP"));
        client.expect("EHLO client.test", "250-mx.test").await;
        client
    }
}

#[tokio::test]
async fn ehlo_advertises_every_extension_implemented() {
    let mut client = start(Limits::default());
    client.reply().await;
    let reply = client.command("EHLO client.test").await;
    assert_eq!(
        reply,
        "250-mx.test\n250-SIZE 33554432\n250-8BITMIME\n250-SMTPUTF8\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n250-DSN\n250-CHUNKING\n250-BINARYMIME\n250 HELP"
    );
}

#[tokio::test]
async fn a_message_reaches_the_handler_with_its_envelope_and_parameters() {
    let mut client = Client::greeted(Limits::default()).await;
    client
        .expect("MAIL FROM:<a@example.org> SIZE=20 BODY=8BITMIME", "250 2.1.0")
        .await;
    client.expect("RCPT TO:<b@example.com>", "250 2.1.5").await;
    client.expect("RCPT TO:<Postmaster>", "250 2.1.5").await;
    client.expect("DATA", "354").await;
    client.expect("Subject: hi\r\n\r\n..dot\r\n.", "250 2.0.0").await;
    let messages = client.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.peer.to_string(), "192.0.2.7:40000");
    assert_eq!(message.mail_from.as_ref().unwrap().as_str(), "a@example.org");
    let to: Vec<&str> = message.rcpt_to.iter().map(|a| a.as_str()).collect();
    assert_eq!(to, ["b@example.com", "Postmaster"]);
    assert_eq!(&message.data[..], b"Subject: hi\r\n\r\n.dot\r\n");
    assert_eq!(message.mail_options, ["SIZE=20", "BODY=8BITMIME"]);
    // The envelope is cleared after DATA: a new transaction needs MAIL again.
    client.expect("RCPT TO:<b@example.com>", "503 5.5.1").await;
    client.expect("QUIT", "221 2.0.0").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn the_null_sender_is_accepted() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client.expect("x\r\n.", "250").await;
    assert!(client.messages()[0].mail_from.is_none());
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let mut client = start(Limits::default());
    client.reply().await;
    client.expect("MAIL FROM:<a@example.org>", "503").await;
    client.expect("HELO client.test", "250 mx.test").await;
    client.expect("RCPT TO:<b@example.com>", "503").await;
    client.expect("DATA", "503").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("MAIL FROM:<a@example.org>", "503").await;
    client.expect("DATA", "503").await;
}

#[tokio::test]
async fn helo_replies_carry_no_enhanced_codes_and_refuse_parameters() {
    let mut client = start(Limits::default());
    client.reply().await;
    client.expect("HELO client.test", "250 mx.test").await;
    client.expect("MAIL FROM:<a@example.org> SIZE=10", "555 ").await;
    assert_eq!(client.command("MAIL FROM:<a@example.org>").await, "250 OK");
}

#[tokio::test]
async fn a_second_greeting_resets_the_transaction() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("EHLO again.test", "250-mx.test").await;
    client.expect("DATA", "503").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
}

#[tokio::test]
async fn rset_noop_vrfy_expn_help_and_unknown_commands() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RSET", "250 2.0.0").await;
    client.expect("RCPT TO:<b@example.com>", "503").await;
    client.expect("NOOP", "250 2.0.0").await;
    client.expect("VRFY someone", "252 2.").await;
    client.expect("EXPN list", "502 5.5.1").await;
    client.expect("HELP", "214").await;
    client.expect("FROB", "500 5.5.").await;
    client.expect("MAIL FROM:a@example.org", "501 5.5.").await;
    client.expect("MAIL FROM:<a@example.org> FROB=1", "555 5.5.4").await;
    client.expect("MAIL FROM:<a@example.org> BODY=SIXBIT", "501").await;
    // A binary body only comes by BDAT (RFC 3030 3): DATA after it is out of sequence.
    client.expect("MAIL FROM:<a@example.org> BODY=BINARYMIME", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "503 5.5.1").await;
    client.expect("RSET", "250").await;
}

#[tokio::test]
async fn utf8_mailboxes_need_the_smtputf8_parameter() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<jösé@example.org>", "553 5.6.7").await;
    client.expect("MAIL FROM:<jösé@example.org> SMTPUTF8", "250").await;
    client.expect("RCPT TO:<用户@例子.广告>", "250").await;
    client.expect("DATA", "354").await;
    client.expect("hi\r\n.", "250").await;
    assert_eq!(client.messages()[0].rcpt_to[0].as_str(), "用户@例子.广告");
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<用户@例子.广告>", "553 5.6.7").await;
}

#[tokio::test]
async fn a_declared_size_over_the_limit_is_refused_and_the_session_goes_on() {
    let limits = Limits {
        max_message_size: 1000,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    client.expect("MAIL FROM:<a@example.org> SIZE=1001", "552 5.3.4").await;
    client.expect("MAIL FROM:<a@example.org> SIZE=1000", "250").await;
}

#[tokio::test]
async fn an_actual_size_over_the_limit_is_refused_after_the_data() {
    let limits = Limits {
        max_message_size: 1000,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    let body = "x".repeat(98) + "\r\n";
    client.expect(&format!("{}.", body.repeat(11)), "552 5.3.4").await;
    assert!(client.messages().is_empty());
    // The session goes on, and the next message fits.
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client.expect(&format!("{}.", body.repeat(10)), "250").await;
    assert_eq!(client.messages()[0].data.len(), 1000);
}

#[tokio::test]
async fn a_message_with_more_received_fields_than_the_hop_limit_is_refused_as_a_loop() {
    let limits = Limits {
        max_hops: 3,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    let hops = |n: usize| "Received: from a by b; Tue, 1 Dec 2026 07:00:00 +0000\r\n".repeat(n);
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    let looping = format!("{}Subject: loop\r\n\r\nbody\r\n.", hops(4));
    client.expect(&looping, "554 5.4.6").await;
    assert!(client.messages().is_empty());
    // At the limit it is delivered; the session goes on.
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client
        .expect(&format!("{}Subject: ok\r\n\r\nbody\r\n.", hops(3)), "250")
        .await;
    assert_eq!(client.messages().len(), 1);
}

#[tokio::test]
async fn recipients_past_the_limit_get_452_and_the_rest_are_delivered() {
    let limits = Limits {
        max_recipients: 2,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<1@example.com>", "250").await;
    client.expect("RCPT TO:<2@example.com>", "250").await;
    client.expect("RCPT TO:<3@example.com>", "452 4.5.3").await;
    client.expect("DATA", "354").await;
    client.expect("x\r\n.", "250").await;
    assert_eq!(client.messages()[0].rcpt_to.len(), 2);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order_in_one_batch() {
    let mut client = Client::greeted(Limits::default()).await;
    client
        .send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<nope>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        .await;
    assert!(client.reply().await.starts_with("250 2.1.0"));
    assert!(client.reply().await.starts_with("250 2.1.5"));
    assert!(client.reply().await.starts_with("501"));
    assert!(client.reply().await.starts_with("250 2.1.5"));
    assert!(client.reply().await.starts_with("354"));
    client.send(b"body\r\n.\r\nNOOP\r\nQUIT\r\n").await;
    assert!(client.reply().await.starts_with("250 2.0.0"));
    assert!(client.reply().await.starts_with("250 2.0.0"));
    assert!(client.reply().await.starts_with("221"));
    client.expect_closed().await;
    assert_eq!(client.messages()[0].rcpt_to.len(), 2);
}

#[tokio::test]
async fn a_listener_that_accepts_bare_lf_takes_commands_ended_by_it() {
    let recorder = Arc::new(Recorder::default());
    let ctx = context(Limits::default(), &recorder, Access::default()).with_bare_lf(BareLf::Accept);
    let mut client = serve(ctx, recorder);
    client.reply().await;
    client.send(b"HELO client.test\nNOOP\n").await;
    assert!(client.reply().await.starts_with("250 mx.test"));
    assert!(client.reply().await.starts_with("250"));
}

#[tokio::test]
async fn a_command_ended_by_a_bare_lf_is_refused_and_the_session_goes_on() {
    let mut client = start(Limits::default());
    client.reply().await;
    client.send(b"HELO client.test\nNOOP\r\n").await;
    let refused = client.reply().await;
    assert!(
        refused.starts_with("500 Error") && refused.contains("bare LF"),
        "{refused}"
    );
    assert!(client.reply().await.starts_with("250"));
    client.expect("HELO client.test", "250 mx.test").await;
    // The refused line was never run: the handlers heard one HELO, the one ended by CRLF.
    let hooks = client.recorder.hooks.lock().unwrap().clone();
    assert_eq!(hooks.iter().filter(|h| h.starts_with("helo ")).count(), 1, "{hooks:?}");
}

#[tokio::test]
async fn a_bare_lf_in_the_data_is_refused_and_never_ends_it() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    // The smuggling attempt: `\n.\n` and `\r\n.\n` do not end the data, and the
    // "command" behind them is part of the refused message, never run.
    client
        .send(b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.com>\r\n.\n")
        .await;
    client.send(b"more\r\n.\r\n").await;
    assert!(client.reply().await.starts_with("550 5.6.0"));
    assert!(client.messages().is_empty());
    // Back in command state with no transaction.
    client.expect("RCPT TO:<b@example.com>", "503").await;
}

#[tokio::test]
async fn a_long_text_line_is_refused_after_the_data() {
    let mut client = Client::greeted(Limits::default()).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    let line = "y".repeat(999);
    client.expect(&format!("{line}\r\n."), "500 5.5.2").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client.expect(&format!("{}\r\n.", &line[..998]), "250").await;
}

#[tokio::test]
async fn rcpt_parameters_need_ehlo_as_mail_parameters_do() {
    let mut client = start(Limits::default());
    client.reply().await;
    client.expect("HELO client.test", "250").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com> NOTIFY=NEVER", "555").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
}

#[tokio::test]
async fn an_over_long_command_line_gets_500_and_the_session_goes_on() {
    let mut client = Client::greeted(Limits::default()).await;
    let long = format!("NOOP {}", "z".repeat(2100));
    client.expect(&long, "500 5.5.2").await;
    // The rest of that line is not taken as a command.
    client.expect("NOOP", "250").await;
    // A line longer than the read buffer, sent in pieces.
    client.send("z".repeat(5000).as_bytes()).await;
    client.send(b"zzzz\r\nNOOP\r\n").await;
    assert!(client.reply().await.starts_with("500 5.5.2"));
    assert!(client.reply().await.starts_with("250"));
}

#[tokio::test]
async fn too_many_errors_end_the_session_with_421() {
    let limits = Limits {
        max_errors: 3,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    client.expect("FROB", "500").await;
    client.expect("NOOP", "250").await;
    client.expect("FROB", "500").await;
    client.send(b"FROB\r\n").await;
    assert!(client.reply().await.starts_with("500"));
    assert!(client.reply().await.starts_with("421 4.7.0"));
    client.expect_closed().await;
}

#[tokio::test]
async fn a_handler_reply_is_sent_and_a_failing_handler_means_451() {
    let mut client = start_answering(Limits::default(), Ok(Some("550 No such user".into())));
    client.reply().await;
    client.expect("HELO client.test", "250").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    assert_eq!(client.command("x\r\n.").await, "550 No such user");

    for answer in [
        Err("boom".to_owned()),
        Ok(Some("250 two\r\nlines".to_owned())),
        Ok(Some("hello".into())),
    ] {
        let mut client = start_answering(Limits::default(), answer);
        client.reply().await;
        client.expect("EHLO client.test", "250").await;
        client.expect("MAIL FROM:<a@example.org>", "250").await;
        client.expect("RCPT TO:<b@example.com>", "250").await;
        client.expect("DATA", "354").await;
        client.expect("x\r\n.", "451 4.3.0").await;
        client.expect("NOOP", "250").await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_client_is_closed_with_421() {
    let limits = Limits {
        idle_timeout_secs: 5,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    // With the clock paused, tokio jumps to the session's idle deadline.
    assert!(client.reply().await.starts_with("421 4.4.2"));
    client.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_data_transfer_is_closed_with_421() {
    let limits = Limits {
        data_timeout_secs: 5,
        ..Limits::default()
    };
    let mut client = Client::greeted(limits).await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client.send(b"half a message").await;
    assert!(client.reply().await.starts_with("421 4.4.2"));
    client.expect_closed().await;
    assert!(client.messages().is_empty());
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_lets_a_transaction_finish() {
    let mut idle = Client::greeted(Limits::default()).await;
    let mut busy = Client::greeted(Limits::default()).await;
    busy.expect("MAIL FROM:<a@example.org>", "250").await;
    idle.shutdown.cancel();
    busy.shutdown.cancel();
    assert!(idle.reply().await.starts_with("421 4.3.2"));
    idle.expect_closed().await;
    busy.expect("RCPT TO:<b@example.com>", "250").await;
    busy.expect("DATA", "354").await;
    busy.send(b"x\r\n.\r\nMAIL FROM:<a@example.org>\r\n").await;
    assert!(busy.reply().await.starts_with("250 2.0.0"));
    assert!(busy.reply().await.starts_with("421 4.3.2"));
    busy.expect_closed().await;
    assert_eq!(busy.messages().len(), 1);
}

#[tokio::test]
async fn hooks_are_asked_in_order_and_their_refusals_are_sent() {
    let recorder = Arc::new(Recorder::default());
    recorder.hook_answers.lock().unwrap().extend([
        (
            "rcpt <nobody@".to_owned(),
            Ok(Some("550 5.1.1 No such user".to_owned())),
        ),
        ("mail <spammer@".to_owned(), Ok(Some("550 5.7.1 Go away".to_owned()))),
        ("rcpt <broken@".to_owned(), Err("trapped".to_owned())),
        ("rcpt <bad-reply@".to_owned(), Ok(Some("250 OK\r\nDATA".to_owned()))),
    ]);
    let mut client = start_with(Limits::default(), Arc::clone(&recorder));
    client.reply().await;
    client.expect("EHLO client.test", "250-").await;
    client
        .expect("MAIL FROM:<spammer@example.org>", "550 5.7.1 Go away")
        .await;
    client.expect("MAIL FROM:<a@example.org> SIZE=10", "250 2.1.0").await;
    client
        .expect("RCPT TO:<nobody@example.com>", "550 5.1.1 No such user")
        .await;
    client.expect("RCPT TO:<broken@example.com>", "451 4.3.0").await;
    client.expect("RCPT TO:<bad-reply@example.com>", "451 4.3.0").await;
    client.expect("RCPT TO:<b@example.com>", "250 2.1.5").await;
    client.expect("DATA", "354").await;
    client.expect("x\r\n.", "250").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RSET", "250").await;
    client.expect("QUIT", "221").await;
    client.expect_closed().await;
    // Only the accepted recipient is in the envelope.
    assert_eq!(client.messages()[0].rcpt_to.len(), 1);
    let hooks = recorder.hooks.lock().unwrap().clone();
    assert_eq!(
        hooks,
        [
            "connect",
            "helo client.test true",
            "mail <spammer@example.org> []",
            "mail <a@example.org> [\"SIZE=10\"]",
            "rcpt <nobody@example.com>",
            "rcpt <broken@example.com>",
            "rcpt <bad-reply@example.com>",
            "rcpt <b@example.com>",
            "data",
            "mail <a@example.org> []",
            "rset",
            "quit",
        ]
    );
}

#[tokio::test]
async fn a_refusal_at_connect_replaces_the_greeting_and_a_failure_at_data_keeps_the_transaction() {
    let recorder = Arc::new(Recorder::default());
    recorder
        .hook_answers
        .lock()
        .unwrap()
        .push(("connect".into(), Ok(Some("554 5.7.1 Not welcome".into()))));
    let mut client = start_with(Limits::default(), recorder);
    assert_eq!(client.reply().await, "554 Not welcome");
    client.expect_closed().await;

    let recorder = Arc::new(Recorder::default());
    recorder
        .hook_answers
        .lock()
        .unwrap()
        .push(("data".into(), Err("out of fuel".into())));
    let mut client = start_with(Limits::default(), Arc::clone(&recorder));
    client.reply().await;
    client.expect("EHLO client.test", "250-").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "451 4.3.0").await;
    client.expect("RCPT TO:<c@example.com>", "250").await;
}

/// A listener with a fresh self-signed certificate for `localhost`, and that certificate.
fn start_tls_listener(implicit: bool) -> (Client, Arc<Recorder>, CertificateDer<'static>) {
    start_secure_listener(implicit, None)
}

/// As [`start_tls_listener`], with AUTH against `auth` when given.
fn start_secure_listener(implicit: bool, auth: Option<AuthConfig>) -> (Client, Arc<Recorder>, CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let access = Access {
        tls: Some(ListenerTls::new(vec![cert.clone()], key, implicit).unwrap()),
        proxy_protocol: None,
        auth: auth.map(|a| Arc::new(Authenticator::new(&a).unwrap())),
    };
    let recorder = Arc::new(Recorder::default());
    let client = start_listener(Limits::default(), Arc::clone(&recorder), access);
    (client, recorder, cert)
}

fn alice(required: bool) -> AuthConfig {
    AuthConfig {
        users: [("alice".to_owned(), quick_hash("s3cret"))].into(),
        required,
    }
}

/// base64 of `text`.
fn b64(text: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn auth_is_offered_over_tls_only_and_plain_proves_the_user() {
    let (mut client, recorder, cert) = start_secure_listener(false, Some(alice(false)));
    client.reply().await;
    let ehlo = client.command("EHLO client.test").await;
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    client
        .expect(&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")), "538 5.7.11")
        .await;
    client.expect("STARTTLS", "220").await;
    client.start_tls(&cert).await.unwrap();
    let ehlo = client.command("EHLO client.test").await;
    assert!(ehlo.ends_with("\n250 AUTH PLAIN LOGIN"), "{ehlo}");
    client
        .expect(&format!("AUTH PLAIN {}", b64(b"\0alice\0s3cret")), "235 2.7.0")
        .await;
    client.expect("AUTH PLAIN", "503 5.5.1").await;
    let facts = recorder.facts.lock().unwrap().clone();
    assert_eq!(facts.last().unwrap().authenticated.as_deref(), Some("alice"));
}

#[tokio::test]
async fn auth_login_answers_its_challenges_and_star_cancels() {
    let (mut client, _, cert) = start_secure_listener(true, Some(alice(true)));
    client.start_tls(&cert).await.unwrap();
    client.reply().await;
    client.command("EHLO client.test").await;
    // A submission listener: nothing before AUTH.
    client.expect("MAIL FROM:<alice@example.org>", "530 5.7.0").await;
    client.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    client.expect("*", "501 5.0.0").await;
    client.expect("AUTH PLAIN", "334 ").await;
    client.expect("not base64!", "501 5.5.2").await;
    client.expect("AUTH CRAM-MD5", "504 5.5.4").await;
    client.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    client.expect(&b64(b"alice"), "334 UGFzc3dvcmQ6").await;
    client.expect(&b64(b"s3cret"), "235 2.7.0").await;
    client.expect("MAIL FROM:<alice@example.org>", "250").await;
}

#[tokio::test]
async fn starttls_is_offered_in_the_clear_then_the_client_greets_again_over_tls() {
    let (mut client, recorder, cert) = start_tls_listener(false);
    assert!(client.reply().await.starts_with("220 "));
    let ehlo = client.command("EHLO client.test").await;
    assert!(ehlo.ends_with("\n250 STARTTLS"), "{ehlo}");
    client.expect("STARTTLS", "220 2.0.0").await;
    client.start_tls(&cert).await.unwrap();
    // What was said before TLS is forgotten: the greeting first (and no enhanced codes
    // until it comes).
    client
        .expect("MAIL FROM:<a@example.org>", "503 Error: send HELO/EHLO first")
        .await;
    let ehlo = client.command("EHLO client.test").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    client.expect("STARTTLS", "503 5.5.1").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client.expect("RCPT TO:<b@example.com>", "250").await;
    client.expect("DATA", "354").await;
    client.expect("Subject: over TLS\r\n\r\nhi\r\n.", "250 2.0.0").await;
    assert_eq!(recorder.messages.lock().unwrap().len(), 1);
    let hooks = recorder.hooks.lock().unwrap().clone();
    assert_eq!(hooks.iter().filter(|h| h.starts_with("helo ")).count(), 2, "{hooks:?}");
    // The handlers were told the session is encrypted, and how.
    let facts = recorder.facts.lock().unwrap().clone();
    let (version, cipher) = facts.last().and_then(|f| f.tls.clone()).expect("told about TLS");
    assert_eq!(version, "TLSv1_3");
    assert!(cipher.starts_with("TLS13_"), "{cipher}");
}

#[tokio::test]
async fn commands_pipelined_behind_starttls_are_dropped_not_run_over_tls() {
    let (mut client, recorder, cert) = start_tls_listener(false);
    client.reply().await;
    client.command("EHLO client.test").await;
    // The injection: commands sent in the clear in the same packet as STARTTLS.
    client
        .send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<b@example.com>\r\n")
        .await;
    assert!(client.reply().await.starts_with("220 2.0.0"));
    client.start_tls(&cert).await.unwrap();
    // Had they been kept, these would be answered first (or MAIL would be nested).
    let ehlo = client.command("EHLO client.test").await;
    assert!(ehlo.starts_with("250-mx.test"), "{ehlo}");
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    let hooks = recorder.hooks.lock().unwrap().clone();
    assert!(
        !hooks.iter().any(|h| h.contains("evil") || h.starts_with("rcpt")),
        "{hooks:?}"
    );
}

#[tokio::test]
async fn starttls_is_refused_where_it_cannot_start() {
    let mut plain = start(Limits::default());
    plain.reply().await;
    let ehlo = plain.command("EHLO client.test").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    plain.expect("STARTTLS", "502 5.5.1").await;

    let (mut client, _, _) = start_tls_listener(false);
    client.reply().await;
    client.expect("STARTTLS", "503 Error: send HELO/EHLO first").await;
    client.command("EHLO client.test").await;
    client.expect("STARTTLS now", "501").await;
    client.expect("MAIL FROM:<a@example.org>", "250").await;
    client
        .expect("STARTTLS", "503 5.5.1 Error: MAIL transaction in progress")
        .await;
    client.expect("RSET", "250").await;
    client.expect("STARTTLS", "220 2.0.0").await;
}

#[tokio::test]
async fn a_failed_handshake_ends_the_session() {
    let (mut client, _, _) = start_tls_listener(false);
    client.reply().await;
    client.command("EHLO client.test").await;
    client.expect("STARTTLS", "220 2.0.0").await;
    client.send(b"this is not a TLS client hello\r\n").await;
    // The server may send a TLS alert; then it closes, and nothing in the clear follows.
    let mut rest = Vec::new();
    tokio::time::timeout(REPLY_WAIT, client.pipe.read_to_end(&mut rest))
        .await
        .expect("session did not close")
        .unwrap();
    assert!(!rest.windows(3).any(|w| w == b"250" || w == b"220"), "{rest:?}");
    tokio::time::timeout(REPLY_WAIT, client.session)
        .await
        .expect("session did not end")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn implicit_tls_greets_only_after_the_handshake() {
    let (mut client, _, cert) = start_tls_listener(true);
    client.start_tls(&cert).await.unwrap();
    assert!(client.reply().await.starts_with("220 mx.test"));
    let ehlo = client.command("EHLO client.test").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    client.expect("MAIL FROM:<a@example.org>", "250").await;
}
