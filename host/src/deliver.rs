//! `wasmtpd --deliver FILE --from A --to B`: one message through the first listener's
//! plugin chain without a network. A real session serves an in-memory connection and a
//! scripted client speaks to it, so the plugins see exactly what they would over TCP;
//! the dialogue is printed, and the caller learns whether the message was accepted.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::io::{AsyncWriteExt, DuplexStream};

use tokio_util::sync::CancellationToken;
use wasmtpd_protocol::{ServerReply, data_to_send, with_crlf_endings};

use crate::config::Config;
use crate::listener::{Access, ListenerContext};
use crate::metrics::Registry;
use crate::plugin::share::TenantShare;
use crate::plugin::{PluginChain, PluginEngine, catalog};
use crate::reply_reader::ReplyReader;
use crate::session::Session;

/// The client's address as the plugins see it.
const PEER: &str = "127.0.0.1:0";

/// What the delivery looked like: each line sent (`C:`) and received (`S:`), and the
/// last reply, to DATA's end if it got that far.
pub struct Delivery {
    pub dialogue: Vec<String>,
    pub last: ServerReply,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.last.code)
    }
}

pub async fn deliver(
    engine: &PluginEngine,
    config: &Config,
    message: &[u8],
    from: &str,
    to: &[String],
) -> anyhow::Result<Delivery> {
    let listener = config.listeners.first().context("no listener to take the chain from")?;
    if listener.route_by_domain {
        bail!(
            "--deliver runs one chain; {} routes recipients by domain",
            listener.address
        );
    }
    let chains = catalog::load_chains(engine, config).await?;
    let chain = chains.listeners.into_iter().next().expect("a chain for each listener");
    let metrics = Registry::default().tenant("deliver");
    let handlers = Arc::new(
        PluginChain::new(
            chain,
            Arc::clone(&metrics),
            Arc::new(TenantShare::new("deliver", Some(1), Some(0))),
        )
        .with_quarantine(config.quarantine_of(listener)),
    );
    let ctx = ListenerContext::new(
        "deliver".into(),
        metrics,
        config.hostname.clone(),
        config.limits_of(listener),
        None,
        handlers,
        Access::default(),
    );
    let (client, server) = tokio::io::duplex(64 * 1024);
    let peer: SocketAddr = PEER.parse().expect("an address");
    let session = tokio::spawn(Session::new(server, peer, Arc::new(ctx), CancellationToken::new()).run());
    let mut client = Client {
        pipe: client,
        replies: ReplyReader::default(),
        dialogue: Vec::new(),
    };
    let last = client.converse(message, from, to).await?;
    drop(client.pipe);
    session
        .await
        .context("the session failed")?
        .context("the session failed")?;
    Ok(Delivery {
        dialogue: client.dialogue,
        last,
    })
}

struct Client {
    pipe: DuplexStream,
    replies: ReplyReader,
    dialogue: Vec<String>,
}

impl Client {
    /// Greeting, EHLO, MAIL, RCPTs, DATA, the message, QUIT; stops at the first refusal.
    async fn converse(&mut self, message: &[u8], from: &str, to: &[String]) -> anyhow::Result<ServerReply> {
        let mut last = self.reply().await?;
        let mut commands = vec!["EHLO localhost".to_owned(), format!("MAIL FROM:<{from}>")];
        commands.extend(to.iter().map(|rcpt| format!("RCPT TO:<{rcpt}>")));
        commands.push("DATA".into());
        for command in commands {
            if !last.is_positive() {
                break;
            }
            last = self.command(&command).await?;
        }
        if last.code == 354 {
            self.pipe.write_all(&data_to_send(message)).await?;
            // What the server receives (a file with LF endings is sent with CRLF ones).
            let received = with_crlf_endings(message).len();
            self.dialogue.push(format!("C: ({received} octets of message, then .)"));
            last = self.reply().await?;
        }
        let _ = self.command("QUIT").await;
        Ok(last)
    }

    async fn command(&mut self, line: &str) -> anyhow::Result<ServerReply> {
        self.dialogue.push(format!("C: {line}"));
        self.pipe.write_all(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    async fn reply(&mut self) -> anyhow::Result<ServerReply> {
        let reply = self
            .replies
            .next(&mut self.pipe)
            .await
            .context("reading the session's reply")?;
        let last = reply.lines.len().saturating_sub(1);
        for (i, line) in reply.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.dialogue.push(format!("S: {}{sep}{line}", reply.code));
        }
        Ok(reply)
    }
}
