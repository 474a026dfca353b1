//! `ServerState`: the meta server's single owner of the cluster map (tables, partition
//! configurations, nodes). Every change is written to the meta store *before* it takes effect in
//! memory: the store write runs with the actor's mailbox held (`ctx.wait`), so changes apply one at a
//! time in the order they were persisted. Telling replica servers about a change happens afterwards,
//! outside the mailbox.
//!
//! A store write whose outcome is unknown (`Ambiguous`) stops the actor; its supervisor restarts it
//! and `started` reloads the whole state from the store rather than guess.

use super::persist::StoreLayout;
use super::placement::{place_table, NodeLoad};
use crate::metrics::{
    META_NODES, META_PARTITIONS, META_PARTITION_HEALTH, META_REPLICA_STDDEV, META_STORE_WRITES, META_TABLES,
};
use actix::prelude::*;
use aerie_common::{AppId, Clock, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_config::MetaLevel;
use aerie_metastore::{MetaStore, MetaStoreError, StoreOp};
use aerie_proto::meta::*;
use aerie_proto::replica::ConfigUpdate;
use aerie_rpc::{Endpoint, Inbound, Network};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

pub struct MetaParams {
    pub me: NodeAddr,
    pub meta_servers: Vec<NodeAddr>,
    pub store: Arc<dyn MetaStore>,
    pub cluster_root: String,
    pub cluster_name: String,
    pub zookeeper_hosts: String,
    pub network: Network,
    pub clock: Arc<dyn Clock>,
    pub level: MetaLevel,
    pub fd_grace: Duration,
    pub fd_check_interval: Duration,
    pub rpc_timeout: Duration,
    pub create_wait_ready: Duration,
    pub max_partition_count: u32,
    /// Set while the state is loaded and the meta serves (read by `/health`).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, Clone, Copy)]
struct NodeEntry {
    last_beacon_ms: Option<u64>,
    alive: bool,
}

pub struct ServerState {
    params: MetaParams,
    layout: StoreLayout,
    loaded: bool,
    apps: BTreeMap<AppId, AppState>,
    next_app_id: AppId,
    nodes: BTreeMap<NodeAddr, NodeEntry>,
}

const MAX_APP_NAME_LEN: usize = 128;

fn err(code: ErrorCode, detail: impl Into<String>) -> WireError {
    WireError::new(code, detail)
}

/// Sends configuration updates to replica servers; returns how many partitions every member confirmed.
async fn push_configs(network: Network, pushes: Vec<(NodeAddr, ConfigUpdate)>, timeout: Duration) -> u32 {
    let calls = pushes.into_iter().map(|(node, update)| {
        let network = network.clone();
        async move {
            let gpid = update.config.gpid;
            let failure = match network.call(node, update, timeout).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(error) = &failure {
                warn!(%gpid, %node, %error, "configuration not confirmed by replica server");
            }
            (gpid, failure.is_none())
        }
    });
    let mut confirmed: BTreeMap<Gpid, bool> = BTreeMap::new();
    for (gpid, ok) in futures::future::join_all(calls).await {
        let all = confirmed.entry(gpid).or_insert(true);
        *all &= ok;
    }
    confirmed.values().filter(|ok| **ok).count() as u32
}

impl ServerState {
    pub fn new(params: MetaParams, loaded: Option<super::persist::LoadedState>) -> Self {
        let layout = StoreLayout::new(&params.cluster_root);
        let mut state = ServerState {
            params,
            layout,
            loaded: false,
            apps: BTreeMap::new(),
            next_app_id: 1,
            nodes: BTreeMap::new(),
        };
        if let Some(loaded) = loaded {
            state.install(loaded);
        }
        state
    }

    /// The meta server's RPC endpoint.
    pub fn endpoint(me: NodeAddr, addr: Addr<ServerState>) -> Endpoint {
        let mut endpoint = Endpoint::new(me);
        endpoint
            .handle_actor::<Beacon, _>(addr.clone())
            .handle_actor::<ConfigSync, _>(addr.clone())
            .handle_actor::<CreateApp, _>(addr.clone())
            .handle_actor::<DropApp, _>(addr.clone())
            .handle_actor::<ListApps, _>(addr.clone())
            .handle_actor::<QueryConfig, _>(addr.clone())
            .handle_actor::<ListNodes, _>(addr.clone())
            .handle_actor::<QueryClusterInfo, _>(addr);
        endpoint
    }

    fn install(&mut self, loaded: super::persist::LoadedState) {
        self.apps = loaded.apps;
        self.next_app_id = loaded.next_app_id;
        // Nodes named by configurations are known, but unalive until they beacon.
        let named: Vec<NodeAddr> = self
            .available_apps()
            .flat_map(|a| a.partitions.iter().flat_map(|p| p.members().collect::<Vec<_>>()))
            .collect();
        for node in named {
            self.nodes.entry(node).or_insert(NodeEntry {
                last_beacon_ms: None,
                alive: false,
            });
        }
        self.loaded = true;
        self.params.ready.store(true, std::sync::atomic::Ordering::Release);
        info!(
            tables = self.available_apps().count(),
            next_app_id = self.next_app_id,
            store = %self.params.store.describe(),
            "meta state loaded"
        );
        self.refresh_metrics();
    }

    fn available_apps(&self) -> impl Iterator<Item = &AppState> {
        self.apps.values().filter(|a| a.info.status == AppStatus::Available)
    }

    fn find_available(&self, name: &str) -> Option<&AppState> {
        self.available_apps().find(|a| a.info.app_name == name)
    }

    fn alive_nodes(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.nodes.iter().filter(|(_, n)| n.alive).map(|(a, _)| *a)
    }

    fn node_load(&self, node: NodeAddr) -> NodeLoad {
        let mut load = NodeLoad::default();
        for partition in self.available_apps().flat_map(|a| &a.partitions) {
            if partition.primary == Some(node) {
                load.primaries += 1;
            }
            if partition.is_member(node) {
                load.replicas += 1;
            }
        }
        load
    }

    fn touch(&mut self, node: NodeAddr) {
        let now = self.params.clock.now_ms();
        let entry = self.nodes.entry(node).or_insert(NodeEntry {
            last_beacon_ms: None,
            alive: false,
        });
        entry.last_beacon_ms = Some(now);
        if !entry.alive {
            entry.alive = true;
            info!(%node, "replica server is alive");
            self.refresh_metrics();
        }
    }

    fn check_liveness(&mut self) {
        let now = self.params.clock.now_ms();
        let grace = self.params.fd_grace.as_millis() as u64;
        let mut changed = false;
        for (node, entry) in self.nodes.iter_mut().filter(|(_, e)| e.alive) {
            let silent_ms = entry.last_beacon_ms.map(|t| now.saturating_sub(t)).unwrap_or(u64::MAX);
            if silent_ms > grace {
                entry.alive = false;
                changed = true;
                warn!(%node, silent_ms, "replica server is unalive: no beacon within the grace period");
            }
        }
        if changed {
            self.refresh_metrics();
        }
    }

    fn refresh_metrics(&self) {
        let apps: Vec<&AppState> = self.available_apps().collect();
        META_TABLES.set(apps.len() as i64);
        let partitions: Vec<PartitionConfig> = apps.iter().flat_map(|a| a.partitions.iter().cloned()).collect();
        META_PARTITIONS.set(partitions.len() as i64);
        let health = HealthCounts::of(&partitions);
        META_PARTITION_HEALTH
            .with_label_values(&["fully_healthy"])
            .set(health.fully_healthy as i64);
        META_PARTITION_HEALTH
            .with_label_values(&["unhealthy"])
            .set(health.unhealthy as i64);
        META_PARTITION_HEALTH
            .with_label_values(&["write_unhealthy"])
            .set(health.write_unhealthy as i64);
        META_PARTITION_HEALTH
            .with_label_values(&["read_unhealthy"])
            .set(health.read_unhealthy as i64);
        let alive = self.nodes.values().filter(|n| n.alive).count() as i64;
        META_NODES.with_label_values(&["alive"]).set(alive);
        META_NODES
            .with_label_values(&["unalive"])
            .set(self.nodes.len() as i64 - alive);
        let (primary_stddev, total_stddev) = self.replica_stddevs();
        META_REPLICA_STDDEV.with_label_values(&["primary"]).set(primary_stddev);
        META_REPLICA_STDDEV.with_label_values(&["total"]).set(total_stddev);
    }

    /// Standard deviations of primary and replica counts over alive nodes.
    fn replica_stddevs(&self) -> (f64, f64) {
        let loads: Vec<NodeLoad> = self.alive_nodes().map(|n| self.node_load(n)).collect();
        let stddev = |values: Vec<f64>| -> f64 {
            if values.is_empty() {
                return 0.0;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        };
        (
            stddev(loads.iter().map(|l| l.primaries as f64).collect()),
            stddev(loads.iter().map(|l| l.replicas as f64).collect()),
        )
    }

    /// Writes `ops` to the store with the mailbox held, then runs `apply` with the outcome.
    fn persist_then<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        ops: Vec<StoreOp>,
        apply: impl FnOnce(&mut Self, &mut Context<Self>) -> T + 'static,
    ) -> oneshot::Receiver<WireResult<T>> {
        let (tx, rx) = oneshot::channel();
        let store = self.params.store.clone();
        ctx.wait(async move { store.transaction(ops).await }.into_actor(self).map(move |written, act, ctx| {
            let outcome = match written {
                Ok(()) => {
                    META_STORE_WRITES.with_label_values(&["ok"]).inc();
                    let value = apply(act, ctx);
                    act.refresh_metrics();
                    Ok(value)
                }
                Err(MetaStoreError::Ambiguous(reason)) => {
                    META_STORE_WRITES.with_label_values(&["ambiguous"]).inc();
                    error!(%reason, "meta store write outcome unknown; reloading the state from the store");
                    act.loaded = false;
                    ctx.stop();
                    Err(err(
                        ErrorCode::ERR_META_STORE,
                        format!("the meta store write may or may not have happened ({reason}); the meta is reloading its state, check before retrying"),
                    ))
                }
                Err(e) => {
                    META_STORE_WRITES.with_label_values(&["failed"]).inc();
                    warn!(error = %e, "meta store write failed; nothing changed");
                    Err(err(ErrorCode::ERR_META_STORE, e.to_string()))
                }
            };
            let _ = tx.send(outcome);
        }));
        rx
    }

    fn check_loaded(&self) -> WireResult<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(err(
                ErrorCode::ERR_INVALID_STATE,
                "the meta server is loading its state; retry shortly",
            ))
        }
    }

    fn validate_create(&self, req: &CreateApp) -> WireResult<()> {
        let name = &req.app_name;
        let name_ok = !name.is_empty()
            && name.len() <= MAX_APP_NAME_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !name_ok {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("invalid table name '{name}': use 1 to {MAX_APP_NAME_LEN} of the characters A-Z a-z 0-9 _ . -"),
            ));
        }
        let count = req.partition_count;
        if count == 0 || !count.is_power_of_two() || count > self.params.max_partition_count {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!(
                    "partition count {count} must be a power of two between 1 and {} (meta_server.max_partition_count)",
                    self.params.max_partition_count
                ),
            ));
        }
        if req.replica_count == 0 {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                "replica count must be at least 1",
            ));
        }
        if self.find_available(name).is_some() {
            return Err(err(ErrorCode::ERR_APP_EXIST, format!("table '{name}' already exists")));
        }
        Ok(())
    }

    fn pushes_for(&self, app: &AppState) -> Vec<(NodeAddr, ConfigUpdate)> {
        app.partitions
            .iter()
            .flat_map(|config| {
                config.members().map(|node| {
                    (
                        node,
                        ConfigUpdate {
                            app: app.info.clone(),
                            config: config.clone(),
                        },
                    )
                })
            })
            .collect()
    }
}

