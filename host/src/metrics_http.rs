//! A minimal HTTP endpoint for the counters: `GET /metrics` answers the OpenMetrics text
//! format (which Prometheus scrapes); anything else 404. One request a connection, bounded in size and time.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::{CONTENT_TYPE, Registry};

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, registry: Arc<Registry>, shutdown: CancellationToken) {
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
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &registry)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = response(&request, registry);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// The status line and body for a request.
fn response(request: &[u8], registry: &Registry) -> (&'static str, String) {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next()) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", registry.render()),
        (Some(_), Some(_)) => ("404 Not Found", "only /metrics is here\n".to_owned()),
        _ => ("400 Bad Request", "bad request\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let registry = Registry::default();
        registry.tenant("t").session_started();
        let (status, body) = response(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &registry);
        assert_eq!(status, "200 OK");
        assert!(body.contains("wasmtpd_sessions_total{tenant=\"t\"} 1"));
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(response(b"GET / HTTP/1.1\r\n\r\n", &registry).0, "404 Not Found");
        assert_eq!(response(b"garbage", &registry).0, "400 Bad Request");
    }
}
