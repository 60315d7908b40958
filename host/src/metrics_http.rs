//! A minimal HTTP endpoint for the counters and the server's health: `GET /metrics`
//! answers the OpenMetrics text format (which Prometheus scrapes), `GET /healthz` 200
//! while the process answers at all (liveness), `GET /readyz` 200 when the server should
//! be sent mail and 503 while it starts or drains (readiness); anything else 404. One
//! request a connection, bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::health::{Health, Readiness};
use crate::metrics::{CONTENT_TYPE, Registry};

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `shutdown`, which the server cancels only once it has drained: while it
/// drains, `/readyz` says so.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, health: Arc<Health>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (registry, health) = (Arc::clone(&registry), Arc::clone(&health));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &registry, &health)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, registry: &Registry, health: &Health) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    let complete = |r: &[u8]| r.windows(4).any(|w| w == b"\r\n\r\n") || r.windows(2).any(|w| w == b"\n\n");
    while !complete(&request) && request.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let (status, content_type, body) = response(&request, registry, health.readiness());
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !request.starts_with(b"HEAD ") {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The status line, content type and body for a request.
fn response(request: &[u8], registry: &Registry, readiness: Readiness) -> (&'static str, &'static str, String) {
    let line = request.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    // HEAD is GET without the body (HTTP checks use it); a query string is ignored.
    let method = parts.next().map(|m| if m == b"HEAD" { &b"GET"[..] } else { m });
    let path = parts.next().map(|p| p.split(|&b| b == b'?').next().unwrap_or_default());
    match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", CONTENT_TYPE, registry.render()),
        (Some(b"GET"), Some(b"/healthz")) => ("200 OK", TEXT, "alive\n".to_owned()),
        (Some(b"GET"), Some(b"/readyz")) => match readiness {
            Readiness::Ready => ("200 OK", TEXT, "ready\n".to_owned()),
            Readiness::Starting => ("503 Service Unavailable", TEXT, "starting\n".to_owned()),
            Readiness::Draining => ("503 Service Unavailable", TEXT, "draining\n".to_owned()),
        },
        (Some(_), Some(_)) => (
            "404 Not Found",
            TEXT,
            "only /metrics, /healthz and /readyz are here\n".to_owned(),
        ),
        _ => ("400 Bad Request", TEXT, "bad request\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_health_and_readiness_are_served() {
        let registry = Registry::default();
        registry.tenant("t").session_started();
        let get = |path: &str, readiness| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            let (status, _, body) = response(request.as_bytes(), &registry, readiness);
            (status, body)
        };
        let (status, body) = get("/metrics", Readiness::Ready);
        assert_eq!(status, "200 OK");
        assert!(body.contains("wasmtpd_sessions_total{tenant=\"t\"} 1"));
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get("/healthz", Readiness::Draining), ("200 OK", "alive\n".to_owned()));
        assert_eq!(get("/readyz", Readiness::Ready), ("200 OK", "ready\n".to_owned()));
        for (readiness, word) in [(Readiness::Starting, "starting\n"), (Readiness::Draining, "draining\n")] {
            assert_eq!(get("/readyz", readiness), ("503 Service Unavailable", word.to_owned()));
        }
        assert_eq!(get("/", Readiness::Ready).0, "404 Not Found");
        assert_eq!(get("/readyz?probe=1", Readiness::Ready).0, "200 OK");
        let head = response(b"HEAD /readyz HTTP/1.0\r\n\r\n", &registry, Readiness::Draining);
        assert_eq!(head.0, "503 Service Unavailable");
        assert_eq!(response(b"garbage", &registry, Readiness::Ready).0, "400 Bad Request");
    }
}