impl Actor for ServerState {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.loaded {
            let store = self.params.store.clone();
            let layout = self.layout.clone();
            ctx.wait(
                async move { layout.load(store.as_ref()).await }.into_actor(self).map(
                    |loaded, act, ctx| match loaded {
                        Ok(loaded) => act.install(loaded),
                        Err(e) => {
                            error!(error = %e, "cannot load the meta state; retrying in 1 s");
                            ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
                        }
                    },
                ),
            );
        }
        ctx.run_interval(self.params.fd_check_interval, |act, _| act.check_liveness());
    }
}

impl Supervised for ServerState {
    fn restarting(&mut self, _: &mut Self::Context) {
        warn!("meta state actor restarting; it will reload from the store");
        self.loaded = false;
        self.params.ready.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Handler<Inbound<Beacon>> for ServerState {
    type Result = WireResult<BeaconAck>;

    fn handle(&mut self, Inbound(beacon): Inbound<Beacon>, _: &mut Self::Context) -> Self::Result {
        self.touch(beacon.node);
        Ok(BeaconAck {
            is_leader: true,
            leader: Some(self.params.me),
        })
    }
}

impl Handler<Inbound<ConfigSync>> for ServerState {
    type Result = WireResult<ConfigSyncResponse>;

    fn handle(&mut self, Inbound(sync): Inbound<ConfigSync>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.touch(sync.node);
        let partitions = self
            .available_apps()
            .flat_map(|app| {
                app.partitions
                    .iter()
                    .filter(|p| p.is_member(sync.node))
                    .map(|p| (app.info.clone(), p.clone()))
            })
            .collect();
        let mut dropped_apps: Vec<AppId> = Vec::new();
        for report in &sync.replicas {
            match self.apps.get(&report.gpid.app_id) {
                Some(app) if app.info.status == AppStatus::Dropped => dropped_apps.push(app.info.app_id),
                Some(_) => {}
                None => {
                    warn!(node = %sync.node, gpid = %report.gpid, "a replica server holds a replica of a table this meta does not know; leaving it alone")
                }
            }
        }
        dropped_apps.sort_unstable();
        dropped_apps.dedup();
        Ok(ConfigSyncResponse {
            partitions,
            dropped_apps,
        })
    }
}

impl Handler<Inbound<CreateApp>> for ServerState {
    type Result = ResponseFuture<WireResult<CreateAppResponse>>;

    fn handle(&mut self, Inbound(req): Inbound<CreateApp>, ctx: &mut Self::Context) -> Self::Result {
        let planned = self
            .check_loaded()
            .and_then(|_| self.validate_create(&req))
            .and_then(|_| {
                let alive: BTreeMap<NodeAddr, NodeLoad> = self.alive_nodes().map(|n| (n, self.node_load(n))).collect();
                place_table(&alive, req.partition_count, req.replica_count)
                    .map_err(|e| err(ErrorCode::ERR_NOT_ENOUGH_MEMBER, e.to_string()))
            });
        let placements = match planned {
            Ok(placements) => placements,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let app_id = self.next_app_id;
        let info = AppInfo {
            app_id,
            app_name: req.app_name.clone(),
            status: AppStatus::Available,
            partition_count: req.partition_count,
            max_replica_count: req.replica_count,
            create_time_secs: self.params.clock.wall_secs(),
            drop_time_secs: None,
            envs: req.envs.clone(),
        };
        let partitions: Vec<PartitionConfig> = placements
            .into_iter()
            .enumerate()
            .map(|(pidx, placement)| PartitionConfig {
                gpid: Gpid::new(app_id, pidx as u32),
                ballot: 1,
                primary: Some(placement.primary),
                secondaries: placement.secondaries,
                max_replica_count: req.replica_count,
                last_drops: Vec::new(),
                last_committed_decree: 0,
            })
            .collect();
        let ops = self.layout.create_app_ops(&info, &partitions, app_id + 1);
        let app = AppState { info, partitions };
        let applied = self.persist_then(ctx, ops, move |act, _| {
            info!(app_id, name = %app.info.app_name, partitions = app.partitions.len(), "table created");
            act.next_app_id = app_id + 1;
            let pushes = act.pushes_for(&app);
            let info = app.info.clone();
            act.apps.insert(app_id, app);
            (info, pushes)
        });
        let (network, wait) = (self.params.network.clone(), self.params.create_wait_ready);
        Box::pin(async move {
            let (app, pushes) = applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            let ready_partitions = push_configs(network, pushes, wait).await;
            Ok(CreateAppResponse { app, ready_partitions })
        })
    }
}

impl Handler<Inbound<DropApp>> for ServerState {
    type Result = ResponseFuture<WireResult<()>>;

    fn handle(&mut self, Inbound(req): Inbound<DropApp>, ctx: &mut Self::Context) -> Self::Result {
        let found = self.check_loaded().and_then(|_| {
            self.find_available(&req.app_name).cloned().ok_or_else(|| {
                err(
                    ErrorCode::ERR_APP_NOT_EXIST,
                    format!("table '{}' does not exist", req.app_name),
                )
            })
        });
        let mut app = match found {
            Ok(app) => app,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        app.info.status = AppStatus::Dropped;
        app.info.drop_time_secs = Some(self.params.clock.wall_secs());
        let ops = vec![self.layout.set_app_op(&app.info)];
        let applied = self.persist_then(ctx, ops, move |act, _| {
            info!(app_id = app.info.app_id, name = %app.info.app_name, "table dropped");
            let pushes = act.pushes_for(&app);
            act.apps.insert(app.info.app_id, app);
            pushes
        });
        let (network, timeout) = (self.params.network.clone(), self.params.rpc_timeout);
        Box::pin(async move {
            let pushes = applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            // Replica servers that miss this learn it from their next config sync.
            actix::spawn(push_configs(network, pushes, timeout).map(|_| ()));
            Ok(())
        })
    }
}

impl Handler<Inbound<ListApps>> for ServerState {
    type Result = WireResult<Vec<AppState>>;

    fn handle(&mut self, Inbound(req): Inbound<ListApps>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        Ok(self
            .apps
            .values()
            .filter(|a| req.include_dropped || a.info.status == AppStatus::Available)
            .cloned()
            .collect())
    }
}

impl Handler<Inbound<QueryConfig>> for ServerState {
    type Result = WireResult<AppState>;

    fn handle(&mut self, Inbound(req): Inbound<QueryConfig>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.find_available(&req.app_name).cloned().ok_or_else(|| {
            err(
                ErrorCode::ERR_APP_NOT_EXIST,
                format!("table '{}' does not exist", req.app_name),
            )
        })
    }
}

impl Handler<Inbound<ListNodes>> for ServerState {
    type Result = WireResult<Vec<NodeInfo>>;

    fn handle(&mut self, _: Inbound<ListNodes>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        Ok(self
            .nodes
            .iter()
            .map(|(address, entry)| {
                let load = self.node_load(*address);
                NodeInfo {
                    address: *address,
                    status: if entry.alive {
                        NodeStatus::Alive
                    } else {
                        NodeStatus::Unalive
                    },
                    primary_count: load.primaries,
                    secondary_count: load.replicas - load.primaries,
                }
            })
            .collect())
    }
}

impl Handler<Inbound<QueryClusterInfo>> for ServerState {
    type Result = WireResult<ClusterInfo>;

    fn handle(&mut self, _: Inbound<QueryClusterInfo>, _: &mut Self::Context) -> Self::Result {
        let (primary_stddev, total_stddev) = self.replica_stddevs();
        Ok(ClusterInfo {
            meta_servers: self.params.meta_servers.clone(),
            primary_meta_server: self.params.me,
            meta_store: self.params.store.describe(),
            zookeeper_hosts: self.params.zookeeper_hosts.clone(),
            zookeeper_root: self.layout.root().to_string(),
            meta_function_level: self.params.level.pegasus_name().to_string(),
            balance_operation_count: -1,
            primary_replica_count_stddev: primary_stddev,
            total_replica_count_stddev: total_stddev,
            cluster_name: self.params.cluster_name.clone(),
        })
    }
}
