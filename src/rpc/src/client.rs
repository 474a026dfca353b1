//! Outbound TCP: one multiplexed connection per peer, requests matched to responses by id.
//! A connection that fails is marked dead, fails every call waiting on it, and is replaced by the
//! next call to that peer. A call over a live connection runs wherever its caller runs (it needs a
//! timer and nothing else of a runtime); opening a connection runs on the network's runtime, which
//! owns every socket.

use crate::error::{RemoteFailure, RpcError};
use crate::frame::{self, Frame, ReadFrameError};
use crate::metrics::CLIENT_ERRORS;
use aerie_common::NodeAddr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

type Waiter = oneshot::Sender<Result<Vec<u8>, RpcError>>;
/// A peer's connection, replaced when it dies; the async lock lets one caller at a time reconnect.
type PeerSlot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;
type Pending = Arc<Mutex<HashMap<u64, Waiter>>>;

pub(crate) struct ConnectionPool {
    max_frame_bytes: usize,
    connect_timeout: Duration,
    source_address: Option<std::net::IpAddr>,
    peers: Mutex<HashMap<NodeAddr, PeerSlot>>,
    next_id: AtomicU64,
}

pub(crate) struct Connection {
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    alive: Arc<AtomicBool>,
    /// Frames received so far: a call that times out with none received since it was sent finds
    /// the connection hung (a cut link leaves TCP retransmitting, with no error for minutes), and
    /// the connection is replaced instead of failing every later call the same way.
    received: Arc<AtomicU64>,
    tasks: [tokio::task::AbortHandle; 2],
}

impl Connection {
    pub(crate) fn waiting(&self) -> usize {
        self.pending.lock().expect("pending calls").len()
    }

    /// Gives up on a connection: its loops stop, its socket closes, waiting calls fail.
    fn abandon(&self, to: NodeAddr, why: &str) {
        for task in &self.tasks {
            task.abort();
        }
        fail_all(&self.alive, &self.pending, to, why.to_string());
    }
}

impl ConnectionPool {
    pub(crate) fn new(
        max_frame_bytes: usize,
        connect_timeout: Duration,
        source_address: Option<std::net::IpAddr>,
    ) -> Self {
        ConnectionPool {
            max_frame_bytes,
            connect_timeout,
            source_address,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub(crate) async fn call(
        &self,
        to: NodeAddr,
        method: &'static str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || RpcError::timeout(method, to, timeout);
        let conn = tokio::time::timeout_at(deadline, self.connection(to))
            .await
            .map_err(|_| timed_out())??;
        self.call_over(&conn, to, method, body, deadline, timeout).await
    }

    /// The live connection to `to`, if there is one and nobody is replacing it right now: a call
    /// over it needs nothing of the runtime that owns the socket, so it can run where the caller is.
    pub(crate) fn ready_connection(&self, to: NodeAddr) -> Option<Arc<Connection>> {
        let slot = self.peers.lock().expect("peer table").get(&to)?.clone();
        let guard = slot.try_lock().ok()?;
        guard
            .as_ref()
            .filter(|conn| conn.alive.load(Ordering::Acquire))
            .cloned()
    }

    /// One call over `conn`: the frame goes to its writer, the answer comes from its reader.
    pub(crate) async fn call_over(
        &self,
        conn: &Connection,
        to: NodeAddr,
        method: &'static str,
        body: Vec<u8>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        let timed_out = || RpcError::timeout(method, to, timeout);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = Frame::Request {
            id,
            method: method.to_string(),
            timeout_ms: deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
            body,
        };
        let bytes = frame::encode_frame(&request).map_err(RpcError::Codec)?;
        if bytes.len() - 4 > self.max_frame_bytes {
            return Err(RpcError::Codec(format!(
                "{method} request of {} bytes exceeds the maximum frame of {} bytes",
                bytes.len() - 4,
                self.max_frame_bytes
            )));
        }
        let (tx, rx) = oneshot::channel();
        let received_before = conn.received.load(Ordering::Acquire);
        conn.pending.lock().expect("pending calls").insert(id, tx);
        // A caller that gives up (its future dropped) or fails leaves no waiter behind.
        let mut waiting = Waiting {
            pending: &conn.pending,
            id,
            answered: false,
        };
        if conn.outbox.send(bytes).is_err() {
            return Err(RpcError::ConnectionLost {
                to,
                reason: "connection closed".into(),
            });
        }
        let outcome = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => {
                waiting.answered = true;
                outcome
            }
            Ok(Err(_)) => {
                waiting.answered = true;
                Err(RpcError::ConnectionLost {
                    to,
                    reason: "connection closed while waiting".into(),
                })
            }
            Err(_) => {
                drop(waiting);
                if conn.received.load(Ordering::Acquire) == received_before {
                    CLIENT_ERRORS.with_label_values(&["hung_connection"]).inc();
                    conn.abandon(to, "no frame received while a call waited for its answer");
                }
                Err(timed_out())
            }
        };
        outcome.map_err(|e| match e {
            // Whichever side noticed the deadline first, the caller sees one kind of error.
            RpcError::Remote {
                failure: RemoteFailure::DeadlineExceeded,
                ..
            } => timed_out(),
            RpcError::Remote { failure, to, .. } => RpcError::Remote { method, to, failure },
            other => other,
        })
    }

    async fn connection(&self, to: NodeAddr) -> Result<Arc<Connection>, RpcError> {
        let slot = self.peers.lock().expect("peer table").entry(to).or_default().clone();
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref() {
            if conn.alive.load(Ordering::Acquire) {
                return Ok(conn.clone());
            }
        }
        let conn = Arc::new(self.open(to).await.inspect_err(|_| {
            CLIENT_ERRORS.with_label_values(&["connect"]).inc();
        })?);
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A TCP connection to `to`, from the configured source address if there is one.
    async fn connect(&self, to: NodeAddr) -> std::io::Result<TcpStream> {
        let Some(source) = self.source_address else {
            return TcpStream::connect(to.socket_addr()).await;
        };
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        socket.connect(to.socket_addr()).await
    }

    async fn open(&self, to: NodeAddr) -> Result<Connection, RpcError> {
        let connect_err = |reason: String| RpcError::Connect { to, reason };
        let mut stream = tokio::time::timeout(self.connect_timeout, self.connect(to))
            .await
            .map_err(|_| connect_err(format!("no answer within {} ms", self.connect_timeout.as_millis())))?
            .map_err(|e| connect_err(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| connect_err(e.to_string()))?;
        stream
            .write_all(&frame::preamble())
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let mut answer = [0u8; frame::PREAMBLE_LEN];
        tokio::time::timeout(self.connect_timeout, stream.read_exact(&mut answer))
            .await
            .map_err(|_| connect_err("no handshake answer".into()))?
            .map_err(|e| connect_err(format!("handshake failed: {e}")))?;
        let version = frame::parse_preamble(&answer).map_err(connect_err)?;
        if version != frame::PROTOCOL_VERSION {
            return Err(connect_err(format!(
                "protocol version mismatch: the server speaks {version}, this client {}",
                frame::PROTOCOL_VERSION
            )));
        }

        let (reader, writer) = stream.into_split();
        let (outbox, inbox) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let received = Arc::new(AtomicU64::new(0));
        let writing = tokio::spawn(write_loop(writer, inbox, alive.clone(), pending.clone(), to));
        let reading = tokio::spawn(read_loop(
            BufReader::new(reader),
            self.max_frame_bytes,
            alive.clone(),
            pending.clone(),
            received.clone(),
            to,
        ));
        Ok(Connection {
            outbox,
            pending,
            alive,
            received,
            tasks: [writing.abort_handle(), reading.abort_handle()],
        })
    }
}

/// A call's entry among its connection's pending calls, removed when the call stops waiting
/// unless the reader already took it to answer.
struct Waiting<'a> {
    pending: &'a Pending,
    id: u64,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.pending.lock().expect("pending calls").remove(&self.id);
        }
    }
}

