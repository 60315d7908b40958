//! The accept loop: admits or refuses each connection and spawns its session, on a TCP
//! listener or a Unix socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmtpd_protocol::{Reply, replies};

use crate::admission::{Admission, Refusal};
use crate::listen_address::{ListenAddress, UNIX_PEER};
use crate::listener::{ListenerContext, ListenerSlot};
use crate::proxy_protocol;
use crate::session::Session;

/// How long a refused client gets to read its `421`.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a trusted proxy has to send the PROXY header (it sends it at once).
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A bound listener: TCP, or a Unix socket (whose file goes with it).
pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

impl Bound {
    pub async fn bind(address: &ListenAddress) -> std::io::Result<Bound> {
        Ok(match address {
            ListenAddress::Tcp(address) => Bound::Tcp(TcpListener::bind(address).await?),
            ListenAddress::Unix(path) => Bound::Unix(UnixSocket::bind(path)?),
        })
    }

    /// The address it listens on, port included where it was 0; `None` if unknown.
    pub fn local(&self) -> Option<ListenAddress> {
        match self {
            Bound::Tcp(listener) => listener.local_addr().ok().map(ListenAddress::Tcp),
            Bound::Unix(socket) => Some(ListenAddress::Unix(socket.path.clone())),
        }
    }
}

/// A listening Unix socket; its file is removed when it is dropped (if it is still ours).
pub struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's device and inode, to know it is still the one bound.
    file: (u64, u64),
}

impl UnixSocket {
    /// Binds `path`, replacing a socket file nobody listens on (a crash leaves one), but
    /// never one in use, nor a file that is not a socket.
    fn bind(path: &Path) -> std::io::Result<UnixSocket> {
        use std::io::{Error, ErrorKind};
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(Error::new(ErrorKind::AddrInUse, "another process listens on it")),
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::fs::remove_file(path)
                    .map_err(|e| Error::new(e.kind(), format!("cannot remove the stale socket file: {e}")))?,
                Err(e) => {
                    let why = format!("cannot tell whether the socket file there is in use: {e}");
                    return Err(Error::new(e.kind(), why));
                }
            },
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    "a file that is not a socket is there",
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        Ok(UnixSocket {
            listener,
            path: path.to_path_buf(),
            file: file_identity(path)?,
        })
    }
}

/// A file's device and inode.
fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        // Another process may have bound the path since: its file stays.
        if file_identity(&self.path).is_ok_and(|file| file == self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A listener's connections, as streams with the client's address.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Replies are flushed in whole batches already; don't let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Accept for UnixSocket {
    type Stream = UnixStream;

    async fn accept(&self) -> std::io::Result<(UnixStream, SocketAddr)> {
        let (stream, _) = self.listener.accept().await?;
        Ok((stream, UNIX_PEER))
    }
}

/// What an accept loop needs besides its listener.
pub struct Serving {
    pub slot: Arc<ListenerSlot>,
    pub admission: Arc<Admission>,
    /// The listener was removed, or the server shuts down.
    pub stop: CancellationToken,
    pub shutdown: CancellationToken,
    pub sessions: TaskTracker,
}

impl Serving {
    /// Accepts connections until `stop`; sessions are spawned on `sessions` with the
    /// slot's context of the moment and the `shutdown` token.
    pub async fn serve<L: Accept>(self, listener: L) {
        loop {
            let (stream, peer) = tokio::select! {
                _ = self.stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                },
            };
            let connection = Connection {
                ctx: self.slot.current(),
                admission: Arc::clone(&self.admission),
                shutdown: self.shutdown.clone(),
                sessions: self.sessions.clone(),
            };
            if connection.ctx.access.proxy_protocol.is_some() {
                // The header may be slow to come: it is read in the connection's own task.
                self.sessions.spawn(connection.through_proxy(stream, peer));
            } else {
                connection.start(stream, peer, BytesMut::new());
            }
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
    fn start<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S, peer: SocketAddr, early: BytesMut) {
        match self.admission.admit(peer.ip(), self.ctx.tenant_cap.as_ref()) {
            Ok(permit) => {
                let budget = self.admission.command_budget(peer.ip());
                let admission = self.admission;
                let (ctx, shutdown) = (self.ctx, self.shutdown);
                // Boxed: the session's future is large, and a task moves its future
                // (into the task, and over it when it ends); a box is moved instead.
                self.sessions.spawn(Box::pin(async move {
                    // The address's rate may ask the other nodes: in the session's own task.
                    if !admission.connection_allowed(peer.ip()).await {
                        // Its place goes back at once, not after the refusal is written.
                        drop(permit);
                        refuse(&ctx, peer, Refusal::TooFastFromAddress, stream).await;
                        return;
                    }
                    let session = Session::new(stream, peer, ctx, shutdown)
                        .with_early_input(early)
                        .with_command_budget(budget);
                    if let Err(e) = session.run().await {
                        tracing::debug!(%peer, "session ended: {e}");
                    }
                    drop(permit);
                }));
            }
            Err(refusal) => {
                self.sessions
                    .spawn(async move { refuse(&self.ctx, peer, refusal, stream).await });
            }
        }
    }

    /// A PROXY listener's connection: from a trusted source, its header names the client.
    async fn through_proxy<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        self,
        mut stream: S,
        source: SocketAddr,
    ) {
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

/// Says why a connection is refused (in the log and to the client) and closes it.
async fn refuse<S: AsyncWrite + Unpin>(ctx: &ListenerContext, peer: SocketAddr, refusal: Refusal, stream: S) {
    tracing::info!(tenant = %ctx.tenant, %peer, ?refusal, "connection refused");
    let reply = match refusal {
        Refusal::TooManyInAll | Refusal::TooManyFromAddress | Refusal::TooManyForTenant => {
            replies::TOO_MANY_CONNECTIONS
        }
        Refusal::TooFastFromAddress => replies::CONNECTION_RATE,
    };
    close_with(stream, reply).await;
}

/// Sends one reply (best effort, for a little while) and closes.
async fn close_with<S: AsyncWrite + Unpin>(mut stream: S, reply: Reply) {
    let mut wire = Vec::new();
    reply.write_to(&mut wire, false);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&wire).await?;
        stream.shutdown().await
    })
    .await;
}
