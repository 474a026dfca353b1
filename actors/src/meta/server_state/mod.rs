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
//! (requests from primaries), `recover` (rebuilding the map from the replica servers).

mod balance;
mod commands;
mod cure;
mod maintenance;
mod nodes;
mod offline;
mod operator;
mod partition_change;
mod recover;
mod tables;

use super::balancer::actor::{Balancer, KickBalancer};
use super::balancer::BalanceOptions;
use super::failure_detector::{FailureDetector, RememberNodes, ResetDetector};
use super::guardian::{CureKnobs, ReplicaState};
use super::level::{effective_level, FreezeRule};
use super::persist::{LoadedState, StoreLayout};
use super::placement::NodeLoad;
use crate::metrics::{
    META_LEADER, META_LEVEL, META_NODES, META_NODE_ALIVE, META_PARTITIONS, META_PARTITION_HEALTH, META_REPLICA_STDDEV,
    META_SELF_FREEZES, META_STORE_AVAILABLE, META_STORE_WRITES, META_TABLES, META_WORK_IN_PROGRESS,
};
use actix::prelude::*;
use aerie_common::MetaLevel;
use aerie_common::{AppId, Ballot, Clock, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_metastore::{LeaderView, Leadership, MetaStore, MetaStoreError, StoreOp};
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
    /// Whether this meta leads; only the leader loads the state and changes it.
    pub leadership: Leadership,
    /// Over an empty store, wait for `recover` instead of starting an empty cluster.
    pub recover_from_replica_server: bool,
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
    /// The longest maintenance of a node (`meta_server.maintenance_max_seconds`).
    pub maintenance_max: Duration,
    /// How long a dropped table can be recalled (`meta_server.hold_seconds_for_dropped_app`).
    pub hold_dropped: Duration,
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
    /// A load from the store is under way.
    loading: bool,
    /// The store was empty and `recover_from_replica_server` is set: waiting for `recover`.
    awaiting_recover: bool,
    /// A `recover` is under way.
    recovering: bool,
    apps: BTreeMap<AppId, AppState>,
    next_app_id: AppId,
    /// Replica servers and whether they are alive (as the failure detector says).
    nodes: BTreeMap<NodeAddr, bool>,
    /// The incarnation of each live node's current life (see `failure_detector`): configurations
    /// made for a node carry it.
    incarnations: BTreeMap<NodeAddr, u64>,
    /// Replicas their nodes reported out of service (failed to open, storage failed): the cure
    /// treats them as gone.
    broken: BTreeMap<Gpid, BTreeSet<NodeAddr>>,
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
    /// Nodes in maintenance, with the wall-clock second it ends (see `maintenance.rs`).
    maintenance: BTreeMap<NodeAddr, u64>,
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
    /// Starts the meta's actors: `ServerState` under a supervisor, and its failure detector. It
    /// follows the leadership: it loads the state when this meta starts leading and drops it when
    /// it stops.
    pub fn start(params: MetaParams, loaded: Option<LoadedState>) -> Addr<ServerState> {
        let mut leadership = params.leadership.clone();
        let addr = Supervisor::start(move |ctx: &mut Context<ServerState>| {
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
        });
        let watcher = addr.clone();
        actix::spawn(async move {
            // `send` waits for mailbox room: a change of leadership must never be dropped.
            while let Some(view) = leadership.changed().await {
                if watcher.send(LeadershipChanged(view)).await.is_err() {
                    return;
                }
            }
        });
        addr
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
            loading: false,
            awaiting_recover: false,
            recovering: false,
            apps: BTreeMap::new(),
            next_app_id: 1,
            nodes: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            broken: BTreeMap::new(),
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
            maintenance: BTreeMap::new(),
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
    /// balancer to the balancer, the rest to `ServerState`. While this meta does not lead, every
    /// request is answered `ERR_FORWARD_TO_OTHERS` naming the leader, and beacons are acknowledged
    /// without a lease (`is_leader = false`) with the leader's address.
    pub fn endpoint(me: NodeAddr, addr: Addr<ServerState>, helpers: MetaHelpers, leadership: Leadership) -> Endpoint {
        let mut endpoint = Endpoint::new(me);
        let gate = LeaderGate { me, leadership };
        let (fd, for_beacons) = (helpers.failure_detector, gate.clone());
        endpoint.handle_fallible::<Beacon, _, _>(move |beacon| {
            let (fd, gate) = (fd.clone(), for_beacons.clone());
            async move {
                if gate.leadership.is_leader() {
                    fd.send(aerie_rpc::Inbound(beacon))
                        .await
                        .map_err(|e| aerie_rpc::RemoteFailure::Unavailable(format!("actor stopped: {e}")))
                } else {
                    Ok(Ok(BeaconAck {
                        is_leader: false,
                        leader: gate.leadership.leader(gate.me),
                        incarnation: 0,
                    }))
                }
            }
        });
        gate.serve::<QueryBalancePlan, _, _>(&mut endpoint, helpers.balancer);
        gate.serve::<Balance, _, _>(&mut endpoint, addr.clone());
        gate.serve::<OfflineNodes, _, _>(&mut endpoint, addr.clone());
        gate.serve::<CancelOffline, _, _>(&mut endpoint, addr.clone());
        gate.serve::<QueryOfflineProgress, _, _>(&mut endpoint, addr.clone());
        gate.serve::<RemoveNode, _, _>(&mut endpoint, addr.clone());
        gate.serve::<NodeMaintenance, _, _>(&mut endpoint, addr.clone());
        gate.serve::<ConfigSync, _, _>(&mut endpoint, addr.clone());
        gate.serve::<UpdatePartitionConfig, _, _>(&mut endpoint, addr.clone());
        gate.serve::<QueryPartition, _, _>(&mut endpoint, addr.clone());
        gate.serve::<CreateApp, _, _>(&mut endpoint, addr.clone());
        gate.serve::<DropApp, _, _>(&mut endpoint, addr.clone());
        gate.serve::<RecallApp, _, _>(&mut endpoint, addr.clone());
        gate.serve::<ListApps, _, _>(&mut endpoint, addr.clone());
        gate.serve::<QueryConfig, _, _>(&mut endpoint, addr.clone());
        gate.serve::<ListNodes, _, _>(&mut endpoint, addr.clone());
        gate.serve::<QueryClusterInfo, _, _>(&mut endpoint, addr.clone());
        gate.serve::<GetMetaLevel, _, _>(&mut endpoint, addr.clone());
        gate.serve::<SetMetaLevel, _, _>(&mut endpoint, addr.clone());
        gate.serve::<Propose, _, _>(&mut endpoint, addr.clone());
        gate.serve::<DddDiagnose, _, _>(&mut endpoint, addr.clone());
        gate.serve::<Recover, _, _>(&mut endpoint, addr);
        endpoint
    }

    fn install(&mut self, loaded: LoadedState) {
        self.apps = loaded.apps;
        self.next_app_id = loaded.next_app_id;
        // The level the operator set outlives meta restarts and failovers.
        if let Some(level) = loaded.level {
            self.stored_level = level;
        }
        // A drain under way goes on: the nodes stay leaving and black-listed.
        self.knobs.black_list.extend(loaded.leaving.iter().copied());
        self.leaving = loaded.leaving;
        self.maintenance = loaded.maintenance;
        // Nodes the map names (and nodes in maintenance, which may hold no replica while they are
        // down) are alive until the failure detector says otherwise (one grace period).
        let mut named: Vec<NodeAddr> = self
            .available_apps()
            .flat_map(|a| a.partitions.iter().flat_map(|p| p.members().collect::<Vec<_>>()))
            .collect();
        named.extend(self.maintenance.keys().copied());
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

    /// The incarnation of a node's current life as this meta knows it (0: none).
    fn incarnation_of(&self, node: NodeAddr) -> u64 {
        self.incarnations.get(&node).copied().unwrap_or(0)
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
        } else if self.awaiting_recover {
            Err(err(
                ErrorCode::ERR_INVALID_STATE,
                "the meta store is empty and recover_from_replica_server = true: the meta waits for `recover -f NODE_FILE` or `recover -s NODES`",
            ))
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
        META_PARTITIONS.set(apps.iter().map(|a| a.partitions.len() as i64).sum());
        META_PARTITION_HEALTH.reset();
        for app in &apps {
            let health = HealthCounts::of(&app.partitions);
            let name = app.info.app_name.as_str();
            for (class, count) in [
                ("fully_healthy", health.fully_healthy),
                ("unhealthy", health.unhealthy),
                ("write_unhealthy", health.write_unhealthy),
                ("read_unhealthy", health.read_unhealthy),
            ] {
                META_PARTITION_HEALTH
                    .with_label_values(&[name, class])
                    .set(count as i64);
            }
        }
        META_NODE_ALIVE.reset();
        let alive_set: BTreeSet<NodeAddr> = self.alive_nodes().collect();
        for node in self.nodes.keys() {
            META_NODE_ALIVE
                .with_label_values(&[&node.to_string()])
                .set(alive_set.contains(node) as i64);
        }
        META_WORK_IN_PROGRESS
            .with_label_values(&["moves"])
            .set(self.moves.len() as i64);
        META_WORK_IN_PROGRESS
            .with_label_values(&["adding_secondaries"])
            .set(self.adding.len() as i64);
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

    /// Configuration updates for every member of a partition (and for nodes that just left it),
    /// each made for the node's current incarnation.
    fn pushes_for_partition(
        &self,
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
                        incarnation: self.incarnation_of(node),
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
        if !self.loaded && self.params.leadership.is_leader() {
            self.load(ctx);
        }
        crate::metrics::register_meta_series();
        ctx.run_interval(self.params.cure_interval, |act, ctx| act.run_cure(ctx));
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            META_LEADER.set(act.params.leadership.is_leader() as i64);
            META_STORE_AVAILABLE.set(act.params.store.health().is_ok() as i64);
            if act.loaded {
                act.refresh_metrics();
            }
        });
    }
}

impl ServerState {
    /// Reads the whole state from the store (this meta leads); on failure, tries again in a second.
    fn load(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            return;
        }
        self.loading = true;
        info!(store = %self.params.store.describe(), "loading the meta state");
        let store = self.params.store.clone();
        let layout = self.layout.clone();
        ctx.wait(
            async move { layout.load(store.as_ref()).await }
                .into_actor(self)
                .map(|loaded, act, ctx| {
                    act.loading = false;
                    match loaded {
                        Ok(loaded) if loaded.apps.is_empty() && act.params.recover_from_replica_server => {
                            warn!(
                                store = %act.params.store.describe(),
                                "the meta store is empty and recover_from_replica_server = true: waiting for `recover`"
                            );
                            act.awaiting_recover = true;
                            act.next_app_id = loaded.next_app_id;
                        }
                        Ok(loaded) if act.params.leadership.is_leader() => act.install(loaded),
                        Ok(_) => info!("leadership lost while loading; the state is not installed"),
                        Err(e) => {
                            error!(error = %e, "cannot load the meta state; retrying in 1 s");
                            ctx.run_later(Duration::from_secs(1), |_, ctx| ctx.stop());
                        }
                    }
                }),
        );
    }
}

