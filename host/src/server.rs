//! The accept loop: admits or refuses each connection and spawns its session.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtpd_protocol::replies;

use crate::admission::{Admission, Refusal};
use crate::listener::ListenerSlot;
use crate::session::Session;

/// How long a refused client gets to read its `421`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
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
        match admission.admit(peer.ip(), ctx.tenant_cap.as_ref()) {
            Ok(permit) => {
                let session = Session::new(stream, peer, ctx, shutdown.clone());
                sessions.spawn(async move {
                    if let Err(e) = session.run().await {
                        tracing::debug!(%peer, "session ended: {e}");
                    }
                    drop(permit);
                });
            }
            Err(refusal) => {
                tracing::info!(tenant = %ctx.tenant, %peer, ?refusal, "connection refused");
                sessions.spawn(refuse(stream, refusal));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let reply = match refusal {
        Refusal::TooManyInAll | Refusal::TooManyFromAddress | Refusal::TooManyForTenant => {
            replies::TOO_MANY_CONNECTIONS
        }
    };
    let mut wire = Vec::new();
    reply.write_to(&mut wire, false);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    })
    .await;
}
