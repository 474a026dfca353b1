//! `ReplicaStub`: one per replica server. It opens the node's replicas at start-up, beacons the meta
//! to hold its lease, pulls its configuration (`ConfigSync`) and applies what the meta pushes
//! (`ConfigUpdate`): creating, reconfiguring and setting aside replicas. Client and replication
//! requests bypass the stub: the `Router` hands them straight to the partition's `Replica` actor.
//!
//! The lease (see `crate::lease`) is kept by the `LeaseKeeper`, an actor of its own: while beacons
//! are acknowledged the server may serve; every replica checks the lease on each request, and when
//! it runs out every replica goes inactive, before the meta's grace period ends and it hands the
//! partitions to others. When the lease is granted again (or the meta names a new incarnation of
//! this server) the stub syncs with the meta, which says what to serve. A configuration made for
//! another incarnation (before the meta declared this server dead) is refused.
//!
//! A replica that cannot be opened is reported to the meta in every sync (`broken`), so that the
//! cure replaces it instead of sending clients to a replica that is not there.
//!
//! Changes to the set of replicas run with the stub's mailbox held (`AtomicResponse`, `ctx.wait`), so
//! two configuration messages can never race to create the same replica.

use super::actor::{Replica, ReplicaOptions};
use super::engine_export::EngineExport;
use super::learner::BeginLearning;
use super::lease_keeper::{LeaseGranted, LeaseKeeper, LeaseLost};
use super::messages::{Close, GetEngineStats, GetInfo, LeaseExpired, UpdateConfig};
use super::node_log::NodeLog;
use super::storage::{
    create_replica, list_replica_dirs, open_replica, replica_dir, restore_set_aside, set_aside, OpenedReplica,
    ReplicaManifest,
};
use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use aerie_common::{AppId, Ballot, Clock, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::learn::{FetchCheckpointChunk, LearnCompleted, LearnRequest, StartLearning};
use aerie_proto::meta::{AppInfo, AppStatus, ConfigSync, ConfigSyncResponse, PartitionConfig, ReplicaReport};
use aerie_proto::replica::{
    AddLearner, ClientRead, ClientWrite, ConfigUpdate, GroupCheck, Prepare, QueryReplicas, ReplicaChecksum, ReplicaInfo,
};
use aerie_rpc::{Endpoint, Inbound, Network, RemoteFailure};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::{error, info, warn};

pub struct ReplicaStubParams {
    pub me: NodeAddr,
    pub data_dirs: Vec<PathBuf>,
    pub network: Network,
    pub options: Arc<ReplicaOptions>,
    /// Threads that run `Replica` actors, shared by every replica server of the process.
    pub arbiters: Vec<ArbiterHandle>,
    pub beacon_interval: Duration,
    pub lease: Duration,
    pub config_sync_interval: Duration,
    pub rpc_timeout: Duration,
    pub clock: Arc<dyn Clock>,
    /// When the meta last acknowledged a beacon (clock milliseconds; read by `/health`).
    pub last_beacon_ack_ms: Arc<AtomicU64>,
}

/// Partition → replica actor, read by the RPC handlers without going through the stub. Until the
/// server has opened the replicas it found on disk, a request for an unknown partition waits for
/// that (within its deadline) instead of being told "not here": a restarting server is not a
/// server without the replica.
#[derive(Clone)]
pub struct Router {
    replicas: Arc<RwLock<HashMap<Gpid, Addr<Replica>>>>,
    opened: tokio::sync::watch::Receiver<bool>,
    mark_opened: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Router {
    fn default() -> Self {
        let (mark_opened, opened) = tokio::sync::watch::channel(false);
        Router {
            replicas: Arc::default(),
            opened,
            mark_opened: Arc::new(mark_opened),
        }
    }
}

impl Router {
    pub fn get(&self, gpid: Gpid) -> Option<Addr<Replica>> {
        self.replicas.read().expect("router").get(&gpid).cloned()
    }

    /// The replica of `gpid`, waiting first for the start-up opening if it is still going on.
    async fn find(&self, gpid: Gpid) -> Option<Addr<Replica>> {
        if let Some(addr) = self.get(gpid) {
            return Some(addr);
        }
        let mut opened = self.opened.clone();
        let _ = opened.wait_for(|done| *done).await;
        self.get(gpid)
    }

    fn insert(&self, gpid: Gpid, addr: Addr<Replica>) {
        self.replicas.write().expect("router").insert(gpid, addr);
    }

    fn remove(&self, gpid: Gpid) {
        self.replicas.write().expect("router").remove(&gpid);
    }

    fn mark_opened(&self) {
        let _ = self.mark_opened.send(true);
    }
}

struct LocalReplica {
    addr: Addr<Replica>,
    dir: PathBuf,
    data_dir: usize,
}

pub struct ReplicaStub {
    params: ReplicaStubParams,
    router: Router,
    replicas: HashMap<Gpid, LocalReplica>,
    /// Replicas found on disk that could not be opened, with the reason: reported to the meta.
    failed: HashMap<Gpid, String>,
    /// Replicas closed by `replica.kill_partition`: not opened again until the server restarts.
    held_closed: BTreeSet<Gpid>,
    next_arbiter: usize,
    /// Whether the lease holds, as the lease keeper last said.
    lease_held: bool,
    /// The meta's incarnation of this server that the lease belongs to.
    incarnation: u64,
    syncing: bool,
    /// A sync is wanted as soon as the one under way ends.
    sync_again: bool,
    /// Per data dir, its group-commit stream (or why it could not be opened).
    node_logs: Vec<Result<Arc<NodeLog>, String>>,
    engine_export: Rc<RefCell<EngineExport>>,
}

/// Close every replica (log synced, memtables flushed) and stop.
pub struct Shutdown;

impl Message for Shutdown {
    type Result = ();
}

/// How often RocksDB's figures and disk space are exported.
const ENGINE_EXPORT_INTERVAL: Duration = Duration::from_secs(5);

/// How soon a failed config sync is tried again.
const SYNC_RETRY: Duration = Duration::from_secs(1);

fn mailbox_error(e: MailboxError) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_STATE, format!("replica actor unavailable: {e}"))
}