/// The leadership view changed.
#[derive(Message)]
#[rtype(result = "()")]
struct LeadershipChanged(LeaderView);

impl Handler<LeadershipChanged> for ServerState {
    type Result = ();

    fn handle(&mut self, LeadershipChanged(view): LeadershipChanged, ctx: &mut Self::Context) {
        match view {
            LeaderView::Leader => {
                if !self.loaded {
                    info!("leading: taking over the cluster map");
                    self.load(ctx);
                }
            }
            LeaderView::Follower(_) | LeaderView::Unknown(_) => {
                if self.loaded || self.loading {
                    warn!(view = ?view, "no longer leading: dropping the meta state");
                    self.apps.clear();
                    self.nodes.clear();
                    self.incarnations.clear();
                    self.broken.clear();
                    self.reports.clear();
                    self.dropped_at.clear();
                    self.alive_since.clear();
                    self.leaving.clear();
                    self.maintenance.clear();
                    self.data_bytes.clear();
                    self.balance_operation_count = -1;
                    self.failure_detector.do_send(ResetDetector);
                    ctx.stop();
                }
            }
        }
    }
}

/// Lets requests through to the actors only while this meta leads.
#[derive(Clone)]
struct LeaderGate {
    me: NodeAddr,
    leadership: Leadership,
}

