//! `ReplicaStub`: one per replica server. It opens the node's replicas at start-up, beacons the meta,
//! pulls its configuration (`ConfigSync`) and applies what the meta pushes (`ConfigUpdate`): creating,
//! reconfiguring and setting aside replicas. Client and replication requests bypass the stub: the
//! `Router` hands them straight to the partition's `Replica` actor.
//!
//! Changes to the set of replicas run with the stub's mailbox held (`AtomicResponse`, `ctx.wait`), so
//! two configuration messages can never race to create the same replica.

use super::actor::{Replica, ReplicaOptions};
use super::messages::{Close, GetInfo, UpdateConfig};
use super::storage::{
    create_replica, list_replica_dirs, open_replica, replica_dir, set_aside, OpenedReplica, ReplicaManifest,
};
use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use aerie_common::{AppId, Clock, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::meta::{AppInfo, AppStatus, Beacon, ConfigSync, ConfigSyncResponse, PartitionConfig, ReplicaReport};
use aerie_proto::replica::{
    ClientRead, ClientWrite, ConfigUpdate, GroupCheck, Prepare, QueryReplicas, ReplicaChecksum, ReplicaInfo,
};
use aerie_rpc::{Endpoint, Inbound, Network, RemoteFailure};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::{error, info, warn};

pub struct ReplicaStubParams {
    pub me: NodeAddr,
    pub metas: Vec<NodeAddr>,
    pub data_dirs: Vec<PathBuf>,
    pub network: Network,
    pub options: Arc<ReplicaOptions>,
    /// Threads that run `Replica` actors, shared by every replica server of the process.
    pub arbiters: Vec<ArbiterHandle>,
    pub beacon_interval: Duration,
    pub config_sync_interval: Duration,
    pub rpc_timeout: Duration,
    pub clock: Arc<dyn Clock>,
    /// When the meta last acknowledged a beacon (clock milliseconds; read by `/health`).
    pub last_beacon_ack_ms: Arc<AtomicU64>,
}

/// Partition → replica actor, read by the RPC handlers without going through the stub.
#[derive(Clone, Default)]
pub struct Router(Arc<RwLock<HashMap<Gpid, Addr<Replica>>>>);

impl Router {
    pub fn get(&self, gpid: Gpid) -> Option<Addr<Replica>> {
        self.0.read().expect("router").get(&gpid).cloned()
    }
    fn insert(&self, gpid: Gpid, addr: Addr<Replica>) {
        self.0.write().expect("router").insert(gpid, addr);
    }
    fn remove(&self, gpid: Gpid) {
        self.0.write().expect("router").remove(&gpid);
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
    next_arbiter: usize,
    meta_index: usize,
    syncing: bool,
}

/// Close every replica (log synced, memtables flushed) and stop.
pub struct Shutdown;

impl Message for Shutdown {
    type Result = ();
}

/// How soon a failed config sync is tried again.
const SYNC_RETRY: Duration = Duration::from_secs(1);

fn mailbox_error(e: MailboxError) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_STATE, format!("replica actor unavailable: {e}"))
}

impl ReplicaStub {
    pub fn new(params: ReplicaStubParams) -> Self {
        ReplicaStub {
            params,
            router: Router::default(),
            replicas: HashMap::new(),
            next_arbiter: 0,
            meta_index: 0,
            syncing: false,
        }
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
        endpoint.handle_actor::<ConfigUpdate, _>(stub.clone());
        endpoint.handle_actor::<QueryReplicas, _>(stub);
        endpoint
    }