/// Writes queued frames, flushing only when the queue is momentarily empty (natural batching).
pub(crate) async fn write_loop(
    writer: OwnedWriteHalf,
    mut inbox: mpsc::UnboundedReceiver<Vec<u8>>,
    alive: Arc<AtomicBool>,
    pending: Pending,
    to: NodeAddr,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let result: std::io::Result<()> = async {
        while let Some(bytes) = inbox.recv().await {
            writer.write_all(&bytes).await?;
            while let Ok(more) = inbox.try_recv() {
                writer.write_all(&more).await?;
            }
            writer.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        fail_all(&alive, &pending, to, format!("write failed: {e}"));
    }
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    max_frame_bytes: usize,
    alive: Arc<AtomicBool>,
    pending: Pending,
    received: Arc<AtomicU64>,
    to: NodeAddr,
) {
    let reason = loop {
        match frame::read_frame(&mut reader, max_frame_bytes).await {
            Ok(Frame::Response { id, outcome }) => {
                received.fetch_add(1, Ordering::AcqRel);
                let waiter = pending.lock().expect("pending calls").remove(&id);
                if let Some(waiter) = waiter {
                    let _ = waiter.send(outcome.map(|b| b.0).map_err(|failure| RpcError::Remote {
                        method: "",
                        to,
                        failure,
                    }));
                }
            }
            Ok(Frame::Request { .. }) => break "the server sent a request".to_string(),
            Err(ReadFrameError::Closed) => break "closed by the server".to_string(),
            Err(e) => break e.to_string(),
        }
    };
    fail_all(&alive, &pending, to, reason);
}

fn fail_all(alive: &AtomicBool, pending: &Pending, to: NodeAddr, reason: String) {
    alive.store(false, Ordering::Release);
    let waiters: Vec<Waiter> = pending.lock().expect("pending calls").drain().map(|(_, w)| w).collect();
    if !waiters.is_empty() {
        CLIENT_ERRORS.with_label_values(&["connection_lost"]).inc();
    }
    for waiter in waiters {
        let _ = waiter.send(Err(RpcError::ConnectionLost {
            to,
            reason: reason.clone(),
        }));
    }
}