impl ReplicaStub {
    pub fn new(params: ReplicaStubParams) -> Self {
        crate::metrics::register_replica_series(&params.me.to_string());
        let engine_export = EngineExport::new(params.me.to_string(), params.data_dirs.clone());
        ReplicaStub {
            engine_export: Rc::new(RefCell::new(engine_export)),
            params,
            router: Router::default(),
            replicas: HashMap::new(),
            failed: HashMap::new(),
            held_closed: BTreeSet::new(),
            next_arbiter: 0,
            lease_held: false,
            incarnation: 0,
            syncing: false,
            sync_again: false,
            node_logs: Vec::new(),
        }
    }

    /// Asks every replica for its RocksDB figures and exports them with the data dirs' disk space.
    fn export_engine_stats(&self) {
        let asks: Vec<_> = self.replicas.values().map(|r| r.addr.send(GetEngineStats)).collect();
        let export = self.engine_export.clone();
        let cache_usage = self.params.options.engine_options.block_cache.get_usage();
        actix::spawn(async move {
            let stats: Vec<_> = futures::future::join_all(asks)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            export.borrow_mut().export(&stats, cache_usage);
        });
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The RPC endpoint of a replica server.
    pub fn endpoint(me: NodeAddr, stub: Addr<ReplicaStub>, router: Router) -> Endpoint {
        let mut endpoint = Endpoint::new(me);
        route::<ClientWrite>(&mut endpoint, &router, |r| r.gpid);
        route::<ClientRead>(&mut endpoint, &router, |r| r.gpid);
        route::<Prepare>(&mut endpoint, &router, |r| r.mutation.gpid);
        route::<GroupCheck>(&mut endpoint, &router, |r| r.gpid);
        route::<ReplicaChecksum>(&mut endpoint, &router, |r| r.gpid);
        route::<AddLearner>(&mut endpoint, &router, |r| r.gpid);
        route::<LearnRequest>(&mut endpoint, &router, |r| r.gpid);
        route::<FetchCheckpointChunk>(&mut endpoint, &router, |r| r.gpid);
        route::<LearnCompleted>(&mut endpoint, &router, |r| r.gpid);
        endpoint.handle_actor::<StartLearning, _>(stub.clone());
        endpoint.handle_actor::<ConfigUpdate, _>(stub.clone());
        endpoint.handle_actor::<QueryReplicas, _>(stub);
        endpoint
    }

    pub(super) fn me(&self) -> NodeAddr {
        self.params.me
    }

    pub(super) fn replica_gpids(&self) -> Vec<Gpid> {
        self.replicas.keys().copied().collect()
    }

    pub(super) fn replica_addrs(&self) -> Vec<Addr<Replica>> {
        self.replicas.values().map(|r| r.addr.clone()).collect()
    }

    pub(super) fn replica_addr(&self, gpid: Gpid) -> Option<Addr<Replica>> {
        self.replicas.get(&gpid).map(|r| r.addr.clone())
    }

    /// Closes a replica for good (until the server restarts): returns its actor to close.
    pub(super) fn hold_closed(&mut self, gpid: Gpid) -> Option<Addr<Replica>> {
        self.held_closed.insert(gpid);
        self.forget_replica(gpid)
    }

    /// Stops routing to a replica and forgets it (its files stay); returns its actor to close.
    pub(super) fn forget_replica(&mut self, gpid: Gpid) -> Option<Addr<Replica>> {
        self.router.remove(gpid);
        self.replicas.remove(&gpid).map(|r| r.addr)
    }

    fn start_replica(&mut self, opened: OpenedReplica, data_dir: usize) -> Addr<Replica> {
        let gpid = opened.manifest.gpid;
        let dir = opened.dir.clone();
        let (me, network, options) = (self.params.me, self.params.network.clone(), self.params.options.clone());
        let arbiter = &self.params.arbiters[self.next_arbiter % self.params.arbiters.len()];
        self.next_arbiter += 1;
        let addr = Replica::start_in_arbiter(arbiter, move |_| Replica::new(opened, me, network, options));
        self.router.insert(gpid, addr.clone());
        self.replicas.insert(
            gpid,
            LocalReplica {
                addr: addr.clone(),
                dir,
                data_dir,
            },
        );
        addr
    }

    /// Replicas on each data dir, in the configured order.
    pub(super) fn replicas_per_data_dir(&self) -> Vec<usize> {
        let mut counts = vec![0; self.params.data_dirs.len()];
        for local in self.replicas.values() {
            counts[local.data_dir] += 1;
        }
        counts
    }

    /// The data dir for a new replica: fewest replicas of its table, then fewest in total.
    fn choose_data_dir(&self, app_id: AppId) -> usize {
        (0..self.params.data_dirs.len())
            .min_by_key(|i| {
                let on_dir = self.replicas.iter().filter(|(_, r)| r.data_dir == *i);
                let of_table = on_dir.clone().filter(|(g, _)| g.app_id == app_id).count();
                (of_table, on_dir.count(), *i)
            })
            .unwrap_or(0)
    }

    /// The replica of `gpid`, opened from disk or created empty if this node has none.
    fn ensure_replica(
        &mut self,
        app: AppInfo,
        gpid: Gpid,
        ballot: Ballot,
    ) -> LocalBoxActorFuture<Self, WireResult<Addr<Replica>>> {
        if let Some(local) = self.replicas.get(&gpid) {
            return fut::ready(Ok(local.addr.clone())).boxed_local();
        }
        if self.held_closed.contains(&gpid) {
            let error =
                format!("{gpid} was closed by replica.kill_partition; it opens again when this server restarts");
            return fut::ready(Err(WireError::new(ErrorCode::ERR_INVALID_STATE, error))).boxed_local();
        }
        let data_dirs = self.params.data_dirs.clone();
        let data_dir = self.choose_data_dir(gpid.app_id);
        let dir = replica_dir(&self.params.data_dirs[data_dir], gpid);
        let manifest = ReplicaManifest {
            gpid,
            app,
            ballot,
            data_dir: super::storage::default_data_dir(),
            learning: false,
        };
        // A member of a configuration with no replica here: a recalled table's replica was set
        // aside when the table was dropped; it comes back rather than an empty one.
        let (data_dir, dir) = match restore_set_aside(&data_dirs, gpid) {
            Ok(Some((index, restored))) => {
                info!(%gpid, dir = %restored.display(), "set-aside replica restored");
                (index, restored)
            }
            Ok(None) => (data_dir, dir),
            Err(e) => {
                let error = format!("cannot look for a set-aside copy of {gpid}: {e}");
                return fut::ready(Err(WireError::new(ErrorCode::ERR_STORAGE, error))).boxed_local();
            }
        };
        let options = self.params.options.clone();
        let node_log = match self.node_logs.get(data_dir) {
            Some(Ok(node_log)) => node_log.clone(),
            Some(Err(e)) => {
                let error = format!("cannot create replica {gpid}: {e}");
                return fut::ready(Err(WireError::new(ErrorCode::ERR_STORAGE, error))).boxed_local();
            }
            None => {
                let error = format!("cannot create replica {gpid}: the replica server is still opening its disks");
                return fut::ready(Err(WireError::new(ErrorCode::ERR_STORAGE, error))).boxed_local();
            }
        };
        let open = tokio::task::spawn_blocking(move || {
            if dir.join("manifest.json").exists() {
                open_replica(&dir, &options.engine_options, options.log_options, &node_log)
            } else {
                create_replica(&dir, &manifest, &options.engine_options, options.log_options, &node_log)
            }
        });
        open.into_actor(self)
            .map(move |opened, act, ctx| {
                let error = match opened {
                    Ok(Ok(opened)) => {
                        info!(%gpid, node = %act.params.me, "replica created");
                        act.failed.remove(&gpid);
                        return Ok(act.start_replica(opened, data_dir));
                    }
                    Ok(Err(e)) => format!("cannot open replica {gpid}: {e}"),
                    Err(e) => format!("cannot open replica {gpid}: {e}"),
                };
                error!(node = %act.params.me, %gpid, %error, "replica out of service; the meta is told");
                act.failed.insert(gpid, error.clone());
                act.sync_now(ctx);
                Err(WireError::new(ErrorCode::ERR_STORAGE, error))
            })
            .boxed_local()
    }

    /// Makes this node serve `config` (creating the replica if needed) and answers once it does.
    /// `incarnation`: the meta incarnation of this server the configuration was made for.
    fn serve_partition(
        &mut self,
        app: AppInfo,
        config: PartitionConfig,
        incarnation: u64,
    ) -> LocalBoxActorFuture<Self, WireResult<()>> {
        if !self.replicas.contains_key(&config.gpid) && !config.is_member(self.params.me) {
            return fut::ready(Ok(())).boxed_local();
        }
        self.ensure_replica(app.clone(), config.gpid, config.ballot)
            .then(move |replica, act, _| {
                async move {
                    match replica {
                        Ok(addr) => addr
                            .send(UpdateConfig {
                                app,
                                config,
                                incarnation: Some(incarnation),
                            })
                            .await
                            .unwrap_or_else(|e| Err(mailbox_error(e))),
                        Err(e) => Err(e),
                    }
                }
                .into_actor(act)
            })
            .boxed_local()
    }

    /// Closes a replica and moves its directory aside.
    fn drop_replica(&mut self, gpid: Gpid, why: &'static str) -> LocalBoxActorFuture<Self, WireResult<()>> {
        let Some(local) = self.replicas.remove(&gpid) else {
            return fut::ready(Ok(())).boxed_local();
        };
        self.router.remove(gpid);
        let LocalReplica { addr, dir, .. } = local;
        async move {
            let _ = addr.send(Close).await;
            match tokio::task::spawn_blocking(move || set_aside(&dir)).await {
                Ok(Ok(moved)) => {
                    info!(%gpid, to = %moved.display(), why, "replica set aside");
                    Ok(())
                }
                Ok(Err(e)) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
                Err(e) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
            }
        }
        .into_actor(self)
        .boxed_local()
    }

    /// Syncs with the meta now (if the lease holds), or as soon as the sync under way ends.
    pub(super) fn sync_now(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            self.sync_again = true;
        }
        self.sync_config(ctx);
    }

