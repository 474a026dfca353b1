//! Learning, the primary's side: it keeps recent committed mutations in memory, answers each
//! learner's `LearnRequest` from the cheapest source (see `learn_plan`), serves checkpoint chunks,
//! and when the learner has caught up (joined the prepare stream and made its state durable) asks
//! the meta to make it a secondary.
//!
//! A joined learner receives every new prepare, and the primary waits for its acknowledgements like
//! a secondary's: when it is upgraded it holds everything. A learner that fails is dropped at once
//! (nothing waits for it any more) and the meta is told, so the cure may try again.

use super::actor::Replica;
use super::learn_plan::{plan_learning, LearnPlan, PrimaryHoldings};
use actix::prelude::*;
use aerie_common::{Decree, ErrorCode, NodeAddr, WireError, WireResult};
use aerie_proto::learn::{
    CheckpointChunk, CheckpointFile, FetchCheckpointChunk, LearnCompleted, LearnRequest, LearnResponse, LearnSource,
    StartLearning,
};
use aerie_proto::meta::{PartitionChange, UpdatePartitionConfig};
use aerie_proto::replica::{AddLearner, Mutation};
use aerie_rpc::Inbound;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::{info, warn};

/// A checkpoint prepared for one learner.
#[derive(Debug, Clone)]
pub(crate) struct PreparedCheckpoint {
    id: u64,
    dir: PathBuf,
    files: Vec<CheckpointFile>,
}

static NEXT_CHECKPOINT: AtomicU64 = AtomicU64::new(1);

fn refuse(code: ErrorCode, detail: String) -> WireError {
    WireError::new(code, detail)
}

impl Replica {
    /// Remembers newly committed mutations for learners, within the configured bound.
    pub(super) fn remember_committed(&mut self, mutations: &[Arc<Mutation>]) {
        let capacity = self.options.learn_cache_mutations;
        if capacity == 0 {
            return;
        }
        self.committed_cache.extend(mutations.iter().cloned());
        let excess = self.committed_cache.len().saturating_sub(capacity);
        self.committed_cache.drain(..excess);
    }

