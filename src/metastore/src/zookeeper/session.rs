//! One ZooKeeper session at a time, kept alive on a thread of its own.
//!
//! The `zookeeper-client` crate drives a session from a task of the runtime that connected it; if
//! that runtime is ever blocked longer than the session timeout, the session expires. So the session
//! lives on a dedicated one-thread runtime, and callers on other runtimes only exchange messages
//! with it. When a session ends (expired, closed), a new one is made and published to subscribers,
//! so that what was tied to the old session (an election node) is known to be gone.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};
use zookeeper_client::{Client, SessionState};

/// The live session, if any. Whoever keeps a `Current` beyond one call keeps the
/// whole value (not just the client), so that a clean close can wait until it is let go.
#[derive(Clone)]
pub struct Current {
    pub client: Client,
    _held: Arc<()>,
}

/// How the connection to ZooKeeper is, for logs and `cluster_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// No session yet, or the last one ended; `error` says why.
    NoSession {
        since: Instant,
        error: String,
    },
    Connected,
    /// The session exists but no server answers; it may still come back.
    Disconnected {
        since: Instant,
    },
}

struct Shared {
    hosts: String,
    session_timeout: Duration,
    current: watch::Sender<Option<Current>>,
    connection: Mutex<Connection>,
    /// Set by [`ZkSession::close`]: end the session and make no new one.
    closing: watch::Sender<bool>,
}

/// A handle to the session keeper. Clones share it; the keeper stops with the last clone.
#[derive(Clone)]
pub struct ZkSession {
    shared: Arc<Shared>,
    runtime: Arc<RuntimeGuard>,
}

/// Owns the session's runtime; shuts it down without blocking (it may be dropped in async code).
struct RuntimeGuard(Option<tokio::runtime::Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl ZkSession {
    /// Starts keeping a session with `hosts` (`host:port,...`). Returns at once; see [`Self::connection`].
    pub fn start(hosts: &str, session_timeout: Duration) -> std::io::Result<ZkSession> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("zookeeper")
            .enable_all()
            .build()?;
        let (current, _) = watch::channel(None);
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            hosts: hosts.to_string(),
            session_timeout,
            current,
            closing,
            connection: Mutex::new(Connection::NoSession {
                since: Instant::now(),
                error: "connecting".into(),
            }),
        });
        runtime.spawn(keep_session(Arc::downgrade(&shared)));
        Ok(ZkSession {
            shared,
            runtime: Arc::new(RuntimeGuard(Some(runtime))),
        })
    }

    pub fn hosts(&self) -> &str {
        &self.shared.hosts
    }

    pub fn current(&self) -> Option<Current> {
        self.shared.current.borrow().clone()
    }

    /// `Ok` while a server answers; otherwise why not, in words.
    pub fn check(&self) -> Result<(), String> {
        match self.shared.connection() {
            Connection::Connected => Ok(()),
            Connection::Disconnected { since } => Err(format!(
                "ZooKeeper {} unreachable for {:.1} s (session kept for now)",
                self.shared.hosts,
                since.elapsed().as_secs_f64()
            )),
            Connection::NoSession { since, error } => Err(format!(
                "no ZooKeeper session with {} for {:.1} s: {error}",
                self.shared.hosts,
                since.elapsed().as_secs_f64()
            )),
        }
    }

    /// Ends the session on purpose (a clean shutdown): the election leaves at once instead of
    /// waiting for ZooKeeper to expire the session, and ZooKeeper is told the session is closed.
    /// Waits at most `timeout` for that to be sent.
    pub async fn close(&self, timeout: Duration) {
        self.shared.closing.send_replace(true);
        let mut current = self.shared.current.subscribe();
        let _ = tokio::time::timeout(timeout, current.wait_for(Option::is_none)).await;
        // The election deletes its node and drops its client; the last client dropped sends
        // CloseSession. Give the session's runtime a moment to flush it.
        let mut closing = self.shared.closing.subscribe();
        let _ = tokio::time::timeout(timeout, closing.wait_for(|c| !*c)).await;
    }

    /// Spawns a background task on the session's runtime.
    pub fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = self.runtime.0.as_ref() {
            runtime.spawn(future);
        }
    }
}

fn set_connection(shared: &Shared, connection: Connection) {
    *shared.connection.lock().expect("connection lock") = connection;
}

