//! `ServerState`: the meta server's single owner of the cluster map (tables, partition
//! configurations, nodes). Every change is written to the meta store *before* it takes effect in
//! memory: the store write runs with the actor's mailbox held (`ctx.wait`), so changes apply one at a
//! time in the order they were persisted. Telling replica servers about a change happens afterwards,
//! outside the mailbox.
//!
//! A store write whose outcome is unknown (`Ambiguous`) stops the actor; its supervisor restarts it
//! and `started` reloads the whole state from the store rather than guess.
//!
//! ```text
//!  FailureDetector ─NodeLiveness─► ServerState ─cure()─► persist (ballot + 1) ─► apply ─► push ConfigUpdate
//!  primary ─UpdatePartitionConfig─►      │                                           └─► AddLearner to a primary
//! ```
//!
//! The parts: `tables` (create, drop, list), `nodes` (liveness, config sync, listings), `cure` (the
//! guardian's decisions carried out), `balance` (moves of the balancer, the operator and node
//! evacuation, carried out), `offline` (emptying and forgetting nodes), `partition_change`
//! (requests from primaries).

mod balance;
mod commands;
mod cure;
mod nodes;
mod offline;
mod operator;
mod partition_change;
mod tables;

use super::balancer::actor::{Balancer, KickBalancer};
use super::balancer::BalanceOptions;
use super::failure_detector::{FailureDetector, RememberNodes};
use super::guardian::{CureKnobs, ReplicaState};
use super::level::{effective_level, FreezeRule};
use super::persist::{LoadedState, StoreLayout};
use super::placement::NodeLoad;
use crate::metrics::{
    META_LEVEL, META_NODES, META_PARTITIONS, META_PARTITION_HEALTH, META_REPLICA_STDDEV, META_SELF_FREEZES,
    META_STORE_WRITES, META_TABLES,
};
use actix::prelude::*;
use aerie_common::MetaLevel;
use aerie_common::{AppId, Ballot, Clock, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_metastore::{MetaStore, MetaStoreError, StoreOp};
use aerie_proto::meta::*;
use aerie_proto::replica::ConfigUpdate;
use aerie_rpc::{Endpoint, Network};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// How often the cure looks at every partition (it also runs right after every change).
    pub cure_interval: Duration,
    pub knobs: CureKnobs,
    pub freeze: FreezeRule,
    /// Set while the state is loaded and the meta serves (read by `/health`).
    pub ready: Arc<AtomicBool>,
}

/// An add-secondary action in progress: learning on `node`, started at `ballot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Adding {
    node: NodeAddr,
    ballot: Ballot,
    started_ms: u64,
}

pub struct ServerState {
    params: MetaParams,
    layout: StoreLayout,
    loaded: bool,
    apps: BTreeMap<AppId, AppState>,
    next_app_id: AppId,
    /// Replica servers and whether they are alive (as the failure detector says).
    nodes: BTreeMap<NodeAddr, bool>,
    failure_detector: Addr<FailureDetector>,
    /// What live nodes last reported about their replicas (for dead partitions).
    reports: BTreeMap<Gpid, BTreeMap<NodeAddr, ReplicaState>>,
    /// When each node dropped out of each partition (this process's clock; not persisted).
    dropped_at: BTreeMap<Gpid, BTreeMap<NodeAddr, u64>>,
    /// When each node last became alive (this process's clock).
    alive_since: BTreeMap<NodeAddr, u64>,
    adding: BTreeMap<Gpid, Adding>,
    knobs: CureKnobs,
    cure_scheduled: bool,
    /// A cure run set for when the earliest timed wait ends (meta clock), so that a partition does
    /// not wait a whole `cure_interval` longer than it must.
    cure_wakeup: Option<(u64, SpawnHandle)>,
    /// The level the operator set (or the configured start level).
    stored_level: MetaLevel,
    freeze: FreezeRule,
    /// The effective level last reported, to log changes.
    announced_level: MetaLevel,
    balancer: Addr<Balancer>,
    balance_options: BalanceOptions,
    /// Balance moves under way, one per partition at most.
    moves: BTreeMap<Gpid, balance::MoveInProgress>,
    /// Nodes being emptied by `offline_node`.
    leaving: BTreeSet<NodeAddr>,
    /// Nodes that reported their replicas to this meta since it loaded its state.
    synced_nodes: BTreeSet<NodeAddr>,
    /// Partition sizes as their replicas last reported them.
    data_bytes: BTreeMap<Gpid, u64>,
    /// What the balancer last counted (-1: not known yet).
    balance_operation_count: i64,
}

