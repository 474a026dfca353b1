//! The HTTP side door on every RPC port: `GET /metrics` (Prometheus text format, the process-wide
//! registry) and `GET /health` (200 when the process says it is healthy, 503 otherwise).

use prometheus::{Encoder, TextEncoder};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers `/health`: whether the process is healthy, and a short text saying why.
pub type HealthCheck = Arc<dyn Fn() -> (bool, String) + Send + Sync>;

const MAX_REQUEST_HEAD: usize = 8 * 1024;

pub(crate) fn looks_like_http(first_bytes: &[u8]) -> bool {
    first_bytes.starts_with(b"GET ") || first_bytes.starts_with(b"HEAD")
}

pub(crate) async fn serve(mut stream: TcpStream, health: HealthCheck) {
    let Some(path) = read_request_path(&mut stream).await else {
        return;
    };
    let (status, content_type, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let mut buf = Vec::new();
            let encoder = TextEncoder::new();
            match encoder.encode(&prometheus::gather(), &mut buf) {
                Ok(()) => ("200 OK", encoder.format_type().to_string(), buf),
                Err(e) => (
                    "500 Internal Server Error",
                    "text/plain".into(),
                    e.to_string().into_bytes(),
                ),
            }
        }
        "/health" => {
            let (ok, text) = health();
            let status = if ok { "200 OK" } else { "503 Service Unavailable" };
            (status, "text/plain".into(), format!("{text}\n").into_bytes())
        }
        _ => (
            "404 Not Found",
            "text/plain".into(),
            b"try /metrics or /health\n".to_vec(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}

async fn read_request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split_whitespace().nth(1).map(str::to_string)
}
