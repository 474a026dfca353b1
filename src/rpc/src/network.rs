//! The network handle every component holds: serve endpoints, call any node.

use crate::client::ConnectionPool;
use crate::endpoint::Endpoint;
use crate::error::RpcError;
use crate::faults::{FaultFilter, Verdict};
use crate::frame;
use crate::http::HealthCheck;
use crate::server::accept_loop;
use aerie_common::NodeAddr;
use aerie_proto::Rpc;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::runtime::Runtime;

#[derive(Debug, Clone)]
pub struct NetworkOptions {
    pub max_frame_bytes: usize,
    pub connect_timeout: Duration,
    /// Threads of the network's own runtime for socket I/O (0 counts as 1).
    pub io_threads: usize,
    /// The local address outgoing connections are bound to (`None`: the system chooses).
    pub source_address: Option<std::net::IpAddr>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(3),
            io_threads: 1,
            source_address: None,
        }
    }
}

/// A cheap, cloneable handle: connection pool, local endpoints and fault filter of one process.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    options: NetworkOptions,
    local: RwLock<HashMap<NodeAddr, Arc<Endpoint>>>,
    pool: Arc<ConnectionPool>,
    faults: FaultFilter,
    io: IoRuntime,
}

/// The runtime every socket runs on: the network's own (kept here, shut down on drop, which is
/// allowed from inside an async context), or one that someone else runs (only its handle).
struct IoRuntime(Mutex<Option<Runtime>>, tokio::runtime::Handle);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.lock().expect("io runtime").take() {
            runtime.shutdown_background();
        }
    }
}

/// A running server; stopping it (or dropping the handle) closes the port and every connection.
pub struct ServerHandle {
    addr: NodeAddr,
    task: tokio::task::JoinHandle<()>,
    network: Network,
}

impl ServerHandle {
    pub fn addr(&self) -> NodeAddr {
        self.addr
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
        self.network
            .inner
            .local
            .write()
            .expect("local endpoints")
            .remove(&self.addr);
    }
}

impl Network {
    pub fn new(options: NetworkOptions) -> std::io::Result<Network> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.io_threads.max(1))
            .thread_name("aerie-net")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(Self::with_runtime(options, Some(runtime), handle))
    }

    /// A network whose sockets live on a runtime someone else runs (an actor thread's, so that a
    /// frame reaches its actor without waking another thread).
    pub fn on_runtime(options: NetworkOptions, handle: tokio::runtime::Handle) -> Network {
        Self::with_runtime(options, None, handle)
    }

    fn with_runtime(options: NetworkOptions, runtime: Option<Runtime>, handle: tokio::runtime::Handle) -> Network {
        Network {
            inner: Arc::new(Inner {
                pool: Arc::new(ConnectionPool::new(
                    options.max_frame_bytes,
                    options.connect_timeout,
                    options.source_address,
                )),
                options,
                local: RwLock::default(),
                faults: FaultFilter::default(),
                io: IoRuntime(Mutex::new(runtime), handle),
            }),
        }
    }

    pub fn faults(&self) -> &FaultFilter {
        &self.inner.faults
    }

    /// Calls to `to` waiting for their answer on its connection (what the tests check is left
    /// behind by calls that gave up).
    pub fn waiting_calls(&self, to: NodeAddr) -> usize {
        self.inner.pool.ready_connection(to).map_or(0, |conn| conn.waiting())
    }

    /// Binds the endpoint's address, serves it over TCP (and HTTP), and registers it for local calls.
    pub fn serve(&self, endpoint: Endpoint, health: HealthCheck) -> std::io::Result<ServerHandle> {
        let listener = std::net::TcpListener::bind(endpoint.addr().socket_addr())?;
        listener.set_nonblocking(true)?;
        // With port 0 the system picks one; the endpoint is known by the port actually bound.
        let addr = NodeAddr(listener.local_addr()?);
        let endpoint = Arc::new(endpoint);
        let max_frame = self.inner.options.max_frame_bytes;
        let for_server = endpoint.clone();
        let task = self.inner.io.1.spawn(async move {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(listener, for_server, max_frame, health).await,
                Err(e) => tracing::error!(%addr, error = %e, "cannot serve the listening socket"),
            }
        });
        self.inner
            .local
            .write()
            .expect("local endpoints")
            .insert(addr, endpoint);
        Ok(ServerHandle {
            addr,
            task,
            network: self.clone(),
        })
    }

    /// Calls `to` with `req`, waiting at most `timeout` for the answer.
    pub async fn call<M: Rpc>(&self, to: NodeAddr, req: M, timeout: Duration) -> Result<M::Response, RpcError> {
        match self.inner.faults.verdict(to) {
            Verdict::Deliver => {}
            Verdict::Drop => return Err(RpcError::Blocked { method: M::METHOD, to }),
            Verdict::Delay(delay) => tokio::time::sleep(delay).await,
        }
        let local = {
            let local = self.inner.local.read().expect("local endpoints");
            local.get(&to).map(|endpoint| endpoint.typed::<M>())
        };
        let timed_out = || RpcError::timeout(M::METHOD, to, timeout);
        match local {
            Some(Some(handler)) => match tokio::time::timeout(timeout, handler(req)).await {
                Ok(Ok(resp)) => Ok(resp),
                Ok(Err(failure)) => Err(RpcError::Remote {
                    method: M::METHOD,
                    to,
                    failure,
                }),
                Err(_) => Err(timed_out()),
            },
            Some(None) => Err(RpcError::Remote {
                method: M::METHOD,
                to,
                failure: crate::RemoteFailure::UnknownMethod(M::METHOD.to_string()),
            }),
            None => {
                let body = frame::encode(&req).map_err(RpcError::Codec)?;
                let pool = self.inner.pool.clone();
                // With a live connection the call runs here: the socket's tasks carry the frame
                // and the answer, and no task of the network runtime stands in between.
                if let Some(conn) = pool.ready_connection(to) {
                    let deadline = tokio::time::Instant::now() + timeout;
                    let bytes = pool.call_over(&conn, to, M::METHOD, body, deadline, timeout).await?;
                    return frame::decode(&bytes).map_err(RpcError::Codec);
                }
                let bytes = self
                    .inner
                    .io
                    .1
                    .spawn(async move { pool.call(to, M::METHOD, body, timeout).await })
                    .await
                    .map_err(|e| RpcError::ConnectionLost {
                        to,
                        reason: format!("network runtime stopped: {e}"),
                    })??;
                frame::decode(&bytes).map_err(RpcError::Codec)
            }
        }
    }
}