    fn sync_config(&mut self, ctx: &mut Context<Self>) {
        if self.syncing || !self.lease_held {
            return;
        }
        self.syncing = true;
        self.sync_again = false;
        let incarnation = self.incarnation;
        let infos: Vec<_> = self.replicas.values().map(|r| r.addr.send(GetInfo)).collect();
        let failed: Vec<ReplicaReport> = self
            .failed
            .iter()
            .filter(|(gpid, _)| !self.replicas.contains_key(gpid))
            .map(|(gpid, reason)| ReplicaReport {
                gpid: *gpid,
                ballot: 0,
                last_committed_decree: 0,
                last_prepared_decree: 0,
                data_bytes: 0,
                broken: Some(reason.clone()),
            })
            .collect();
        let meta = self.params.options.meta.clone();
        let (network, me, timeout) = (self.params.network.clone(), self.params.me, self.params.rpc_timeout);
        let call = async move {
            let mut replicas: Vec<ReplicaReport> = futures::future::join_all(infos)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .map(|info| ReplicaReport {
                    gpid: info.gpid,
                    ballot: info.ballot,
                    last_committed_decree: info.last_committed,
                    last_prepared_decree: info.last_prepared,
                    data_bytes: info.data_bytes,
                    broken: info.broken,
                })
                .collect();
            replicas.extend(failed);
            meta.call(&network, ConfigSync { node: me, replicas }, timeout).await
        };
        ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
            let error = match answer {
                // Made for this incarnation, which is still the current one: authoritative.
                Ok(Ok(response)) if response.incarnation == incarnation && act.incarnation == incarnation => {
                    return act.apply_sync(response, ctx)
                }
                Ok(Ok(response)) => format!(
                    "the meta answered for incarnation {} while this server's lease is for {}",
                    response.incarnation, act.incarnation
                ),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            act.syncing = false;
            // Replicas wait inactive for the meta's view: try again soon, not a whole interval later.
            warn!(%error, "config sync failed; retrying in {SYNC_RETRY:?}");
            ctx.run_later(SYNC_RETRY, |act, ctx| act.sync_config(ctx));
        }));
    }

    fn apply_sync(&mut self, response: ConfigSyncResponse, ctx: &mut Context<Self>) {
        let mut drops: Vec<(Gpid, &'static str)> = self
            .replicas
            .keys()
            .filter(|g| response.dropped_apps.contains(&g.app_id))
            .map(|g| (*g, "its table was dropped"))
            .collect();
        drops.extend(
            response
                .gc_replicas
                .iter()
                .filter(|g| self.replicas.contains_key(g))
                .map(|g| (*g, "its partition is fully healthy without it")),
        );
        let mut chain: LocalBoxActorFuture<Self, Vec<WireResult<()>>> = fut::ready(Vec::new()).boxed_local();
        for (gpid, why) in drops {
            chain = chain
                .then(move |mut done, act: &mut Self, _| {
                    act.drop_replica(gpid, why).map(move |r, _, _| {
                        done.push(r);
                        done
                    })
                })
                .boxed_local();
        }
        let incarnation = response.incarnation;
        for (app, config) in response.partitions {
            chain = chain
                .then(move |mut done, act: &mut Self, _| {
                    act.serve_partition(app, config, incarnation).map(move |r, _, _| {
                        done.push(r);
                        done
                    })
                })
                .boxed_local();
        }
        ctx.wait(chain.map(|results, act, ctx| {
            act.syncing = false;
            for err in results.into_iter().filter_map(Result::err) {
                warn!(node = %act.params.me, error = %err, "applying a synced configuration failed");
            }
            if act.sync_again {
                act.sync_config(ctx);
            }
        }));
    }
}

