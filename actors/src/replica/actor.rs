//! The `Replica` actor: one replica of one partition. It owns the partition's prepare list, its log and
//! apply pipelines and its engine, and plays the role the meta assigned (primary, secondary, or
//! inactive). The write path lives in `write_path.rs`; this file holds its state, configuration
//! changes, reads and lifecycle.

use super::messages::{Close, GetInfo, UpdateConfig};
use super::pipelines::{ApplyPipeline, LogPipeline};
use super::prepare_list::PrepareList;
use super::storage::{write_manifest, OpenedReplica, ReplicaManifest};
use super::validate::{validate_read, Limits};
use crate::metrics::{REPLICA_COUNT, REPLICA_REQUESTS, REPLICA_REQUEST_SECONDS};
use actix::prelude::*;
use aerie_common::{clock::wall_secs_now, Ballot, Decree, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::data::{ReadResult, WriteResult};
use aerie_proto::meta::{AppInfo, AppStatus, PartitionConfig};
use aerie_proto::replica::{
    ClientRead, PrepareAck, ReplicaChecksum, ReplicaChecksumResult, ReplicaInfo, ReplicaStatus,
};
use aerie_rpc::{Inbound, Network};
use aerie_storage::{Engine, EngineOptions, LogOptions};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

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
}

/// A secondary's pending answer to a prepare: sent once the mutation at that ballot is logged.
pub(super) type AckWaiter = (Ballot, oneshot::Sender<WireResult<PrepareAck>>);

pub(super) struct WriteWaiter {
    pub tx: oneshot::Sender<WireResult<WriteResult>>,
    pub kind: &'static str,
    pub started: Instant,
}

pub struct Replica {
    pub(super) gpid: Gpid,
    pub(super) me: NodeAddr,
    pub(super) node_label: String,
    pub(super) app: AppInfo,
    pub(super) dir: PathBuf,
    /// The RocksDB directory in use, inside `dir`.
    pub(super) data_dir: String,
    pub(super) network: Network,
    pub(super) options: Arc<ReplicaOptions>,
    pub(super) status: ReplicaStatus,
    pub(super) ballot: Ballot,
    pub(super) config: Option<PartitionConfig>,
    /// Primary only: every mutation prepared before it became primary is committed.
    pub(super) serving: bool,
    pub(super) list: PrepareList,
    pub(super) next_decree: Decree,
    pub(super) log: LogPipeline,
    pub(super) apply: ApplyPipeline,
    pub(super) engine: Arc<Engine>,
    pub(super) last_applied: Decree,
    /// Secondary: the primary's committed decree, as last heard.
    pub(super) primary_committed: Decree,
    pub(super) write_waiters: HashMap<Decree, WriteWaiter>,
    pub(super) ack_waiters: HashMap<Decree, Vec<AckWaiter>>,
    pub(super) group_check_scheduled: bool,
    /// The committed decree last written to the log as a marker.
    pub(super) last_commit_marker: Decree,
    /// The highest committed decree the log durably records.
    pub(super) durable_committed: Decree,
    /// Secondaries with a round of prepare resends scheduled.
    pub(super) retry_scheduled: HashSet<NodeAddr>,
    /// A configuration request to the meta is under way (at most one at a time).
    pub(super) meta_request_in_flight: bool,
    /// Primary: learners catching up from this replica.
    pub(super) learners: HashMap<NodeAddr, super::learn_primary::LearnerSession>,
    /// Recently committed mutations, for learners.
    pub(super) committed_cache: std::collections::VecDeque<Arc<aerie_proto::replica::Mutation>>,
    /// Learner: the session this replica is learning in.
    pub(super) learning: Option<super::learner::LearningState>,
    /// Set when storage failed: the replica refuses everything until it is reopened.
    pub(super) broken: Option<String>,
    log_gc_running: bool,
}

impl Replica {
    pub fn new(opened: OpenedReplica, me: NodeAddr, network: Network, options: Arc<ReplicaOptions>) -> Self {
        let mut list = PrepareList::new(opened.last_committed);
        for mutation in opened.uncommitted {
            list.restore_logged(mutation);
        }
        let ReplicaManifest {
            gpid,
            app,
            ballot,
            data_dir,
        } = opened.manifest;
        Replica {
            gpid,
            me,
            node_label: me.to_string(),
            app,
            dir: opened.dir,
            data_dir,
            network,
            options,
            status: ReplicaStatus::Inactive,
            ballot,
            config: None,
            serving: false,
            next_decree: list.last_prepared() + 1,
            list,
            log: LogPipeline::new(opened.log),
            apply: ApplyPipeline::new(opened.engine.clone()),
            last_applied: opened.last_committed,
            primary_committed: opened.last_committed,
            engine: opened.engine,
            write_waiters: HashMap::new(),
            ack_waiters: HashMap::new(),
            group_check_scheduled: false,
            last_commit_marker: opened.last_committed,
            durable_committed: opened.last_committed,
            retry_scheduled: HashSet::new(),
            meta_request_in_flight: false,
            learners: HashMap::new(),
            committed_cache: Default::default(),
            learning: None,
            broken: None,
            log_gc_running: false,
        }
    }

