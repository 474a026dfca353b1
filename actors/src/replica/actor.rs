//! The `Replica` actor: one replica of one partition, a thin host of the replication core
//! (`core/`). It owns the partition's log and apply pipelines and its engine, turns requests into
//! core events, and carries out the effects the core returns (`write_path.rs`). Reads, checksums,
//! log GC and the replica's lifecycle live here; learning in `learner.rs` and `learn_primary.rs`.

use super::core::{CoreOptions, Gate, ReplicaCore, Restored, WaiterId};
use super::messages::{Close, GetEngineStats, GetInfo, LeaseExpired, UpdateConfig};
use super::pipelines::{ApplyPipeline, LogPipeline};
use super::storage::{ManifestWriter, OpenedReplica, ReplicaManifest};
use super::validate::{validate_read, Limits};
use crate::lease::SharedLease;
use crate::metrics::{REPLICA_COUNT, REPLICA_REQUESTS, REPLICA_REQUEST_SECONDS};
use actix::prelude::*;
use aerie_common::{clock::wall_secs_now, Clock, Decree, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::data::{ReadOp, ReadResult, WriteResult};
use aerie_proto::meta::{AppInfo, AppStatus};
use aerie_proto::replica::{
    ClientRead, PrepareAck, ReplicaChecksum, ReplicaChecksumResult, ReplicaInfo, ReplicaStatus,
};
use aerie_rpc::{Inbound, Network};
use aerie_storage::collect_log_garbage;
use aerie_storage::{Engine, EngineOptions, LogOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// Settings shared by every replica of a replica server.
#[derive(Clone)]
pub struct ReplicaOptions {
    pub prepare_timeout: Duration,
    pub prepare_retry_delay: Duration,
    pub group_check_delay: Duration,
    /// How often an idle primary repeats the committed point to its secondaries.
    pub group_check_interval: Duration,
    pub min_replicas_for_write: usize,
    pub max_uncommitted: usize,
    pub limits: Limits,
    pub log_gc_threshold_bytes: u64,
    pub log_gc_interval: Duration,
    pub log_options: LogOptions,
    pub engine_options: EngineOptions,
    /// The meta servers, for configuration requests.
    pub meta: super::MetaLocator,
    pub rpc_timeout: Duration,
    /// Committed mutations a replica keeps in memory for learners.
    pub learn_cache_mutations: usize,
    /// A learner this close to the primary's committed decree joins at once.
    pub learn_join_gap: Decree,
    /// Bytes of mutations per learning round.
    pub learn_batch_bytes: usize,
    /// Checkpoint bytes per second a learner fetches (0 = unlimited).
    pub learn_rate_limit_bytes: u64,
    /// The replica server's lease, checked on every read and write.
    pub lease: SharedLease,
    pub clock: Arc<dyn Clock>,
    /// Wakes the replica server to sync with the meta soon (a replica's storage failed).
    pub sync_soon: Arc<tokio::sync::Notify>,
}

/// Mutations a primary has proposed and not committed before client writes queue up and go out
/// together (see `CoreOptions`). With the log pipeline's two batches in flight, two keep the disk
/// and the secondaries busy while the next batch fills.
pub const MAX_PROPOSALS_IN_FLIGHT: usize = 2;
/// Queued writes that justify a second mutation in flight (see `CoreOptions`). Measured with
/// `scripts/bench_ab.sh` (docs/benchmarks.md): at 64 writes in flight on 8 partitions, 16 gave
/// four writes per mutation instead of two and about 20 % more writes per second.
pub const PIPELINE_MIN_WRITES: usize = 16;
/// The most key and value bytes of one batched mutation.
pub const MAX_BATCH_BYTES: usize = 1 << 20;

impl ReplicaOptions {
    pub(super) fn core_options(&self) -> CoreOptions {
        CoreOptions {
            min_replicas_for_write: self.min_replicas_for_write,
            max_uncommitted: self.max_uncommitted,
            max_proposals_in_flight: MAX_PROPOSALS_IN_FLIGHT,
            pipeline_min_writes: PIPELINE_MIN_WRITES,
            max_batch_bytes: MAX_BATCH_BYTES,
        }
    }
}

pub(super) struct WriteWaiter {
    pub tx: oneshot::Sender<WireResult<WriteResult>>,
    pub kind: &'static str,
    pub started: Instant,
    /// What the write carries, counted when it is answered.
    pub bytes: u64,
}

pub struct Replica {
    pub(super) core: ReplicaCore,
    pub(super) gpid: Gpid,
    pub(super) me: NodeAddr,
    pub(super) node_label: String,
    /// Client requests served, by kind, and their bytes (`app_stat`); since the replica opened.
    served: std::cell::RefCell<super::served::Served>,
    pub(super) app: AppInfo,
    pub(super) dir: PathBuf,
    /// The RocksDB directory in use, inside `dir`.
    pub(super) data_dir: String,
    pub(super) network: Network,
    pub(super) options: Arc<ReplicaOptions>,
    pub(super) log: LogPipeline,
    pub(super) apply: ApplyPipeline,
    pub(super) engine: Arc<Engine>,
    /// Client writes waiting for the core's answer.
    pub(super) write_waiters: HashMap<WaiterId, WriteWaiter>,
    /// Prepares waiting for the core's acknowledgement.
    pub(super) ack_waiters: HashMap<u64, oneshot::Sender<WireResult<PrepareAck>>>,
    next_token: u64,
    /// Primary: checkpoints prepared for learners.
    pub(super) checkpoints: HashMap<NodeAddr, super::learn_primary::PreparedCheckpoint>,
    /// Recently committed mutations, for learners.
    pub(super) committed_cache: std::collections::VecDeque<Arc<aerie_proto::replica::Mutation>>,
    /// Learner: the session this replica is learning in.
    pub(super) learning: Option<super::learner::LearningState>,
    /// What was learned is not durable yet (the manifest says so: see `ReplicaManifest::learning`).
    pub(super) learning_unsettled: bool,
    pub(super) manifest_writer: ManifestWriter,
    log_gc_running: bool,
}

impl Replica {
    pub fn new(opened: OpenedReplica, me: NodeAddr, network: Network, options: Arc<ReplicaOptions>) -> Self {
        let ReplicaManifest {
            gpid,
            app,
            ballot,
            data_dir,
            learning,
        } = opened.manifest;
        let core = ReplicaCore::new(
            gpid,
            me,
            options.core_options(),
            Restored {
                ballot,
                last_committed: opened.last_committed,
                last_applied: opened.last_committed,
                uncommitted: opened.uncommitted,
            },
        );
        Replica {
            core,
            gpid,
            me,
            node_label: me.to_string(),
            served: Default::default(),
            app,
            dir: opened.dir.clone(),
            data_dir,
            network,
            options,
            log: LogPipeline::new(gpid, opened.log, opened.node_log),
            apply: ApplyPipeline::new(opened.engine.clone()),
            engine: opened.engine,
            write_waiters: HashMap::new(),
            ack_waiters: HashMap::new(),
            next_token: 1,
            checkpoints: HashMap::new(),
            committed_cache: Default::default(),
            learning: None,
            learning_unsettled: learning,
            manifest_writer: ManifestWriter::new(&opened.dir),
            log_gc_running: false,
        }
    }

    pub(super) fn next_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    pub(super) fn role_label(status: ReplicaStatus) -> &'static str {
        match status {
            ReplicaStatus::Primary => "primary",
            ReplicaStatus::Secondary => "secondary",
            ReplicaStatus::Inactive => "inactive",
            ReplicaStatus::Learner => "learner",
        }
    }

    /// The lease as it stands at this moment, for the core's checks.
    pub(super) fn gate(&self) -> Gate {
        let lease = self.options.lease.get();
        Gate {
            now_ms: self.options.clock.now_ms(),
            lease_until_ms: lease.until_ms,
            incarnation: lease.incarnation,
        }
    }

    pub(super) fn record_read(&self, kind: &'static str, started: Instant, outcome: &WireResult<ReadResult>) {
        let bytes = outcome.as_ref().map_or(0, ReadResult::payload_bytes);
        self.record_request(kind, started, outcome, bytes, false);
    }

    /// Counts a write answered; `bytes` is what it carried (`WriteOp::payload_bytes`).
    pub(super) fn record_write(
        &self,
        kind: &'static str,
        started: Instant,
        outcome: &WireResult<impl Sized>,
        bytes: u64,
    ) {
        self.record_request(kind, started, outcome, bytes, true);
    }

    fn record_request(
        &self,
        kind: &'static str,
        started: Instant,
        outcome: &WireResult<impl Sized>,
        bytes: u64,
        write: bool,
    ) {
        let outcome = match outcome {
            Ok(_) => {
                self.served.borrow_mut().record(kind, bytes, write);
                "ok"
            }
            Err(e) => e.code.name(),
        };
        REPLICA_REQUESTS
            .with_label_values(&[&self.node_label, kind, outcome])
            .inc();
        REPLICA_REQUEST_SECONDS
            .with_label_values(&[&self.app.app_name, kind])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Storage failed: stop serving, and answer everything waiting.
    pub(super) fn mark_broken(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::error!(gpid = %self.gpid, %reason, "replica storage failed; the replica is out of service");
        let effects = self.core.storage_failed(reason);
        self.run(effects, ctx);
        self.options.sync_soon.notify_one();
    }

    /// The manifest as the replica stands.
    pub(super) fn manifest(&self) -> ReplicaManifest {
        ReplicaManifest {
            gpid: self.gpid,
            app: self.app.clone(),
            ballot: self.core.ballot(),
            data_dir: self.data_dir.clone(),
            learning: self.learning_unsettled,
        }
    }

    /// Writes the manifest as the replica stands, off the actor thread.
    pub(super) fn persist_manifest(&self) {
        self.manifest_writer.set(self.manifest());
        let (writer, dir) = (self.manifest_writer.clone(), self.dir.clone());
        actix::spawn(async move {
            let result = tokio::task::spawn_blocking(move || writer.flush()).await;
            match result {
                // The replica was set aside (removed from this node) meanwhile: nothing to keep.
                Ok(Err(e)) if !dir.exists() => debug!(error = %e, "replica dir gone; manifest not written"),
                Ok(Err(e)) => warn!(error = %e, "cannot persist replica manifest"),
                _ => {}
            }
        });
    }

    /// Deletes log segments that the flushed data covers, off the actor
    /// ([`collect_log_garbage`]: the applied decree is read before the flush).
    fn start_log_gc(&mut self, ctx: &mut Context<Self>) {
        if self.log_gc_running || self.core.broken().is_some() {
            return;
        }
        self.log_gc_running = true;
        let log = self.log.log();
        let engine = self.engine.clone();
        let threshold = self.options.log_gc_threshold_bytes;
        let gpid = self.gpid;
        let work = tokio::task::spawn_blocking(move || collect_log_garbage(&engine, &log, threshold));
        ctx.spawn(work.into_actor(self).map(move |result, act, _| {
            act.log_gc_running = false;
            match result {
                Ok(Ok(0)) => {}
                Ok(Ok(removed)) => {
                    info!(%gpid, removed, "removed mutation log segments covered by flushed data")
                }
                Ok(Err(e)) => warn!(%gpid, error = %e, "mutation log gc failed"),
                Err(e) => warn!(%gpid, error = %e, "mutation log gc task failed"),
            }
        }));
    }
}

impl Actor for Replica {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(self.core.role())])
            .inc();
        ctx.run_interval(self.options.log_gc_interval, |act, ctx| act.start_log_gc(ctx));
        ctx.run_interval(self.options.group_check_interval, |act, ctx| {
            let effects = act.core.group_check();
            act.run(effects, ctx);
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(self.core.role())])
            .dec();
    }
}