/// A response type that can carry an error answer.
trait ErrorAnswer {
    fn from_error(error: WireError) -> Self;
}

impl<T> ErrorAnswer for WireResult<T> {
    fn from_error(error: WireError) -> Self {
        Err(error)
    }
}

/// Registers a request type that goes straight to the replica of its partition.
fn route<M>(endpoint: &mut Endpoint, router: &Router, gpid_of: fn(&M) -> Gpid)
where
    M: aerie_proto::Rpc,
    M::Response: ErrorAnswer,
    Replica: Handler<Inbound<M>>,
{
    let router = router.clone();
    endpoint.handle_fallible::<M, _, _>(move |req| {
        let gpid = gpid_of(&req);
        let router = router.clone();
        async move {
            match router.find(gpid).await {
                Some(addr) => addr
                    .send(Inbound(req))
                    .await
                    .map_err(|e| RemoteFailure::Unavailable(format!("replica {gpid}: {e}"))),
                None => Ok(M::Response::from_error(WireError::new(
                    ErrorCode::ERR_OBJECT_NOT_FOUND,
                    format!("replica {gpid} is not on this node"),
                ))),
            }
        }
    });
}

impl Actor for ReplicaStub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let data_dirs = self.params.data_dirs.clone();
        let options = self.params.options.clone();
        let me = self.params.me;
        let open_all = tokio::task::spawn_blocking(move || {
            let mut opened = Vec::new();
            let mut failures = Vec::new();
            let mut node_logs = Vec::new();
            for (index, data_dir) in data_dirs.iter().enumerate() {
                let node_log = NodeLog::open(data_dir, options.log_options, me.to_string())
                    .map_err(|e| format!("cannot open the shared log of {}: {e}", data_dir.display()));
                node_logs.push(node_log.clone());
                let found = match list_replica_dirs(data_dir) {
                    Ok(found) => found,
                    Err(e) => {
                        error!(node = %me, dir = %data_dir.display(), error = %e, "cannot list replicas");
                        continue;
                    }
                };
                let node_log = match node_log {
                    Ok(node_log) => node_log,
                    Err(e) => {
                        error!(node = %me, dir = %data_dir.display(), error = %e, "no replica of this data dir can open");
                        failures.extend(found.into_iter().map(|(gpid, _)| (gpid, e.clone())));
                        continue;
                    }
                };
                node_log.forget_except(&found.iter().map(|(gpid, _)| *gpid).collect());
                for (gpid, dir) in found {
                    match open_replica(&dir, &options.engine_options, options.log_options, &node_log) {
                        Err(e) => {
                            error!(node = %me, %gpid, error = %e, "cannot open replica; it stays out of service and the meta is told");
                            failures.push((gpid, format!("cannot open replica {gpid}: {e}")));
                        }
                        Ok(replica) => {
                            info!(
                                node = %me, %gpid,
                                committed = replica.last_committed,
                                replayed = replica.replayed,
                                uncommitted = replica.uncommitted.len(),
                                truncated_bytes = replica.truncated_bytes,
                                "replica opened"
                            );
                            opened.push((replica, index));
                        }
                    }
                }
            }
            (opened, failures, node_logs)
        });
        ctx.wait(open_all.into_actor(self).map(|opened, act, ctx| {
            let (opened, failures, node_logs) = opened.unwrap_or_default();
            act.node_logs = node_logs;
            for (replica, data_dir) in opened {
                act.start_replica(replica, data_dir);
            }
            act.failed.extend(failures);
            act.router.mark_opened();
            info!(node = %act.params.me, replicas = act.replicas.len(), failed = act.failed.len(), "replica server ready; waiting for a lease");
            let p = &act.params;
            LeaseKeeper::new(
                p.me,
                p.options.meta.clone(),
                p.network.clone(),
                p.clock.clone(),
                p.beacon_interval,
                p.lease,
                p.options.lease.clone(),
                ctx.address().recipient(),
                ctx.address().recipient(),
                p.last_beacon_ack_ms.clone(),
            )
            .start();
            ctx.run_interval(act.params.config_sync_interval, |act, ctx| act.sync_config(ctx));
            act.export_engine_stats();
            ctx.run_interval(ENGINE_EXPORT_INTERVAL, |act, _| act.export_engine_stats());
            let sync_soon = act.params.options.sync_soon.clone();
            let me = ctx.address();
            actix::spawn(async move {
                loop {
                    sync_soon.notified().await;
                    if me.send(SyncSoon).await.is_err() {
                        return;
                    }
                }
            });
        }));
    }
}