impl LeaderGate {
    fn refusal(&self) -> WireError {
        match self.leadership.current() {
            LeaderView::Leader => WireError::forward_to(Some(self.me), "it just became the leader"),
            LeaderView::Follower(leader) => WireError::forward_to(Some(leader), "it follows"),
            LeaderView::Unknown(why) => WireError::forward_to(None, &why),
        }
    }

    fn serve<M, T, A>(&self, endpoint: &mut Endpoint, addr: Addr<A>)
    where
        M: aerie_proto::Rpc<Response = WireResult<T>>,
        T: Send + 'static,
        A: Actor + Handler<aerie_rpc::Inbound<M>>,
        A::Context: actix::dev::ToEnvelope<A, aerie_rpc::Inbound<M>>,
    {
        let gate = self.clone();
        endpoint.handle_fallible::<M, _, _>(move |req| {
            let (addr, gate) = (addr.clone(), gate.clone());
            async move {
                if !gate.leadership.is_leader() {
                    return Ok(Err(gate.refusal()));
                }
                addr.send(aerie_rpc::Inbound(req))
                    .await
                    .map_err(|e| aerie_rpc::RemoteFailure::Unavailable(format!("actor stopped: {e}")))
            }
        });
    }
}

impl Supervised for ServerState {
    fn restarting(&mut self, _: &mut Self::Context) {
        warn!("meta state actor restarting; it will reload from the store");
        self.loaded = false;
        self.loading = false;
        self.awaiting_recover = false;
        self.recovering = false;
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
            meta_store_status: match self.params.store.health() {
                Ok(()) => "ok".to_string(),
                Err(why) => why,
            },
            zookeeper_hosts: self.params.zookeeper_hosts.clone(),
            zookeeper_root: self.layout.root().to_string(),
            meta_function_level: self.effective_level().0.pegasus_name().to_string(),
            balance_operation_count: self.balance_operation_count,
            moves_in_progress: self.moves.len() as u32,
            adding_secondaries: self.adding.len() as u32,
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
    type Result = ResponseFuture<WireResult<MetaLevel>>;

    /// Persists the level first (even out of blind: that is how blind is left), then applies it.
    fn handle(
        &mut self,
        aerie_rpc::Inbound(req): aerie_rpc::Inbound<SetMetaLevel>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if let Err(e) = self.check_loaded() {
            return Box::pin(async move { Err(e) });
        }
        let level = req.level;
        let ops = vec![self.layout.set_level_op(level)];
        let applied = self.persist_then(ctx, ops, move |act, ctx| {
            let old = std::mem::replace(&mut act.stored_level, level);
            info!(from = %old, to = %level, "meta level set");
            act.announce_level();
            act.schedule_cure(ctx);
            act.balancer.do_send(KickBalancer);
            old
        });
        Box::pin(async move {
            applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))?
        })
    }
}