impl Handler<UpdateConfig> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, msg: UpdateConfig, ctx: &mut Self::Context) -> Self::Result {
        if msg.app.status == AppStatus::Dropped {
            return Err(WireError::new(
                ErrorCode::ERR_APP_DROPPED,
                format!("table {} was dropped", msg.app.app_name),
            ));
        }
        self.app = msg.app;
        let effects = self.core.update_config(msg.config, msg.incarnation, wall_secs_now())?;
        self.run(effects, ctx);
        Ok(())
    }
}

impl Handler<GetEngineStats> for Replica {
    type Result = MessageResult<GetEngineStats>;

    fn handle(&mut self, _: GetEngineStats, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.gpid, self.engine.stats()))
    }
}

impl Handler<GetInfo> for Replica {
    type Result = MessageResult<GetInfo>;

    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        let config = self.core.config();
        MessageResult(ReplicaInfo {
            gpid: self.gpid,
            app_name: self.app.app_name.clone(),
            app: self.app.clone(),
            config_primary: config.and_then(|c| c.primary),
            config_secondaries: config.map(|c| c.secondaries.clone()).unwrap_or_default(),
            status: self.core.role(),
            ballot: self.core.ballot(),
            last_prepared: self.core.last_prepared(),
            last_committed: self.core.last_committed(),
            last_applied: self.core.last_applied(),
            durable_committed: self.core.durable_committed(),
            data_dir: self.dir.display().to_string(),
            data_bytes: self.engine.data_bytes(),
            file_count: self.engine.file_count(),
            op_counts: self.served.borrow().op_counts(),
            read_bytes: self.served.borrow().read_bytes,
            write_bytes: self.served.borrow().write_bytes,
            broken: self.core.broken().map(str::to_string),
        })
    }
}

