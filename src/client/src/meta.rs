//! The cluster-level client: meta server calls, table handles, and raw calls to a node.

use crate::table::Table;
use aerie_common::MetaLevel;
use aerie_common::{ErrorCode, NodeAddr, WireError, WireResult};
use aerie_proto::meta::{
    AppState, ClusterInfo, CreateApp, CreateAppResponse, DddDiagnose, DddPartition, DropApp, GetMetaLevel, ListApps,
    ListNodes, MetaLevelInfo, NodeInfo, Propose, QueryClusterInfo, QueryConfig, SetMetaLevel,
};
use aerie_proto::Rpc;
use aerie_rpc::{Network, NetworkOptions, RpcError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bound on one data call, retries included.
    pub timeout: Duration,
    /// Bound on one call to a meta server.
    pub meta_timeout: Duration,
    pub network: NetworkOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            meta_timeout: Duration::from_secs(10),
            network: NetworkOptions::default(),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    pub(crate) network: Network,
    pub(crate) metas: Vec<NodeAddr>,
    leader: AtomicUsize,
    pub(crate) options: ClientOptions,
    tables: Mutex<HashMap<String, Table>>,
    /// Makes this client's retried writes take effect once.
    session: crate::session::ClientSession,
}

impl Client {
    pub fn new(metas: Vec<NodeAddr>, options: ClientOptions) -> WireResult<Client> {
        let network = Network::new(options.network.clone())
            .map_err(|e| WireError::new(ErrorCode::ERR_UNKNOWN, format!("cannot start the network runtime: {e}")))?;
        Client::with_network(metas, options, network)
    }