    fn role_label(status: ReplicaStatus) -> &'static str {
        match status {
            ReplicaStatus::Primary => "primary",
            ReplicaStatus::Secondary => "secondary",
            ReplicaStatus::Inactive => "inactive",
            ReplicaStatus::Learner => "learner",
        }
    }

    pub(super) fn set_status(&mut self, status: ReplicaStatus) {
        if status == self.status {
            return;
        }
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(self.status)])
            .dec();
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(status)])
            .inc();
        info!(gpid = %self.gpid, ballot = self.ballot, from = %self.status, to = %status, "replica role changed");
        self.status = status;
    }

    /// The secondaries of the current configuration.
    pub(super) fn secondaries(&self) -> Vec<NodeAddr> {
        self.config.as_ref().map(|c| c.secondaries.clone()).unwrap_or_default()
    }

    pub(super) fn check_primary_ready(&self) -> WireResult<()> {
        if let Some(reason) = &self.broken {
            return Err(WireError::new(
                ErrorCode::ERR_STORAGE,
                format!("replica {} is out of service: {reason}", self.gpid),
            ));
        }
        if self.status != ReplicaStatus::Primary {
            return Err(WireError::new(
                ErrorCode::ERR_NOT_PRIMARY,
                format!(
                    "{} is not the primary of {} (it is {} at ballot {})",
                    self.me, self.gpid, self.status, self.ballot
                ),
            ));
        }
        if !self.serving {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "the primary of {} is still committing what it inherited; retry shortly",
                    self.gpid
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn record_request(&self, kind: &'static str, started: Instant, outcome: &WireResult<impl Sized>) {
        let outcome = match outcome {
            Ok(_) => "ok",
            Err(e) => e.code.name(),
        };
        REPLICA_REQUESTS
            .with_label_values(&[&self.node_label, kind, outcome])
            .inc();
        REPLICA_REQUEST_SECONDS
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Storage failed: stop serving, and fail everything waiting.
    pub(super) fn mark_broken(&mut self, reason: String) {
        error!(gpid = %self.gpid, %reason, "replica storage failed; the replica is out of service");
        self.broken = Some(reason.clone());
        self.serving = false;
        self.fail_waiters(ErrorCode::ERR_STORAGE, &reason);
    }

    pub(super) fn fail_waiters(&mut self, code: ErrorCode, reason: &str) {
        for (_, waiter) in self.write_waiters.drain() {
            let _ = waiter.tx.send(Err(WireError::new(code, reason.to_string())));
        }
        for (_, waiters) in self.ack_waiters.drain() {
            for (_, tx) in waiters {
                let _ = tx.send(Err(WireError::new(code, reason.to_string())));
            }
        }
    }

    pub(super) fn apply_config(
        &mut self,
        app: AppInfo,
        config: PartitionConfig,
        ctx: &mut Context<Self>,
    ) -> WireResult<()> {
        if config.gpid != self.gpid {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("configuration of {} sent to replica {}", config.gpid, self.gpid),
            ));
        }
        if config.ballot < self.ballot {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "configuration of {} at ballot {} is older than the replica's ballot {}",
                    self.gpid, config.ballot, self.ballot
                ),
            ));
        }
        let ballot_changed = config.ballot != self.ballot;
        self.ballot = config.ballot;
        self.app = app;
        let role = if config.primary == Some(self.me) {
            ReplicaStatus::Primary
        } else if config.secondaries.contains(&self.me) {
            ReplicaStatus::Secondary
        } else {
            ReplicaStatus::Inactive
        };
        self.config = Some(config);
        if ballot_changed {
            self.persist_manifest();
        }
        match role {
            ReplicaStatus::Primary if self.status != ReplicaStatus::Primary || ballot_changed => {
                self.become_primary(ctx)
            }
            ReplicaStatus::Primary => {}
            other => {
                if self.status == ReplicaStatus::Primary {
                    self.serving = false;
                    self.forget_learners();
                    self.fail_waiters(ErrorCode::ERR_NOT_PRIMARY, "the primary stepped down");
                }
                if other == ReplicaStatus::Secondary {
                    if self.learning.take().is_some() {
                        info!(gpid = %self.gpid, ballot = self.ballot, "learner upgraded to secondary");
                    }
                } else if self.status == ReplicaStatus::Learner {
                    // Not named by the configuration: keep learning (the meta added it as a learner).
                    return Ok(());
                }
                self.set_status(other);
            }
        }
        Ok(())
    }

    /// The configuration the replica last applied, if it is at the replica's ballot.
    fn current_config(&self) -> Option<&PartitionConfig> {
        self.config.as_ref().filter(|c| c.ballot == self.ballot)
    }

    /// Writes the manifest with the current ballot, off the actor thread.
    pub(super) fn persist_manifest(&self) {
        let manifest = ReplicaManifest {
            gpid: self.gpid,
            app: self.app.clone(),
            ballot: self.ballot,
            data_dir: self.data_dir.clone(),
        };
        let dir = self.dir.clone();
        actix::spawn(async move {
            let target = dir.clone();
            let result = tokio::task::spawn_blocking(move || write_manifest(&target, &manifest)).await;
            match result {
                // The replica was set aside (removed from this node) meanwhile: nothing to keep.
                Ok(Err(e)) if !dir.exists() => debug!(error = %e, "replica dir gone; manifest not written"),
                Ok(Err(e)) => warn!(error = %e, "cannot persist replica manifest"),
                _ => {}
            }
        });
    }

    fn start_log_gc(&mut self, ctx: &mut Context<Self>) {
        if self.log_gc_running || self.broken.is_some() {
            return;
        }
        self.log_gc_running = true;
        let log = self.log.log();
        let engine = self.engine.clone();
        let threshold = self.options.log_gc_threshold_bytes;
        let gpid = self.gpid;
        let work = tokio::task::spawn_blocking(move || -> Result<usize, String> {
            let bytes = log.lock().map_err(|_| "log lock poisoned")?.total_bytes();
            if bytes <= threshold {
                return Ok(0);
            }
            engine.flush().map_err(|e| e.to_string())?;
            let durable = engine.last_applied_decree().map_err(|e| e.to_string())?;
            log.lock()
                .map_err(|_| "log lock poisoned")?
                .gc(durable)
                .map_err(|e| e.to_string())
        });
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
            .with_label_values(&[&self.node_label, Self::role_label(self.status)])
            .inc();
        ctx.run_interval(self.options.log_gc_interval, |act, ctx| act.start_log_gc(ctx));
        ctx.run_interval(self.options.group_check_interval, |act, _| act.send_group_check());
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(self.status)])
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
        self.apply_config(msg.app, msg.config, ctx)
    }
}