impl Handler<Inbound<ClientRead>> for Replica {
    type Result = ResponseActFuture<Self, WireResult<ReadResult>>;

    fn handle(&mut self, Inbound(req): Inbound<ClientRead>, _: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let kind = req.op.kind();
        let checked = self.core.check_read(&self.gate()).and_then(|_| {
            validate_read(
                &req.op,
                self.gpid,
                self.app.partition_count,
                req.partition_count,
                &self.options.limits,
            )
        });
        if let Err(e) = checked {
            let result = Err(e);
            self.record_read(kind, started, &result);
            return Box::pin(fut::ready(result));
        }
        if matches!(req.op, ReadOp::Get { .. } | ReadOp::Ttl { .. }) {
            // A point read is a memtable or block-cache lookup: cheaper here than the two thread
            // hand-overs of the blocking pool. Range reads go there.
            let result = self
                .engine
                .read(&req.op, wall_secs_now())
                .map_err(|e| WireError::new(ErrorCode::ERR_STORAGE, e.to_string()));
            self.record_read(kind, started, &result);
            return Box::pin(fut::ready(result));
        }
        let engine = self.engine.clone();
        let read = tokio::task::spawn_blocking(move || engine.read(&req.op, wall_secs_now()));
        Box::pin(read.into_actor(self).map(move |joined, act, _| {
            let result = match joined {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
                Err(e) => Err(WireError::new(ErrorCode::ERR_STORAGE, format!("read task failed: {e}"))),
            };
            act.record_read(kind, started, &result);
            result
        }))
    }
}