fn err(code: ErrorCode, detail: impl Into<String>) -> WireError {
    WireError::new(code, detail)
}

impl ServerState {
    /// Starts the meta's actors: `ServerState` under a supervisor, and its failure detector.
    pub fn start(params: MetaParams, loaded: Option<LoadedState>) -> Addr<ServerState> {
        Supervisor::start(move |ctx: &mut Context<ServerState>| {
            let detector = FailureDetector::new(
                params.me,
                params.fd_grace,
                params.fd_check_interval,
                params.clock.clone(),
                ctx.address().recipient(),
            )
            .start();
            let balancer = Balancer::new(ctx.address(), params.cure_interval).start();
            ServerState::new(params, detector, balancer, loaded)
        })
    }

    fn new(
        params: MetaParams,
        failure_detector: Addr<FailureDetector>,
        balancer: Addr<Balancer>,
        loaded: Option<LoadedState>,
    ) -> Self {
        let layout = StoreLayout::new(&params.cluster_root);
        let knobs = params.knobs.clone();
        let (stored_level, freeze) = (params.level, params.freeze);
        let mut state = ServerState {
            params,
            layout,
            loaded: false,
            apps: BTreeMap::new(),
            next_app_id: 1,
            nodes: BTreeMap::new(),
            failure_detector,
            reports: BTreeMap::new(),
            dropped_at: BTreeMap::new(),
            alive_since: BTreeMap::new(),
            adding: BTreeMap::new(),
            knobs,
            cure_scheduled: false,
            cure_wakeup: None,
            stored_level,
            freeze,
            announced_level: stored_level,
            balancer,
            balance_options: BalanceOptions::default(),
            moves: BTreeMap::new(),
            leaving: BTreeSet::new(),
            synced_nodes: BTreeSet::new(),
            data_bytes: BTreeMap::new(),
            balance_operation_count: -1,
        };
        if let Some(loaded) = loaded {
            state.install(loaded);
        }
        state
    }

    /// The meta server's RPC endpoint: beacons go to the failure detector, the dry run of the
    /// balancer to the balancer, the rest to `ServerState`.
    pub fn endpoint(me: NodeAddr, addr: Addr<ServerState>, helpers: MetaHelpers) -> Endpoint {
        let mut endpoint = Endpoint::new(me);
        endpoint
            .handle_actor::<Beacon, _>(helpers.failure_detector)
            .handle_actor::<QueryBalancePlan, _>(helpers.balancer)
            .handle_actor::<Balance, _>(addr.clone())
            .handle_actor::<OfflineNodes, _>(addr.clone())
            .handle_actor::<CancelOffline, _>(addr.clone())
            .handle_actor::<QueryOfflineProgress, _>(addr.clone())
            .handle_actor::<RemoveNode, _>(addr.clone())
            .handle_actor::<ConfigSync, _>(addr.clone())
            .handle_actor::<UpdatePartitionConfig, _>(addr.clone())
            .handle_actor::<QueryPartition, _>(addr.clone())
            .handle_actor::<CreateApp, _>(addr.clone())
            .handle_actor::<DropApp, _>(addr.clone())
            .handle_actor::<ListApps, _>(addr.clone())
            .handle_actor::<QueryConfig, _>(addr.clone())
            .handle_actor::<ListNodes, _>(addr.clone())
            .handle_actor::<QueryClusterInfo, _>(addr.clone())
            .handle_actor::<GetMetaLevel, _>(addr.clone())
            .handle_actor::<SetMetaLevel, _>(addr.clone())
            .handle_actor::<Propose, _>(addr.clone())
            .handle_actor::<DddDiagnose, _>(addr);
        endpoint
    }