impl Handler<Inbound<ConfigUpdate>> for ReplicaStub {
    type Result = AtomicResponse<Self, WireResult<()>>;

    fn handle(&mut self, Inbound(update): Inbound<ConfigUpdate>, _: &mut Self::Context) -> Self::Result {
        let work = if update.app.status == AppStatus::Dropped {
            self.drop_replica(update.config.gpid, "its table was dropped")
        } else if !self.lease_held {
            fut::ready(Err(WireError::new(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "{} holds no lease; it serves nothing until its beacons are acknowledged",
                    self.params.me
                ),
            )))
            .boxed_local()
        } else if update.incarnation != self.incarnation {
            fut::ready(Err(WireError::new(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "configuration of {} made for incarnation {} of {}, which is now {}: ignored",
                    update.config.gpid, update.incarnation, self.params.me, self.incarnation
                ),
            )))
            .boxed_local()
        } else {
            self.serve_partition(update.app, update.config, update.incarnation)
        };
        AtomicResponse::new(work)
    }
}

impl Handler<LeaseGranted> for ReplicaStub {
    type Result = ();

    fn handle(&mut self, granted: LeaseGranted, ctx: &mut Self::Context) {
        self.lease_held = true;
        self.incarnation = granted.incarnation;
        self.sync_now(ctx);
    }
}

