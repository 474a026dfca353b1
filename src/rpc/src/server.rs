//! Inbound TCP: accept, tell HTTP from RPC by the first bytes, check the preamble, then read frames
//! and run each request on its own task. A connection that misbehaves is closed with a logged
//! reason; nothing it sends can stop the server or other connections.

use crate::client::write_loop;
use crate::endpoint::Endpoint;
use crate::error::RemoteFailure;
use crate::frame::{self, ByteBuf, Frame, ReadFrameError};
use crate::http::{self, HealthCheck};
use crate::metrics::{CONNECTIONS_CLOSED, SERVER_REQUESTS};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    max_frame_bytes: usize,
    health: HealthCheck,
) {
    // Connection tasks live in this set: stopping the server (aborting this task) closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, endpoint.clone(), max_frame_bytes, health.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn closed(peer: SocketAddr, reason: &'static str, detail: impl std::fmt::Display) {
    CONNECTIONS_CLOSED.with_label_values(&[reason]).inc();
    warn!(%peer, reason, %detail, "closing connection");
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    max_frame_bytes: usize,
    health: HealthCheck,
) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 4];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    if http::looks_like_http(&first) {
        http::serve(stream, health).await;
        return;
    }
    let mut preamble = [0u8; frame::PREAMBLE_LEN];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut preamble)).await {
        Ok(Ok(_)) => {}
        _ => return closed(peer, "handshake", "no complete preamble"),
    }
    let version = match frame::parse_preamble(&preamble) {
        Ok(version) => version,
        Err(e) => return closed(peer, "handshake", e),
    };
    if stream.write_all(&frame::preamble()).await.is_err() {
        return;
    }
    if version != frame::PROTOCOL_VERSION {
        return closed(
            peer,
            "version",
            format!(
                "peer speaks protocol {version}, this server {}",
                frame::PROTOCOL_VERSION
            ),
        );
    }

    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let (outbox, inbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let peer_addr = aerie_common::NodeAddr(peer);
    let writer_task = tokio::spawn(write_loop(
        writer,
        inbox,
        Arc::new(AtomicBool::new(true)),
        Arc::default(),
        peer_addr,
    ));
    loop {
        match frame::read_frame(&mut reader, max_frame_bytes).await {
            Ok(Frame::Request {
                id,
                method,
                timeout_ms,
                body,
            }) => dispatch(&endpoint, &outbox, id, &method, timeout_ms, body),
            Ok(Frame::Response { .. }) => {
                closed(peer, "protocol", "a client sent a response frame");
                break;
            }
            Err(ReadFrameError::Closed) => break,
            Err(e @ ReadFrameError::TooLarge { .. }) => {
                closed(peer, "oversized", e);
                break;
            }
            Err(e @ ReadFrameError::Malformed(_)) => {
                closed(peer, "malformed", e);
                break;
            }
            Err(ReadFrameError::Io(e)) => {
                debug!(%peer, error = %e, "connection read failed");
                break;
            }
        }
    }
    drop(outbox);
    // Let responses already queued go out; the writer ends when every request task let go of it.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}

fn dispatch(
    endpoint: &Endpoint,
    outbox: &mpsc::UnboundedSender<Vec<u8>>,
    id: u64,
    method: &str,
    timeout_ms: u64,
    body: Vec<u8>,
) {
    let Some((method, handler)) = endpoint.by_method(method) else {
        SERVER_REQUESTS.with_label_values(&["unknown"]).inc();
        respond(outbox, id, Err(RemoteFailure::UnknownMethod(method.to_string())));
        return;
    };
    SERVER_REQUESTS.with_label_values(&[method]).inc();
    let outbox = outbox.clone();
    tokio::spawn(async move {
        let outcome = match tokio::time::timeout(Duration::from_millis(timeout_ms.max(1)), handler(body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(RemoteFailure::DeadlineExceeded),
        };
        respond(&outbox, id, outcome);
    });
}

fn respond(outbox: &mpsc::UnboundedSender<Vec<u8>>, id: u64, outcome: Result<Vec<u8>, RemoteFailure>) {
    let frame = Frame::Response {
        id,
        outcome: outcome.map(ByteBuf),
    };
    match frame::encode_frame(&frame) {
        Ok(bytes) => {
            let _ = outbox.send(bytes);
        }
        Err(e) => warn!(error = %e, "cannot encode a response frame"),
    }
}