    fn install(&mut self, loaded: LoadedState) {
        self.apps = loaded.apps;
        self.next_app_id = loaded.next_app_id;
        // Nodes the map names are alive until the failure detector says otherwise (one grace period).
        let named: Vec<NodeAddr> = self
            .available_apps()
            .flat_map(|a| a.partitions.iter().flat_map(|p| p.members().collect::<Vec<_>>()))
            .collect();
        let now = self.params.clock.now_ms();
        for node in &named {
            self.nodes.entry(*node).or_insert(true);
            self.alive_since.entry(*node).or_insert(now);
        }
        self.failure_detector.do_send(RememberNodes(named));
        self.loaded = true;
        self.params.ready.store(true, Ordering::Release);
        info!(
            tables = self.available_apps().count(),
            next_app_id = self.next_app_id,
            store = %self.params.store.describe(),
            "meta state loaded"
        );
        self.refresh_metrics();
        self.announce_level();
    }

    fn available_apps(&self) -> impl Iterator<Item = &AppState> {
        self.apps.values().filter(|a| a.info.status == AppStatus::Available)
    }

    fn find_available(&self, name: &str) -> Option<&AppState> {
        self.available_apps().find(|a| a.info.app_name == name)
    }

    fn partition(&self, gpid: Gpid) -> Option<(&AppInfo, &PartitionConfig)> {
        let app = self.apps.get(&gpid.app_id)?;
        if app.info.status != AppStatus::Available {
            return None;
        }
        app.partitions.get(gpid.pidx as usize).map(|p| (&app.info, p))
    }

    fn alive_nodes(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.nodes.iter().filter(|(_, alive)| **alive).map(|(a, _)| *a)
    }

    /// Primaries and replicas per node, over every available table or one.
    fn loads(&self, only_app: Option<AppId>) -> BTreeMap<NodeAddr, NodeLoad> {
        let mut loads: BTreeMap<NodeAddr, NodeLoad> = BTreeMap::new();
        for app in self
            .available_apps()
            .filter(|a| only_app.is_none_or(|id| a.info.app_id == id))
        {
            for partition in &app.partitions {
                if let Some(primary) = partition.primary {
                    loads.entry(primary).or_default().primaries += 1;
                }
                for node in partition.members() {
                    loads.entry(node).or_default().replicas += 1;
                }
            }
        }
        loads
    }

    /// The level in force, and why it differs from the stored one.
    fn effective_level(&self) -> (MetaLevel, Option<String>) {
        effective_level(
            self.stored_level,
            self.alive_nodes().count(),
            self.nodes.len(),
            &self.freeze,
        )
    }

    /// Logs and exports a change of the effective level.
    fn announce_level(&mut self) {
        let (level, reason) = self.effective_level();
        for l in [
            MetaLevel::Blind,
            MetaLevel::Freezed,
            MetaLevel::Steady,
            MetaLevel::Lively,
        ] {
            META_LEVEL
                .with_label_values(&[l.pegasus_name()])
                .set((l == level) as i64);
        }
        if level == self.announced_level {
            return;
        }
        match (&reason, level) {
            (Some(reason), MetaLevel::Freezed) => {
                META_SELF_FREEZES.inc();
                warn!(%reason, "the meta freezes itself: no cure that adds load, no balance")
            }
            _ => info!(from = %self.announced_level, to = %level, "meta level in force changed"),
        }
        self.announced_level = level;
    }

    /// Refuses a change of meta state while the level is blind.
    fn check_not_blind(&self) -> WireResult<()> {
        if self.stored_level == MetaLevel::Blind {
            return Err(err(
                ErrorCode::ERR_STATE_FREEZED,
                "the meta level is blind: every change of meta state is refused (set_meta_level steady to leave it)",
            ));
        }
        Ok(())
    }

