//! The accept loop: admits or refuses each connection and spawns its session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtpd_protocol::{Reply, replies};

use crate::admission::{Admission, Refusal};
use crate::listener::{ListenerContext, ListenerSlot};
use crate::proxy_protocol;
use crate::session::Session;

/// How long a refused client gets to read its `421`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a trusted proxy has to send the PROXY header (it sends it at once).
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until `stop` (the listener was removed, or shutdown); sessions are
/// spawned on `sessions` with the slot's context of the moment and the `shutdown` token.
pub async fn serve(
    listener: TcpListener,
    slot: Arc<ListenerSlot>,
    admission: Arc<Admission>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    sessions: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // Replies are flushed in whole batches already; don't let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        let ctx = slot.current();
        let connection = Connection {
            ctx,
            admission: Arc::clone(&admission),
            shutdown: shutdown.clone(),
            sessions: sessions.clone(),
        };
        if connection.ctx.access.proxy_protocol.is_some() {
            // The header may be slow to come: it is read in the connection's own task.
            sessions.spawn(connection.through_proxy(stream, peer));
        } else {
            connection.start(stream, peer, BytesMut::new());
        }
    }
}

/// What a new connection needs to become a session.
struct Connection {
    ctx: Arc<ListenerContext>,
    admission: Arc<Admission>,
    shutdown: CancellationToken,
    sessions: TaskTracker,
}

impl Connection {
    /// Admits the client at `peer` (or refuses it) and spawns its session, which reads
    /// `early` (what came behind a PROXY header) first.
    fn start(self, stream: TcpStream, peer: SocketAddr, early: BytesMut) {
        match self.admission.admit(peer.ip(), self.ctx.tenant_cap.as_ref()) {
            Ok(permit) => {
                let session = Session::new(stream, peer, self.ctx, self.shutdown)
                    .with_early_input(early)
                    .with_command_budget(self.admission.command_budget(peer.ip()));
                self.sessions.spawn(async move {
                    if let Err(e) = session.run().await {
                        tracing::debug!(%peer, "session ended: {e}");
                    }
                    drop(permit);
                });
            }
            Err(refusal) => {
                tracing::info!(tenant = %self.ctx.tenant, %peer, ?refusal, "connection refused");
                let reply = match refusal {
                    Refusal::TooManyInAll | Refusal::TooManyFromAddress | Refusal::TooManyForTenant => {
                        replies::TOO_MANY_CONNECTIONS
                    }
                    Refusal::TooFastFromAddress => replies::CONNECTION_RATE,
                };
                self.sessions.spawn(close_with(stream, reply));
            }
        }
    }

    /// A PROXY listener's connection: from a trusted source, its header names the client.
    async fn through_proxy(self, mut stream: TcpStream, source: SocketAddr) {
        let trusted = self
            .ctx
            .access
            .proxy_protocol
            .as_ref()
            .is_some_and(|p| p.trusts(source.ip()));
        if !trusted {
            tracing::warn!(%source, "refused: PROXY listener, and the source is not a trusted proxy");
            close_with(stream, replies::NOT_THROUGH_PROXY).await;
            return;
        }
        match proxy_protocol::read_header(&mut stream, source, PROXY_HEADER_TIMEOUT).await {
            Ok((peer, early)) => {
                tracing::debug!(%source, %peer, "PROXY header");
                self.start(stream, peer, early);
            }
            // Nothing is said: the other end is a proxy that did not speak the protocol.
            Err(e) => tracing::warn!(%source, "refused a connection from a trusted proxy: {e}"),
        }
    }
}

/// Sends one reply (best effort, for a little while) and closes.
async fn close_with(mut stream: TcpStream, reply: Reply) {
    let mut wire = Vec::new();
    reply.write_to(&mut wire, false);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    })
    .await;
}