    fn meta(&self) -> NodeAddr {
        self.params.metas[self.meta_index % self.params.metas.len()]
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

    /// Makes this node serve `config` (creating the replica if needed) and answers once it does.
    fn serve_partition(&mut self, app: AppInfo, config: PartitionConfig) -> LocalBoxActorFuture<Self, WireResult<()>> {
        let gpid = config.gpid;
        if let Some(local) = self.replicas.get(&gpid) {
            let addr = local.addr.clone();
            return async move {
                addr.send(UpdateConfig { app, config })
                    .await
                    .unwrap_or_else(|e| Err(mailbox_error(e)))
            }
            .into_actor(self)
            .boxed_local();
        }
        if !config.is_member(self.params.me) {
            return fut::ready(Ok(())).boxed_local();
        }
        let data_dir = self.choose_data_dir(gpid.app_id);
        let dir = replica_dir(&self.params.data_dirs[data_dir], gpid);
        let manifest = ReplicaManifest {
            gpid,
            app: app.clone(),
            ballot: config.ballot,
        };
        let options = self.params.options.clone();
        let open = tokio::task::spawn_blocking(move || {
            if dir.join("manifest.json").exists() {
                open_replica(&dir, &options.engine_options, options.log_options)
            } else {
                create_replica(&dir, &manifest, &options.engine_options, options.log_options)
            }
        });
        open.into_actor(self)
            .then(move |opened, act, _| match opened {
                Ok(Ok(opened)) => {
                    info!(%gpid, node = %act.params.me, "replica created");
                    let addr = act.start_replica(opened, data_dir);
                    async move {
                        addr.send(UpdateConfig { app, config })
                            .await
                            .unwrap_or_else(|e| Err(mailbox_error(e)))
                    }
                    .into_actor(act)
                    .boxed_local()
                }
                Ok(Err(e)) => fut::ready(Err(WireError::new(
                    ErrorCode::ERR_STORAGE,
                    format!("cannot create replica {gpid}: {e}"),
                )))
                .boxed_local(),
                Err(e) => fut::ready(Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string()))).boxed_local(),
            })
            .boxed_local()
    }

    /// Closes a replica and moves its directory aside.
    fn drop_replica(&mut self, gpid: Gpid) -> LocalBoxActorFuture<Self, WireResult<()>> {
        let Some(local) = self.replicas.remove(&gpid) else {
            return fut::ready(Ok(())).boxed_local();
        };
        self.router.remove(gpid);
        let LocalReplica { addr, dir, .. } = local;
        async move {
            let _ = addr.send(Close).await;
            match tokio::task::spawn_blocking(move || set_aside(&dir)).await {
                Ok(Ok(moved)) => {
                    info!(%gpid, to = %moved.display(), "replica of a dropped table set aside");
                    Ok(())
                }
                Ok(Err(e)) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
                Err(e) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
            }
        }
        .into_actor(self)
        .boxed_local()
    }

    fn send_beacon(&mut self, ctx: &mut Context<Self>) {
        let (network, meta, me) = (self.params.network.clone(), self.meta(), self.params.me);
        let timeout = self.params.beacon_interval.max(Duration::from_millis(500));
        let call = async move { network.call(meta, Beacon { node: me }, timeout).await };
        ctx.spawn(call.into_actor(self).map(move |answer, act, _| match answer {
            Ok(Ok(ack)) => {
                act.params
                    .last_beacon_ack_ms
                    .store(act.params.clock.now_ms().max(1), Ordering::Release);
                if let (false, Some(leader)) = (ack.is_leader, ack.leader) {
                    if let Some(i) = act.params.metas.iter().position(|m| *m == leader) {
                        act.meta_index = i;
                    }
                }
            }
            Ok(Err(e)) => warn!(%meta, error = %e, "beacon refused"),
            Err(e) => {
                warn!(%meta, error = %e, "beacon failed; trying the next meta server");
                act.meta_index += 1;
            }
        }));
    }

    fn sync_config(&mut self, ctx: &mut Context<Self>) {
        if self.syncing {
            return;
        }
        self.syncing = true;
        let infos: Vec<_> = self.replicas.values().map(|r| r.addr.send(GetInfo)).collect();
        let (network, meta, me, timeout) = (
            self.params.network.clone(),
            self.meta(),
            self.params.me,
            self.params.rpc_timeout,
        );
        let call = async move {
            let replicas = futures::future::join_all(infos)
                .await
                .into_iter()
                .filter_map(Result::ok)
                .map(|info| ReplicaReport {
                    gpid: info.gpid,
                    ballot: info.ballot,
                    last_committed_decree: info.last_committed,
                })
                .collect();
            network.call(meta, ConfigSync { node: me, replicas }, timeout).await
        };
        ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
            let error = match answer {
                Ok(Ok(response)) => return act.apply_sync(response, ctx),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            act.syncing = false;
            // Replicas wait inactive for the meta's view: try again soon, not a whole interval later.
            warn!(%meta, %error, "config sync failed; retrying in {SYNC_RETRY:?}");
            ctx.run_later(SYNC_RETRY, |act, ctx| act.sync_config(ctx));
        }));
    }

    fn apply_sync(&mut self, response: ConfigSyncResponse, ctx: &mut Context<Self>) {
        let dropped: Vec<Gpid> = self
            .replicas
            .keys()
            .filter(|g| response.dropped_apps.contains(&g.app_id))
            .copied()
            .collect();
        let mut chain: LocalBoxActorFuture<Self, Vec<WireResult<()>>> = fut::ready(Vec::new()).boxed_local();
        for gpid in dropped {
            chain = chain
                .then(move |mut done, act: &mut Self, _| {
                    act.drop_replica(gpid).map(move |r, _, _| {
                        done.push(r);
                        done
                    })
                })
                .boxed_local();
        }
        for (app, config) in response.partitions {
            chain = chain
                .then(move |mut done, act: &mut Self, _| {
                    act.serve_partition(app, config).map(move |r, _, _| {
                        done.push(r);
                        done
                    })
                })
                .boxed_local();
        }
        ctx.wait(chain.map(|results, act, _| {
            act.syncing = false;
            for err in results.into_iter().filter_map(Result::err) {
                warn!(node = %act.params.me, error = %err, "applying a synced configuration failed");
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
        let replica = router.get(gpid);
        async move {
            match replica {
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
            for (index, data_dir) in data_dirs.iter().enumerate() {
                let found = match list_replica_dirs(data_dir) {
                    Ok(found) => found,
                    Err(e) => {
                        error!(node = %me, dir = %data_dir.display(), error = %e, "cannot list replicas");
                        continue;
                    }
                };
                for (gpid, dir) in found {
                    match open_replica(&dir, &options.engine_options, options.log_options) {
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
                        Err(e) => {
                            error!(node = %me, %gpid, error = %e, "cannot open replica; it stays out of service")
                        }
                    }
                }
            }
            opened
        });
        ctx.wait(open_all.into_actor(self).map(|opened, act, ctx| {
            for (replica, data_dir) in opened.unwrap_or_default() {
                act.start_replica(replica, data_dir);
            }
            info!(node = %act.params.me, replicas = act.replicas.len(), "replica server ready");
            act.send_beacon(ctx);
            act.sync_config(ctx);
            ctx.run_interval(act.params.beacon_interval, |act, ctx| act.send_beacon(ctx));
            ctx.run_interval(act.params.config_sync_interval, |act, ctx| act.sync_config(ctx));
        }));
    }
}

impl Handler<Inbound<ConfigUpdate>> for ReplicaStub {
    type Result = AtomicResponse<Self, WireResult<()>>;

    fn handle(&mut self, Inbound(update): Inbound<ConfigUpdate>, _: &mut Self::Context) -> Self::Result {
        let work = if update.app.status == AppStatus::Dropped {
            self.drop_replica(update.config.gpid)
        } else {
            self.serve_partition(update.app, update.config)
        };
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