    fn check_loaded(&self) -> WireResult<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(err(
                ErrorCode::ERR_SERVICE_NOT_ACTIVE,
                "the meta server is loading its state; retry shortly",
            ))
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
        let alive = self.alive_nodes().count() as i64;
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
        let loads = self.loads(None);
        let per_node: Vec<NodeLoad> = self
            .alive_nodes()
            .map(|n| loads.get(&n).copied().unwrap_or_default())
            .collect();
        let stddev = |values: Vec<f64>| -> f64 {
            if values.is_empty() {
                return 0.0;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
        };
        (
            stddev(per_node.iter().map(|l| l.primaries as f64).collect()),
            stddev(per_node.iter().map(|l| l.replicas as f64).collect()),
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

    /// Configuration updates for every member of a partition (and for nodes that just left it).
    fn pushes_for_partition(
        app: &AppInfo,
        config: &PartitionConfig,
        also: impl IntoIterator<Item = NodeAddr>,
    ) -> Vec<(NodeAddr, ConfigUpdate)> {
        let mut nodes: Vec<NodeAddr> = config.members().collect();
        for node in also {
            if !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        nodes
            .into_iter()
            .map(|node| {
                (
                    node,
                    ConfigUpdate {
                        app: app.clone(),
                        config: config.clone(),
                    },
                )
            })
            .collect()
    }
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
        ctx.run_interval(self.params.cure_interval, |act, ctx| act.run_cure(ctx));
    }
}

impl Supervised for ServerState {
    fn restarting(&mut self, _: &mut Self::Context) {
        warn!("meta state actor restarting; it will reload from the store");
        self.loaded = false;
        self.params.ready.store(false, Ordering::Release);
        self.adding.clear();
        self.moves.clear();
        self.synced_nodes.clear();
        self.cure_scheduled = false;
    }
}

pub use commands::{MetaCommand, META_COMMANDS};

/// The actors `ServerState` started beside itself, which answer some of the meta's requests.
#[derive(Clone)]
pub struct MetaHelpers {
    pub failure_detector: Addr<FailureDetector>,
    pub balancer: Addr<Balancer>,
}

/// Asks `ServerState` for its helper actors (to route requests to them).
#[derive(Message)]
#[rtype(result = "MetaHelpers")]
pub struct GetMetaHelpers;

impl Handler<GetMetaHelpers> for ServerState {
    type Result = MessageResult<GetMetaHelpers>;

    fn handle(&mut self, _: GetMetaHelpers, _: &mut Self::Context) -> Self::Result {
        MessageResult(MetaHelpers {
            failure_detector: self.failure_detector.clone(),
            balancer: self.balancer.clone(),
        })
    }
}

impl Handler<aerie_rpc::Inbound<QueryClusterInfo>> for ServerState {
    type Result = WireResult<ClusterInfo>;

    fn handle(&mut self, _: aerie_rpc::Inbound<QueryClusterInfo>, _: &mut Self::Context) -> Self::Result {
        let (primary_stddev, total_stddev) = self.replica_stddevs();
        Ok(ClusterInfo {
            meta_servers: self.params.meta_servers.clone(),
            primary_meta_server: self.params.me,
            meta_store: self.params.store.describe(),
            zookeeper_hosts: self.params.zookeeper_hosts.clone(),
            zookeeper_root: self.layout.root().to_string(),
            meta_function_level: self.effective_level().0.pegasus_name().to_string(),
            balance_operation_count: self.balance_operation_count,
            primary_replica_count_stddev: primary_stddev,
            total_replica_count_stddev: total_stddev,
            cluster_name: self.params.cluster_name.clone(),
        })
    }
}

impl Handler<aerie_rpc::Inbound<GetMetaLevel>> for ServerState {
    type Result = WireResult<MetaLevelInfo>;

    fn handle(&mut self, _: aerie_rpc::Inbound<GetMetaLevel>, _: &mut Self::Context) -> Self::Result {
        let (effective, reason) = self.effective_level();
        Ok(MetaLevelInfo {
            stored: self.stored_level,
            effective,
            reason,
        })
    }
}

impl Handler<aerie_rpc::Inbound<SetMetaLevel>> for ServerState {
    type Result = WireResult<MetaLevel>;

    fn handle(
        &mut self,
        aerie_rpc::Inbound(req): aerie_rpc::Inbound<SetMetaLevel>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        let old = std::mem::replace(&mut self.stored_level, req.level);
        info!(from = %old, to = %req.level, "meta level set");
        self.announce_level();
        self.schedule_cure(ctx);
        self.balancer.do_send(KickBalancer);
        Ok(old)
    }
}