    /// A client on a network the caller already runs (a server process's own); `options.network`
    /// is not used.
    pub fn with_network(metas: Vec<NodeAddr>, options: ClientOptions, network: Network) -> WireResult<Client> {
        if metas.is_empty() {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_PARAMETERS,
                "no meta server address given",
            ));
        }
        Ok(Client {
            inner: Arc::new(ClientInner {
                network,
                metas,
                leader: AtomicUsize::new(0),
                options,
                tables: Mutex::new(HashMap::new()),
                session: crate::session::ClientSession::new(),
            }),
        })
    }

    pub fn network(&self) -> &Network {
        &self.inner.network
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub(crate) fn session(&self) -> &crate::session::ClientSession {
        &self.inner.session
    }

    /// The id of this client's session (every write it sends carries it).
    pub fn session_id(&self) -> u64 {
        self.inner.session.id()
    }

    pub fn meta_servers(&self) -> &[NodeAddr] {
        &self.inner.metas
    }

    /// Sends a request to the meta servers: the last one that answered first, then the others.
    /// While none can be reached, or the one reached is still loading its state, it tries again with
    /// backoff until `meta_timeout`. A meta that does not lead answers `ERR_FORWARD_TO_OTHERS` naming
    /// the leader, which is asked next. After an ambiguous failure (a timeout, a connection lost
    /// mid-call) it does not retry: the request may have taken effect.
    pub async fn meta<M, T>(&self, req: M) -> WireResult<T>
    where
        M: Rpc<Response = WireResult<T>> + Clone,
    {
        let metas = &self.inner.metas;
        let timeout = self.inner.options.meta_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            let first = self.inner.leader.load(Ordering::Relaxed);
            let mut order: Vec<NodeAddr> = (0..metas.len()).map(|i| metas[(first + i) % metas.len()]).collect();
            let mut last_error = None;
            let mut next = 0;
            while next < order.len() {
                let meta = order[next];
                next += 1;
                let remaining = deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                match self.inner.network.call(meta, req.clone(), remaining).await {
                    Ok(Err(e)) if e.code == ErrorCode::ERR_SERVICE_NOT_ACTIVE => last_error = Some(e),
                    Ok(Err(e)) if e.code == ErrorCode::ERR_FORWARD_TO_OTHERS => {
                        // Ask the named leader next, even one missing from the list (a bounded
                        // number of hops per round).
                        if let Some(leader) = e.forward_target() {
                            if leader != meta && order.len() < metas.len() * 2 + 1 {
                                order.insert(next, leader);
                            }
                        }
                        last_error = Some(e);
                    }
                    Ok(answer) => {
                        if let Some(index) = metas.iter().position(|m| *m == meta) {
                            self.inner.leader.store(index, Ordering::Relaxed);
                        }
                        return answer;
                    }
                    Err(e @ (RpcError::Connect { .. } | RpcError::Blocked { .. })) => {
                        last_error = Some(WireError::new(
                            e.code(),
                            format!("no meta server answered ({}): {e}", join(metas)),
                        ))
                    }
                    Err(e) => return Err(WireError::new(e.code(), format!("meta server {meta}: {e}"))),
                }
            }
            let error = last_error.expect("at least one meta server");
            if Instant::now() + backoff >= deadline {
                return Err(error);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// Calls one node directly (for inspection and tools).
    pub async fn call_node<M: Rpc>(&self, node: NodeAddr, req: M) -> Result<M::Response, RpcError> {
        self.inner
            .network
            .call(node, req, self.inner.options.meta_timeout)
            .await
    }

    pub async fn create_table(&self, name: &str, partitions: u32, replicas: u32) -> WireResult<CreateAppResponse> {
        self.meta(CreateApp {
            app_name: name.to_string(),
            partition_count: partitions,
            replica_count: replicas,
            envs: Default::default(),
        })
        .await
    }

    pub async fn drop_table(&self, name: &str) -> WireResult<()> {
        self.forget_table(name);
        self.meta(DropApp {
            app_name: name.to_string(),
        })
        .await
    }

    pub async fn list_tables(&self, include_dropped: bool) -> WireResult<Vec<AppState>> {
        self.meta(ListApps { include_dropped }).await
    }

    pub async fn query_config(&self, name: &str) -> WireResult<AppState> {
        self.meta(QueryConfig {
            app_name: name.to_string(),
        })
        .await
    }

    pub async fn list_nodes(&self) -> WireResult<Vec<NodeInfo>> {
        self.meta(ListNodes {}).await
    }

    pub async fn cluster_info(&self) -> WireResult<ClusterInfo> {
        self.meta(QueryClusterInfo {}).await
    }

    pub async fn meta_level(&self) -> WireResult<MetaLevelInfo> {
        self.meta(GetMetaLevel {}).await
    }

    /// Sets the stored meta level; returns the previous one.
    pub async fn set_meta_level(&self, level: MetaLevel) -> WireResult<MetaLevel> {
        self.meta(SetMetaLevel { level }).await
    }

    /// Sends one low-level proposal (the shell's `propose`).
    pub async fn propose(&self, proposal: Propose) -> WireResult<()> {
        self.meta(proposal).await
    }

    /// Dead partitions (or one partition) and what they wait for.
    pub async fn ddd_diagnose(&self, gpid: Option<aerie_common::Gpid>) -> WireResult<Vec<DddPartition>> {
        self.meta(DddDiagnose { gpid }).await
    }

    /// Drops a cached table handle, so that the next `table` call loads the table anew.
    pub(crate) fn forget_table(&self, name: &str) {
        self.inner.tables.lock().expect("table cache").remove(name);
    }

    /// A handle on a table, with its routing loaded (cached per client).
    pub async fn table(&self, name: &str) -> WireResult<Table> {
        if let Some(table) = self.inner.tables.lock().expect("table cache").get(name) {
            return Ok(table.clone());
        }
        let routing = self.query_config(name).await?;
        let table = Table::new(self.clone(), routing);
        self.inner
            .tables
            .lock()
            .expect("table cache")
            .insert(name.to_string(), table.clone());
        Ok(table)
    }
}

pub(crate) fn join(nodes: &[NodeAddr]) -> String {
    nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}