    /// Committed mutations `after + 1 ..= up_to` from memory, at most about `max_bytes`.
    fn cached_range(&self, after: Decree, up_to: Decree, max_bytes: usize) -> Vec<Mutation> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for mutation in self
            .committed_cache
            .iter()
            .filter(|m| m.decree > after && m.decree <= up_to)
        {
            if bytes >= max_bytes && !out.is_empty() {
                break;
            }
            bytes += mutation.ops.iter().map(|o| o.op.payload_bytes()).sum::<usize>() + 64;
            out.push((**mutation).clone());
        }
        out
    }

    /// Asks `learner` to start learning from this primary; if it cannot, the core drops it.
    pub(super) fn start_learner(&mut self, learner: NodeAddr, ctx: &mut Context<Self>) {
        info!(gpid = %self.gpid, ballot = self.core.ballot(), %learner, "learner added");
        let start = StartLearning {
            app: self.app.clone(),
            gpid: self.gpid,
            ballot: self.core.ballot(),
            primary: self.me,
        };
        let (network, timeout) = (self.network.clone(), self.options.rpc_timeout);
        ctx.spawn(
            async move { network.call(learner, start, timeout).await }
                .into_actor(self)
                .map(move |answer, act, ctx| {
                    let failure = match answer {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let effects = act
                        .core
                        .learner_failed(learner, &format!("could not start learning: {failure}"));
                    act.run(effects, ctx);
                }),
        );
    }

    /// The core dropped a learner: free its checkpoint, and tell the meta if learning failed (so
    /// the cure may try again).
    pub(super) fn learner_dropped(&mut self, learner: NodeAddr, reason: &str, tell_meta: bool) {
        if let Some(checkpoint) = self.checkpoints.remove(&learner) {
            remove_dir_later(checkpoint.dir);
        }
        if !tell_meta {
            info!(gpid = %self.gpid, %learner, %reason, "learning session ended");
            return;
        }
        warn!(gpid = %self.gpid, %learner, %reason, "learning given up");
        let request = UpdatePartitionConfig {
            gpid: self.gpid,
            ballot: self.core.ballot(),
            requester: self.me,
            change: PartitionChange::LearnerFailed(learner),
        };
        let (meta, network, timeout) = (
            self.options.meta.clone(),
            self.network.clone(),
            self.options.rpc_timeout,
        );
        actix::spawn(async move {
            let _ = meta.call(&network, request, timeout).await;
        });
    }

    /// What this primary holds for a learner that applied everything up to `applied`.
    fn holdings(&self, applied: Decree) -> PrimaryHoldings {
        let snapshot = self.log.log().lock().ok().map(|log| log.snapshot());
        PrimaryHoldings {
            committed: self.core.last_committed(),
            cache_first: self.committed_cache.front().map(|m| m.decree),
            log_first: snapshot.as_ref().and_then(|s| s.first_decree),
            join_gap: self.options.learn_join_gap,
            log_bytes_to_replay: snapshot.map_or(0, |s| s.bytes_after(applied)),
            data_bytes: self.engine.data_bytes(),
        }
    }

    fn join(&mut self, learner: NodeAddr, applied: Decree, ctx: &mut Context<Self>) -> LearnResponse {
        if let Some(checkpoint) = self.checkpoints.remove(&learner) {
            remove_dir_later(checkpoint.dir);
        }
        let (committed, effects) = self.core.learner_joined(learner);
        let mutations = self.cached_range(applied, committed, usize::MAX);
        self.run(effects, ctx);
        info!(gpid = %self.gpid, %learner, applied, committed, "learner joined the prepare stream");
        LearnResponse::Joined { mutations, committed }
    }

    fn prepare_checkpoint(&mut self, learner: NodeAddr) -> ResponseActFuture<Self, WireResult<LearnResponse>> {
        if let Some(existing) = self.checkpoints.get(&learner).cloned() {
            return Box::pin(fut::ready(Ok(LearnResponse::Checkpoint {
                checkpoint_id: existing.id,
                files: existing.files,
            })));
        }
        let id = NEXT_CHECKPOINT.fetch_add(1, Ordering::Relaxed) ^ (aerie_common::clock::wall_secs_now() << 20);
        let dir = self.dir.join("learn").join(id.to_string());
        let engine = self.engine.clone();
        let gpid = self.gpid;
        let work = tokio::task::spawn_blocking(move || -> Result<PreparedCheckpoint, String> {
            std::fs::create_dir_all(dir.parent().expect("learn dir")).map_err(|e| e.to_string())?;
            engine.flush().map_err(|e| e.to_string())?;
            engine.checkpoint(&dir).map_err(|e| e.to_string())?;
            let mut files = Vec::new();
            for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
                let entry = entry.map_err(|e| e.to_string())?;
                let size = entry.metadata().map_err(|e| e.to_string())?.len();
                files.push(CheckpointFile {
                    name: entry.file_name().to_string_lossy().into_owned(),
                    size,
                });
            }
            Ok(PreparedCheckpoint { id, dir, files })
        });
        Box::pin(work.into_actor(self).map(move |made, act, _| {
            let checkpoint = match made {
                Ok(Ok(checkpoint)) => checkpoint,
                Ok(Err(e)) => return Err(refuse(ErrorCode::ERR_STORAGE, format!("cannot checkpoint {gpid}: {e}"))),
                Err(e) => return Err(refuse(ErrorCode::ERR_STORAGE, e.to_string())),
            };
            let bytes: u64 = checkpoint.files.iter().map(|f| f.size).sum();
            info!(%gpid, %learner, files = checkpoint.files.len(), bytes, "checkpoint ready for a learner");
            let response = LearnResponse::Checkpoint {
                checkpoint_id: checkpoint.id,
                files: checkpoint.files.clone(),
            };
            if act.core.learners().any(|(node, _)| node == learner) {
                act.checkpoints.insert(learner, checkpoint);
            } else {
                remove_dir_later(checkpoint.dir);
            }
            Ok(response)
        }))
    }
}

/// Deletes a directory on the blocking pool.
fn remove_dir_later(dir: PathBuf) {
    actix::spawn(async move {
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    });
}

impl Handler<Inbound<AddLearner>> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(req): Inbound<AddLearner>, ctx: &mut Self::Context) -> Self::Result {
        let (answer, effects) = self.core.add_learner(req.learner, req.ballot);
        self.run(effects, ctx);
        answer
    }
}

impl Handler<Inbound<LearnRequest>> for Replica {
    type Result = ResponseActFuture<Self, WireResult<LearnResponse>>;