impl Handler<LeaseLost> for ReplicaStub {
    type Result = ();

    fn handle(&mut self, _: LeaseLost, _: &mut Self::Context) {
        self.lease_held = false;
        for local in self.replicas.values() {
            local.addr.do_send(LeaseExpired);
        }
    }
}

/// A replica's storage failed: tell the meta soon.
struct SyncSoon;

impl Message for SyncSoon {
    type Result = ();
}

impl Handler<SyncSoon> for ReplicaStub {
    type Result = ();

    fn handle(&mut self, _: SyncSoon, ctx: &mut Self::Context) {
        self.sync_now(ctx);
    }
}

impl Handler<Inbound<StartLearning>> for ReplicaStub {
    type Result = AtomicResponse<Self, WireResult<()>>;

    fn handle(&mut self, Inbound(start): Inbound<StartLearning>, _: &mut Self::Context) -> Self::Result {
        if !self.lease_held {
            return AtomicResponse::new(
                fut::ready(Err(WireError::new(
                    ErrorCode::ERR_INVALID_STATE,
                    format!("{} holds no lease; it cannot learn now", self.params.me),
                )))
                .boxed_local(),
            );
        }
        let StartLearning {
            app,
            gpid,
            ballot,
            primary,
        } = start;
        let work = self
            .ensure_replica(app.clone(), gpid, ballot)
            .then(move |replica, act, _| {
                async move {
                    match replica {
                        Ok(addr) => addr
                            .send(BeginLearning { app, ballot, primary })
                            .await
                            .unwrap_or_else(|e| Err(mailbox_error(e))),
                        Err(e) => Err(e),
                    }
                }
                .into_actor(act)
            })
            .boxed_local();
        AtomicResponse::new(work)
    }
}

impl Handler<Inbound<QueryReplicas>> for ReplicaStub {
    type Result = ResponseFuture<WireResult<Vec<ReplicaInfo>>>;

    fn handle(&mut self, _: Inbound<QueryReplicas>, _: &mut Self::Context) -> Self::Result {
        let infos: Vec<_> = self.replicas.values().map(|r| r.addr.send(GetInfo)).collect();
        Box::pin(async move {
            let mut infos: Vec<ReplicaInfo> = futures::future::join_all(infos)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .collect();
            infos.sort_by_key(|i| i.gpid);
            Ok(infos)
        })
    }
}

impl Handler<Shutdown> for ReplicaStub {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let closes: Vec<_> = self.replicas.values().map(|r| r.addr.send(Close)).collect();
        let me = self.params.me;
        Box::pin(
            async move {
                futures::future::join_all(closes).await;
            }
            .into_actor(self)
            .map(move |_, _, ctx| {
                info!(node = %me, "replica server stopped");
                ctx.stop();
            }),
        )
    }
}