impl Handler<GetInfo> for Replica {
    type Result = MessageResult<GetInfo>;

    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        MessageResult(ReplicaInfo {
            gpid: self.gpid,
            app_name: self.app.app_name.clone(),
            app: self.app.clone(),
            config_primary: self.current_config().and_then(|c| c.primary),
            config_secondaries: self.current_config().map(|c| c.secondaries.clone()).unwrap_or_default(),
            status: self.status,
            ballot: self.ballot,
            last_prepared: self.list.last_prepared(),
            last_committed: self.list.last_committed(),
            last_applied: self.last_applied,
            durable_committed: self.durable_committed,
            data_dir: self.dir.display().to_string(),
            data_bytes: self.engine.data_bytes(),
        })
    }
}

impl Handler<Inbound<ClientRead>> for Replica {
    type Result = ResponseActFuture<Self, WireResult<ReadResult>>;

    fn handle(&mut self, Inbound(req): Inbound<ClientRead>, _: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let kind = req.op.kind();
        let checked = self.check_primary_ready().and_then(|_| {
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
            self.record_request(kind, started, &result);
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
            act.record_request(kind, started, &result);
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

    fn handle(&mut self, _: Close, _: &mut Self::Context) -> Self::Result {
        self.serving = false;
        self.set_status(ReplicaStatus::Inactive);
        self.fail_waiters(ErrorCode::ERR_INVALID_STATE, "the replica is closing");
        let log = self.log.log();
        let engine = self.engine.clone();
        let gpid = self.gpid;
        let flush = tokio::task::spawn_blocking(move || {
            if let Ok(mut log) = log.lock() {
                if let Err(e) = log.sync() {
                    warn!(%gpid, error = %e, "cannot sync the mutation log on close");
                }
            }
            if let Err(e) = engine.flush() {
                warn!(%gpid, error = %e, "cannot flush memtables on close");
            }
        });
        Box::pin(flush.into_actor(self).map(|_, act, ctx| {
            info!(gpid = %act.gpid, "replica closed");
            ctx.stop();
        }))
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