/// Makes sessions, one after the other, for as long as a handle exists.
async fn keep_session(shared: std::sync::Weak<Shared>) {
    let Some(mut closing) = shared.upgrade().map(|s| s.closing.subscribe()) else {
        return;
    };
    loop {
        let Some(strong) = shared.upgrade() else { return };
        let closed = *strong.closing.borrow();
        if closed {
            // Closed while no session existed: nothing to tell ZooKeeper.
            strong.closing.send_replace(false);
            return;
        }
        let (hosts, timeout) = (strong.hosts.clone(), strong.session_timeout);
        drop(strong);
        let connected = Client::connector()
            .with_session_timeout(timeout)
            .with_connection_timeout(timeout.min(Duration::from_secs(3)))
            .with_fail_eagerly()
            .connect(&hosts)
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                let Some(strong) = shared.upgrade() else { return };
                let error = format!("cannot connect: {e}");
                if let Connection::NoSession { since, .. } = strong.connection() {
                    set_connection(&strong, Connection::NoSession { since, error });
                }
                drop(strong);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        info!(
            hosts,
            session_timeout_ms = client.session_timeout().as_millis() as u64,
            "ZooKeeper session established"
        );
        let mut states = client.state_watcher();
        let held = Arc::new(());
        {
            let Some(strong) = shared.upgrade() else { return };
            set_connection(&strong, Connection::Connected);
            strong.current.send_replace(Some(Current {
                client: client.clone(),
                _held: held.clone(),
            }));
        }
        let ended = loop {
            let state = tokio::select! {
                state = states.changed() => Some(state),
                closed = closing.wait_for(|c| *c) => closed.is_err().then_some(SessionState::Closed),
            };
            let Some(state) = state else {
                close_session(&shared, client, held).await;
                return;
            };
            let Some(strong) = shared.upgrade() else { return };
            match state {
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    info!(hosts, "ZooKeeper connection restored");
                    set_connection(&strong, Connection::Connected);
                }
                SessionState::Disconnected => {
                    warn!(
                        hosts,
                        "ZooKeeper connection lost; the session is kept while a server may come back"
                    );
                    set_connection(&strong, Connection::Disconnected { since: Instant::now() });
                }
                other => break other,
            }
        };
        let Some(strong) = shared.upgrade() else { return };
        warn!(hosts, state = ?ended, "ZooKeeper session ended; starting a new one");
        strong.current.send_replace(None);
        let since = match strong.connection() {
            Connection::Disconnected { since } => since,
            _ => Instant::now(),
        };
        set_connection(
            &strong,
            Connection::NoSession {
                since,
                error: format!("session {ended:?}"),
            },
        );
    }
}

/// Withdraws the session from its users, waits until they dropped their clients (the last one
/// sends CloseSession), and says it is done by clearing `closing`.
async fn close_session(shared: &std::sync::Weak<Shared>, client: Client, held: Arc<()>) {
    let Some(strong) = shared.upgrade() else { return };
    info!(hosts = %strong.hosts, "closing the ZooKeeper session");
    strong.current.send_replace(None);
    set_connection(
        &strong,
        Connection::NoSession {
            since: Instant::now(),
            error: "closed".into(),
        },
    );
    drop(strong);
    let deadline = Instant::now() + Duration::from_secs(3);
    // Users hold clones of `Current`; the count falls to ours alone once they let go.
    while Arc::strong_count(&held) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(strong) = shared.upgrade() {
        strong.closing.send_replace(false);
    }
}

impl Shared {
    fn connection(&self) -> Connection {
        self.connection.lock().expect("connection lock").clone()
    }
}

/// What a background task on the session's runtime may hold: it does not keep the session alive.
#[derive(Clone)]
pub(crate) struct SessionWatch {
    shared: std::sync::Weak<Shared>,
    pub(crate) session_timeout: Duration,
}

impl SessionWatch {
    /// `None` once the session keeper is gone.
    pub(crate) fn subscribe(&self) -> Option<watch::Receiver<Option<Current>>> {
        Some(self.shared.upgrade()?.current.subscribe())
    }

    /// Whether a server answers now (false once the session keeper is gone).
    pub(crate) fn is_connected(&self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| shared.connection() == Connection::Connected)
    }
}

impl ZkSession {
    pub(crate) fn watch(&self) -> SessionWatch {
        SessionWatch {
            shared: Arc::downgrade(&self.shared),
            session_timeout: self.shared.session_timeout,
        }
    }
}