    fn handle(&mut self, Inbound(req): Inbound<LearnRequest>, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.core.check_learner(req.learner, req.ballot) {
            return Box::pin(fut::ready(Err(e)));
        }
        let holdings = self.holdings(req.applied);
        let batch = self.options.learn_batch_bytes;
        let mut plan = plan_learning(req.applied, holdings);
        if plan == LearnPlan::Join {
            let missing = (holdings.committed - req.applied).max(0) as usize;
            let covered = self.cached_range(req.applied, holdings.committed, usize::MAX).len();
            if covered != missing {
                // Memory does not hold every committed mutation after the learner's point: never
                // join with a gap; send what there is and let the learner ask again.
                warn!(gpid = %self.gpid, learner = %req.learner, missing, covered, "cannot join yet: memory has a gap");
                plan = LearnPlan::Cache;
            }
        }
        match plan {
            LearnPlan::Join => {
                let response = self.join(req.learner, req.applied, ctx);
                Box::pin(fut::ready(Ok(response)))
            }
            LearnPlan::Cache => {
                let mutations = self.cached_range(req.applied, holdings.committed, batch);
                Box::pin(fut::ready(Ok(LearnResponse::Mutations {
                    source: LearnSource::Cache,
                    mutations,
                })))
            }
            LearnPlan::Log => {
                let log = self.log.log();
                let snapshot = log.lock().map(|log| log.snapshot());
                let Ok(snapshot) = snapshot else {
                    return Box::pin(fut::ready(Err(refuse(
                        ErrorCode::ERR_STORAGE,
                        "log lock poisoned".into(),
                    ))));
                };
                let (applied, committed) = (req.applied, holdings.committed);
                let read = tokio::task::spawn_blocking(move || snapshot.read_range(applied, committed, batch));
                Box::pin(read.into_actor(self).map(|read, _, _| match read {
                    Ok(Ok(mutations)) if !mutations.is_empty() => Ok(LearnResponse::Mutations {
                        source: LearnSource::LogFiles,
                        mutations,
                    }),
                    // The log moved on since the plan: the learner asks again and gets another plan.
                    Ok(Ok(_)) => Err(refuse(
                        ErrorCode::ERR_BUSY,
                        "the log no longer reaches back that far".into(),
                    )),
                    Ok(Err(e)) => Err(refuse(ErrorCode::ERR_STORAGE, e.to_string())),
                    Err(e) => Err(refuse(ErrorCode::ERR_STORAGE, e.to_string())),
                }))
            }
            LearnPlan::Checkpoint => self.prepare_checkpoint(req.learner),
        }
    }
}

impl Handler<Inbound<FetchCheckpointChunk>> for Replica {
    type Result = ResponseFuture<WireResult<CheckpointChunk>>;

    fn handle(&mut self, Inbound(req): Inbound<FetchCheckpointChunk>, _: &mut Self::Context) -> Self::Result {
        let checkpoint = self.checkpoints.values().find(|c| c.id == req.checkpoint_id).cloned();
        let Some(checkpoint) = checkpoint else {
            return Box::pin(async move {
                Err(refuse(
                    ErrorCode::ERR_OBJECT_NOT_FOUND,
                    format!("no checkpoint {}", req.checkpoint_id),
                ))
            });
        };
        if !checkpoint.files.iter().any(|f| f.name == req.file) {
            return Box::pin(async move {
                Err(refuse(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!("no file '{}' in the checkpoint", req.file),
                ))
            });
        }
        let path = checkpoint.dir.join(&req.file);
        Box::pin(async move {
            let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut file = std::fs::File::open(&path)?;
                file.seek(SeekFrom::Start(req.offset))?;
                let mut data = Vec::with_capacity(req.len as usize);
                file.take(req.len as u64).read_to_end(&mut data)?;
                Ok(data)
            })
            .await;
            match read {
                Ok(Ok(data)) => Ok(CheckpointChunk { data }),
                Ok(Err(e)) => Err(refuse(ErrorCode::ERR_STORAGE, e.to_string())),
                Err(e) => Err(refuse(ErrorCode::ERR_STORAGE, e.to_string())),
            }
        })
    }
}

impl Handler<Inbound<LearnCompleted>> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(req): Inbound<LearnCompleted>, ctx: &mut Self::Context) -> Self::Result {
        self.core.check_learner(req.learner, req.ballot)?;
        let effects = self.core.learner_completed(req.learner)?;
        info!(gpid = %self.gpid, ballot = self.core.ballot(), learner = %req.learner, "learner caught up; asking the meta to make it a secondary");
        self.run(effects, ctx);
        Ok(())
    }
}
