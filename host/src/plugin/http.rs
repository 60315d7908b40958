//! Outbound HTTP for plugins, through `wasi:http/outgoing-handler` (wasmtime-wasi-http):
//! only to the authorities in the plugin's `http` list, each request bounded by the
//! configured timeout and by what is left of the call's time budget (waiting for a
//! server is wall time spent in the plugin), and each response body by a size cap.
//! Everything waits asynchronously: no runtime thread is held while a server thinks.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::state::PluginInfo;

/// What the configuration lets one plugin do over HTTP.
#[derive(Clone, Debug)]
pub struct HttpGrant {
    /// `host:port`, compared with the request's host (without regard to case) and port
    /// (the scheme's own when the request names none).
    pub allowed: Arc<[String]>,
    pub timeout: Duration,
    pub max_response_bytes: u64,
}

/// The hooks of one instance: its plugin (whose `http` grant applies), and the end of
/// the call in progress.
pub struct HttpHooks {
    pub info: Arc<PluginInfo>,
    pub deadline: Instant,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl HttpHooks {
    /// Whether the plugin may send to `uri`'s host and port.
    fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(host), Some(grant)) = (uri.host(), self.info.http.as_ref()) else {
            return false;
        };
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let asked = format!("{host}:{port}");
        grant.allowed.iter().any(|a| a.eq_ignore_ascii_case(&asked))
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let grant = match self.info.http.as_ref() {
            Some(grant) if self.allows(request.uri()) => grant,
            _ => {
                let authority = request.uri().authority().map_or("", |a| a.as_str());
                tracing::warn!(plugin = %self.info.name, authority, "HTTP request refused: not in the plugin's `http` list");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        // The configured timeout, or what is left of the call's budget if less.
        let deadline = self.deadline.min(Instant::now() + grant.timeout);
        let left = deadline.saturating_duration_since(Instant::now());
        let bounded = |asked: Option<Duration>| Some(asked.map_or(left, |a| a.min(left)));
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: bounded(options.connect_timeout),
            first_byte_timeout: bounded(options.first_byte_timeout),
            between_bytes_timeout: bounded(options.between_bytes_timeout),
        };
        let cap = grant.max_response_bytes;
        Box::new(async move {
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options));
            let (response, io) = tokio::time::timeout_at(deadline.into(), sent)
                .await
                .map_err(|_| Error::HttpResponseTimeout)??;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|length| length > cap) {
                return Err(Error::HttpResponseBodySize(declared));
            }
            let response = response.map(|body| CappedBody::new(body.boxed_unsync(), cap, deadline).boxed_unsync());
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// A response body that fails once it passes `cap` octets or its deadline: a server
/// cannot fill a plugin's memory or hold its call past its budget by sending slowly.
struct CappedBody {
    inner: WasiBody,
    left: u64,
    cap: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl CappedBody {
    fn new(inner: WasiBody, cap: u64, deadline: Instant) -> CappedBody {
        CappedBody {
            inner,
            left: cap,
            cap,
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
        }
    }
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::ConnectionReadTimeout)));
        }
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            let len = data.map_or(0, |d| d.len() as u64);
            match self.left.checked_sub(len) {
                Some(left) => self.left = left,
                None => return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.cap))))),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
