//! Plain HTTP against a role's port: `/metrics` and `/health`.

use aerie_common::NodeAddr;
use std::io::{Read, Write};
use std::time::Duration;

/// `GET path`: the status code and the body, or why there is none.
pub fn try_http_get(addr: NodeAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = std::net::TcpStream::connect(addr.socket_addr()).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    // HTTP/1.0: the server closes the connection after the answer and sends no chunks (Aerie's
    // roles and Prometheus alike), so reading to the end reads exactly the answer.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    stream.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `GET path`: the status code and the body.
pub fn http_get(addr: NodeAddr, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Waits until a node's `/health` answers 200 (for a replica server: it holds a lease).
pub async fn wait_healthy(addr: NodeAddr, timeout: Duration) {
    crate::wait_until(&format!("{addr} to be healthy"), timeout, || async move {
        match try_http_get(addr, "/health") {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{status} {body}")),
            Err(e) => Err(e),
        }
    })
    .await
}

/// The value of the first sample whose line starts with `prefix` (0 when absent).
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A node's `/metrics` text.
pub fn metrics(addr: NodeAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{addr}/metrics answered {status}");
    body
}

/// Bytes `node`'s learners received so far, from every source (memory, log, checkpoint).
pub fn learned_bytes(node: NodeAddr) -> f64 {
    let text = metrics(node);
    ["cache", "log", "checkpoint"]
        .iter()
        .map(|source| {
            sample(
                &text,
                &format!("aerie_replica_learn_bytes_total{{node=\"{node}\",source=\"{source}\"}}"),
            )
        })
        .sum()
}

/// The meta's count of balance moves of `kind` (move_pri, copy_pri, copy_sec) that ended with
/// `outcome` (done, given_up).
pub fn balance_moves(meta: NodeAddr, kind: &str, outcome: &str) -> f64 {
    sample(
        &metrics(meta),
        &format!("aerie_meta_balance_moves_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}"),
    )
}

/// Balance moves of every kind that the meta gave up.
pub fn balance_moves_given_up(meta: NodeAddr) -> f64 {
    ["move_pri", "copy_pri", "copy_sec"]
        .iter()
        .map(|kind| balance_moves(meta, kind, "given_up"))
        .sum()
}