impl Handler<Inbound<ReplicaChecksum>> for Replica {
    type Result = ResponseFuture<WireResult<ReplicaChecksumResult>>;

    fn handle(&mut self, _: Inbound<ReplicaChecksum>, _: &mut Self::Context) -> Self::Result {
        let engine = self.engine.clone();
        Box::pin(async move {
            match tokio::task::spawn_blocking(move || engine.checksum(wall_secs_now())).await {
                Ok(Ok(sum)) => Ok(ReplicaChecksumResult {
                    last_applied: sum.last_applied,
                    record_count: sum.record_count,
                    checksum: sum.checksum,
                }),
                Ok(Err(e)) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
                Err(e) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
            }
        })
    }
}

impl Handler<Close> for Replica {
    type Result = ResponseActFuture<Self, ()>;

    /// Answers everything waiting, waits for its batches in the node log, syncs the log, flushes
    /// the memtables, and stops. (Opening the
    /// replica again waits until this engine is really closed: see `Engine::open`.)
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) -> Self::Result {
        let effects = self.core.close();
        self.run(effects, ctx);
        let log = self.log.log();
        let node_log = self.log.node_log();
        let gpid = self.gpid;
        let engine = self.engine.clone();
        let flush = async move {
            // Every batch handed to the node log before the close is written first.
            if let Err(e) = node_log.barrier().await {
                warn!(%gpid, error = %e, "cannot wait for the node log on close");
            }
            tokio::task::spawn_blocking(move || close_storage(gpid, &log, &engine)).await
        };
        Box::pin(flush.into_actor(self).map(|_, act, ctx| {
            info!(gpid = %act.gpid, "replica closed");
            ctx.stop();
        }))
    }
}

/// Syncs the log and flushes the memtables of a closing replica.
fn close_storage(gpid: Gpid, log: &std::sync::Mutex<aerie_storage::MutationLog>, engine: &Engine) {
    if let Ok(mut log) = log.lock() {
        if let Err(e) = log.sync() {
            warn!(%gpid, error = %e, "cannot sync the mutation log on close");
        }
    }
    if let Err(e) = engine.flush() {
        warn!(%gpid, error = %e, "cannot flush memtables on close");
    }
}

impl Handler<LeaseExpired> for Replica {
    type Result = ();

    fn handle(&mut self, _: LeaseExpired, ctx: &mut Self::Context) {
        let effects = self.core.lease_expired();
        self.run(effects, ctx);
    }
}

impl Handler<super::messages::SyncLog> for Replica {
    type Result = ResponseFuture<WireResult<()>>;

    fn handle(&mut self, _: super::messages::SyncLog, _: &mut Self::Context) -> Self::Result {
        let log = self.log.log();
        Box::pin(async move {
            let synced = tokio::task::spawn_blocking(move || match log.lock() {
                Ok(mut log) => log.sync().map_err(|e| e.to_string()),
                Err(_) => Err("log lock poisoned".to_string()),
            })
            .await;
            match synced {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(WireError::new(ErrorCode::ERR_STORAGE, e)),
                Err(e) => Err(WireError::new(ErrorCode::ERR_STORAGE, e.to_string())),
            }
        })
    }
}
