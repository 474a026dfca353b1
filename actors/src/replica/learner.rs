//! Learning, the learner's side: a replica the meta wants as a new secondary catches up from the
//! primary. It first drops its own uncommitted history (which may come from an old ballot and must
//! never resurface), then asks the primary for what follows its applied decree until it has joined
//! the prepare stream; it makes its state durable, says so, and becomes a secondary when the meta's
//! new configuration arrives.
//!
//! Mutations and checkpoint files are applied and written on the blocking pool; checkpoint chunks are
//! fetched at no more than the configured rate, so a large copy never crowds out the primary.

use super::actor::Replica;
use super::pipelines::ApplyPipeline;
use super::storage::{ManifestWriter, ReplicaManifest};
use crate::metrics::{LEARN_BYTES, LEARN_COMPLETED, LEARN_ROUNDS};
use actix::prelude::*;
use aerie_common::{Ballot, ErrorCode, NodeAddr, WireResult};
use aerie_proto::learn::{
    CheckpointFile, FetchCheckpointChunk, LearnCompleted, LearnRequest, LearnResponse, LearnSource,
};
use aerie_proto::meta::AppInfo;
use aerie_proto::replica::{Mutation, ReplicaStatus};
use aerie_rpc::{Network, RpcError};
use aerie_storage::{Engine, EngineOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

const CHUNK_BYTES: u64 = 1024 * 1024;
const RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_FAILURES: u32 = 10;
/// A caught-up learner that is not made a secondary by then gives up (the meta may try again).
const UPGRADE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Learning,
    CaughtUp,
}

#[derive(Debug, Clone)]
pub(crate) struct LearningState {
    primary: NodeAddr,
    ballot: Ballot,
    stage: Stage,
    failures: u32,
}

/// From the replica server: learn this partition from `primary`, at `ballot`.
pub struct BeginLearning {
    pub app: AppInfo,
    pub ballot: Ballot,
    pub primary: NodeAddr,
}

impl Message for BeginLearning {
    type Result = WireResult<()>;
}

fn bytes_of(mutations: &[Mutation]) -> u64 {
    mutations
        .iter()
        .map(|m| m.ops.iter().map(|o| o.op.payload_bytes()).sum::<usize>() as u64 + 64)
        .sum()
}

impl Replica {
    fn learning_matches(&self, ballot: Ballot) -> bool {
        self.learning.as_ref().is_some_and(|l| l.ballot == ballot) && self.core.role() == ReplicaStatus::Learner
    }

    /// Stops learning; the replica stays inactive until the meta gives it a role.
    pub(super) fn give_up_learning(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if self.learning.is_some() {
            warn!(gpid = %self.gpid, %reason, "learning stopped");
            let effects = self.core.learning_stopped();
            self.run(effects, ctx);
            self.learning = None;
        }
    }

    /// Starts learning (committed mutations are applied as the actor handles their commit, so the
    /// engine's applied decree is exact here).
    fn start_learning(&mut self, ctx: &mut Context<Self>) {
        let (engine, log, node_log, gpid) = (self.engine.clone(), self.log.log(), self.log.node_log(), self.gpid);
        // Until what it learns is durable, a restart must drop the log (it will hold prepares
        // whose committed point the engine does not reach yet): say so before the first prepare.
        self.learning_unsettled = true;
        self.manifest_writer.set(self.manifest());
        let writer = self.manifest_writer.clone();
        let reset = tokio::task::spawn_blocking(move || -> Result<i64, String> {
            writer.flush().map_err(|e| e.to_string())?;
            engine.flush().map_err(|e| e.to_string())?;
            node_log.record_reset(gpid)?;
            log.lock()
                .map_err(|_| "log lock poisoned")?
                .reset()
                .map_err(|e| e.to_string())?;
            engine.last_applied_decree().map_err(|e| e.to_string())
        });
        ctx.spawn(reset.into_actor(self).map(|reset, act, ctx| match reset {
            Ok(Ok(applied)) => {
                act.core.learning_reset(applied);
                info!(gpid = %act.gpid, applied, "learning: local uncommitted history dropped; asking the primary");
                act.learn_step(ctx);
            }
            Ok(Err(e)) => act.give_up_learning(&format!("cannot reset local state: {e}"), ctx),
            Err(e) => act.give_up_learning(&format!("cannot reset local state: {e}"), ctx),
        }));
    }

    fn learn_step(&mut self, ctx: &mut Context<Self>) {
        let Some(state) = self.learning.clone().filter(|s| s.stage == Stage::Learning) else {
            return;
        };
        let request = LearnRequest {
            gpid: self.gpid,
            ballot: state.ballot,
            learner: self.me,
            applied: self.core.last_applied(),
        };
        let (network, timeout) = (self.network.clone(), self.options.rpc_timeout);
        ctx.spawn(
            async move { network.call(state.primary, request, timeout).await }
                .into_actor(self)
                .map(move |answer, act, ctx| act.on_learn_answer(state.ballot, answer, ctx)),
        );
    }

    fn retry_or_give_up(&mut self, ballot: Ballot, error: String, ctx: &mut Context<Self>) {
        let Some(state) = self.learning.as_mut() else {
            return;
        };
        state.failures += 1;
        if state.failures > MAX_FAILURES {
            return self.give_up_learning(&format!("{MAX_FAILURES} failures in a row, the last: {error}"), ctx);
        }
        warn!(gpid = %self.gpid, %error, "learning round failed; retrying");
        ctx.run_later(RETRY_DELAY, move |act, ctx| {
            if act.learning_matches(ballot) {
                act.learn_step(ctx);
            }
        });
    }

    fn on_learn_answer(
        &mut self,
        ballot: Ballot,
        answer: Result<WireResult<LearnResponse>, RpcError>,
        ctx: &mut Context<Self>,
    ) {
        if !self.learning_matches(ballot) {
            return;
        }
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if matches!(e.code, ErrorCode::ERR_INVALID_VERSION | ErrorCode::ERR_INVALID_STATE) => {
                return self.give_up_learning(&format!("the primary ended the session: {e}"), ctx)
            }
            Ok(Err(e)) => return self.retry_or_give_up(ballot, e.to_string(), ctx),
            Err(e) => return self.retry_or_give_up(ballot, e.to_string(), ctx),
        };
        if let Some(state) = self.learning.as_mut() {
            state.failures = 0;
        }
        if let LearnResponse::Mutations { mutations, .. } | LearnResponse::Joined { mutations, .. } = &response {
            if let Err(gap) = check_contiguous(self.core.last_applied(), mutations, &response) {
                return self.retry_or_give_up(ballot, gap, ctx);
            }
        }
        match response {
            LearnResponse::Mutations { source, mutations } => {
                self.count_learned(source, bytes_of(&mutations));
                self.apply_learned(ballot, mutations, |act, ctx| act.learn_step(ctx), ctx);
            }
            LearnResponse::Checkpoint { checkpoint_id, files } => {
                self.fetch_checkpoint(ballot, checkpoint_id, files, ctx)
            }
            LearnResponse::Joined { mutations, committed } => {
                self.count_learned(LearnSource::Cache, bytes_of(&mutations));
                self.apply_learned(
                    ballot,
                    mutations,
                    move |act, ctx| act.finish_join(ballot, committed, ctx),
                    ctx,
                );
            }
        }
    }

    fn count_learned(&self, source: LearnSource, bytes: u64) {
        LEARN_ROUNDS.with_label_values(&[&self.node_label, source.name()]).inc();
        LEARN_BYTES
            .with_label_values(&[&self.node_label, source.name()])
            .inc_by(bytes);
    }

    fn apply_learned(
        &mut self,
        ballot: Ballot,
        mutations: Vec<Mutation>,
        then: impl FnOnce(&mut Self, &mut Context<Self>) + 'static,
        ctx: &mut Context<Self>,
    ) {
        let engine = self.engine.clone();
        let mutations: Vec<Arc<Mutation>> = mutations.into_iter().map(Arc::new).collect();
        let to_apply = mutations.clone();
        let applied = tokio::task::spawn_blocking(move || engine.apply(&to_apply).map_err(|e| e.to_string()));
        ctx.spawn(applied.into_actor(self).map(move |applied, act, ctx| {
            if !act.learning_matches(ballot) {
                return;
            }
            match applied {
                Ok(Ok(_)) => {
                    if let Some(last) = mutations.last() {
                        act.core.learned_up_to(last.decree);
                    }
                    act.remember_committed(&mutations);
                    then(act, ctx);
                }
                Ok(Err(e)) => act.mark_broken(format!("applying learned mutations failed: {e}"), ctx),
                Err(e) => act.mark_broken(format!("applying learned mutations failed: {e}"), ctx),
            }
        }));
    }

    fn fetch_checkpoint(
        &mut self,
        ballot: Ballot,
        checkpoint_id: u64,
        files: Vec<CheckpointFile>,
        ctx: &mut Context<Self>,
    ) {
        let Some(primary) = self.learning.as_ref().map(|l| l.primary) else {
            return;
        };
        let target = self.dir.join("rdb.learn");
        // Counted per chunk, so that the copy's progress shows in the metrics while it runs.
        let progress = LEARN_BYTES.with_label_values(&[&self.node_label, LearnSource::Checkpoint.name()]);
        let fetch = fetch_files(
            self.network.clone(),
            primary,
            self.gpid,
            checkpoint_id,
            files,
            target.clone(),
            self.options.learn_rate_limit_bytes,
            self.options.rpc_timeout,
            progress,
        );
        let started = Instant::now();
        ctx.spawn(fetch.into_actor(self).map(move |fetched, act, ctx| {
            if !act.learning_matches(ballot) {
                return;
            }
            match fetched {
                Ok(bytes) => {
                    let seconds = started.elapsed().as_secs_f64();
                    info!(gpid = %act.gpid, bytes, seconds, mb_per_s = bytes as f64 / 1e6 / seconds.max(1e-3), "checkpoint copied");
                    LEARN_ROUNDS
                        .with_label_values(&[&act.node_label, LearnSource::Checkpoint.name()])
                        .inc();
                    act.install_checkpoint(ballot, target, ctx);
                }
                Err(e) => act.retry_or_give_up(ballot, format!("copying the checkpoint: {e}"), ctx),
            }
        }));
    }

    /// Replaces this replica's data with the fetched checkpoint and continues from its decree. The
    /// checkpoint becomes a new data directory (RocksDB locks paths, and the old engine may still be
    /// closing); the manifest, written atomically, says which directory is current.
    fn install_checkpoint(&mut self, ballot: Ballot, fetched: PathBuf, ctx: &mut Context<Self>) {
        let generation = format!(
            "rdb.{}",
            aerie_common::clock::wall_secs_now() ^ (self.core.last_applied() as u64)
        );
        let manifest = ReplicaManifest {
            data_dir: generation.clone(),
            ..self.manifest()
        };
        let (dir, writer) = (self.dir.clone(), self.manifest_writer.clone());
        let options = self.options.engine_options.clone();
        let install = tokio::task::spawn_blocking(move || install_engine(&dir, &fetched, manifest, &writer, &options));
        ctx.spawn(install.into_actor(self).map(move |installed, act, ctx| {
            if !act.learning_matches(ballot) {
                return;
            }
            let engine = match installed {
                Ok(Ok(engine)) => Arc::new(engine),
                Ok(Err(e)) => return act.mark_broken(format!("installing the checkpoint failed: {e}"), ctx),
                Err(e) => return act.mark_broken(format!("installing the checkpoint failed: {e}"), ctx),
            };
            let applied = engine.last_applied_decree().unwrap_or(0);
            let old = std::mem::replace(&mut act.engine, engine.clone());
            let old_dir = act.dir.join(std::mem::replace(&mut act.data_dir, generation));
            act.apply = ApplyPipeline::new(engine);
            // Closing RocksDB flushes memtables: not on the actor thread.
            actix::spawn(async move {
                let _ = tokio::task::spawn_blocking(move || {
                    drop(old);
                    let _ = std::fs::remove_dir_all(old_dir);
                })
                .await;
            });
            act.core.learning_reset(applied);
            act.committed_cache.clear();
            info!(gpid = %act.gpid, applied, "checkpoint installed; learning the rest");
            act.learn_step(ctx);
        }));
    }

    /// Joined: everything up to `committed` is applied; make it durable and ask to be upgraded.
    fn finish_join(&mut self, ballot: Ballot, committed: i64, ctx: &mut Context<Self>) {
        let effects = self.core.learning_joined(committed);
        self.run(effects, ctx);
        if let Some(state) = self.learning.as_mut() {
            state.stage = Stage::CaughtUp;
        }
        let engine = self.engine.clone();
        let flush = tokio::task::spawn_blocking(move || engine.flush().map_err(|e| e.to_string()));
        ctx.spawn(flush.into_actor(self).map(move |flushed, act, ctx| {
            if !act.learning_matches(ballot) {
                return;
            }
            match flushed {
                Ok(Ok(())) => act.settle_learning(ballot, committed, ctx),
                Ok(Err(e)) => act.mark_broken(format!("cannot make learned data durable: {e}"), ctx),
                Err(e) => act.mark_broken(format!("cannot make learned data durable: {e}"), ctx),
            }
        }));
    }

    /// What was learned is durable: the manifest says so (on disk, before the primary hears of it:
    /// once a secondary, a restart must replay this log, not drop it), then the upgrade is asked for.
    fn settle_learning(&mut self, ballot: Ballot, committed: i64, ctx: &mut Context<Self>) {
        self.learning_unsettled = false;
        self.manifest_writer.set(self.manifest());
        let writer = self.manifest_writer.clone();
        let written = tokio::task::spawn_blocking(move || writer.flush().map_err(|e| e.to_string()));
        ctx.spawn(written.into_actor(self).map(move |written, act, ctx| {
            if !act.learning_matches(ballot) {
                return;
            }
            if let Err(e) = written.unwrap_or_else(|e| Err(e.to_string())) {
                return act.mark_broken(format!("cannot write the manifest after learning: {e}"), ctx);
            }
            LEARN_COMPLETED.with_label_values(&[&act.node_label]).inc();
            info!(gpid = %act.gpid, committed, "caught up; asking the primary to make this replica a secondary");
            act.report_completion(ballot, ctx);
            ctx.run_later(UPGRADE_WAIT, move |act, ctx| {
                if act.learning_matches(ballot) {
                    act.give_up_learning("not made a secondary in time", ctx);
                }
            });
        }));
    }

    fn report_completion(&mut self, ballot: Ballot, ctx: &mut Context<Self>) {
        let Some(primary) = self.learning.as_ref().map(|l| l.primary) else {
            return;
        };
        let request = LearnCompleted {
            gpid: self.gpid,
            ballot,
            learner: self.me,
        };
        let (network, timeout) = (self.network.clone(), self.options.rpc_timeout);
        ctx.spawn(
            async move { network.call(primary, request, timeout).await }
                .into_actor(self)
                .map(move |answer, act, ctx| {
                    if !act.learning_matches(ballot) {
                        return;
                    }
                    match answer {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) if e.code == ErrorCode::ERR_BUSY => {
                            ctx.run_later(Duration::from_millis(200), move |act, ctx| {
                                act.report_completion(ballot, ctx)
                            });
                        }
                        Ok(Err(e)) => act.give_up_learning(&format!("the primary refused the upgrade: {e}"), ctx),
                        Err(e) => act.give_up_learning(&format!("cannot reach the primary: {e}"), ctx),
                    }
                }),
        );
    }
}

/// A learned batch must start right after `applied` and run without a gap (a joined batch must
/// reach the committed decree): anything else would silently skip data.
fn check_contiguous(applied: i64, mutations: &[Mutation], response: &LearnResponse) -> Result<(), String> {
    for (expected, mutation) in (applied + 1..).zip(mutations) {
        if mutation.decree != expected {
            return Err(format!(
                "learned batch has decree {} where {expected} was due",
                mutation.decree
            ));
        }
    }
    if let LearnResponse::Joined { committed, .. } = response {
        let reached = applied + mutations.len() as i64;
        if reached < *committed {
            return Err(format!(
                "join reaches decree {reached}, short of the committed {committed}"
            ));
        }
    }
    if matches!(response, LearnResponse::Mutations { .. }) && mutations.is_empty() {
        return Err("an empty batch of mutations".into());
    }
    Ok(())
}

/// Fetches every file of a checkpoint into `target`, at most `rate` bytes per second (0: no limit).
#[allow(clippy::too_many_arguments)]
async fn fetch_files(
    network: Network,
    primary: NodeAddr,
    gpid: aerie_common::Gpid,
    checkpoint_id: u64,
    files: Vec<CheckpointFile>,
    target: PathBuf,
    rate: u64,
    timeout: Duration,
    progress: prometheus::IntCounter,
) -> Result<u64, String> {
    let prepare = target.clone();
    tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(&prepare);
        std::fs::create_dir_all(&prepare)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut total = 0u64;
    for file in files {
        let mut offset = 0u64;
        let path = target.join(&file.name);
        let mut out = tokio::fs::File::create(&path).await.map_err(|e| e.to_string())?;
        while offset < file.size {
            let len = CHUNK_BYTES.min(file.size - offset);
            if rate > 0 {
                let due = Duration::from_secs_f64((total + len) as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            let request = FetchCheckpointChunk {
                gpid,
                checkpoint_id,
                file: file.name.clone(),
                offset,
                len: len as u32,
            };
            let chunk = network
                .call(primary, request, timeout)
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            if chunk.data.is_empty() {
                return Err(format!("{} ended at {offset} of {} bytes", file.name, file.size));
            }
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk.data)
                .await
                .map_err(|e| e.to_string())?;
            offset += chunk.data.len() as u64;
            total += chunk.data.len() as u64;
            progress.inc_by(chunk.data.len() as u64);
        }
        out.sync_all().await.map_err(|e| e.to_string())?;
    }
    Ok(total)
}

/// Moves the fetched checkpoint into place as a new data directory, opens it, and records it in the
/// manifest: until the manifest says so, a restart still uses the old directory.
fn install_engine(
    dir: &Path,
    fetched: &Path,
    manifest: ReplicaManifest,
    writer: &ManifestWriter,
    options: &EngineOptions,
) -> Result<Engine, String> {
    let target = dir.join(&manifest.data_dir);
    std::fs::rename(fetched, &target).map_err(|e| format!("putting the checkpoint in place: {e}"))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| e.to_string())?;
    let engine = Engine::open(&target, options).map_err(|e| e.to_string())?;
    writer.set(manifest);
    writer.flush().map_err(|e| e.to_string())?;
    Ok(engine)
}

impl Handler<BeginLearning> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, begin: BeginLearning, ctx: &mut Self::Context) -> Self::Result {
        if self
            .learning
            .as_ref()
            .is_some_and(|l| l.ballot == begin.ballot && l.primary == begin.primary)
            && self.core.role() == ReplicaStatus::Learner
        {
            return Ok(());
        }
        let effects = self.core.begin_learning(begin.primary, begin.ballot)?;
        self.app = begin.app;
        self.run(effects, ctx);
        self.learning = Some(LearningState {
            primary: begin.primary,
            ballot: begin.ballot,
            stage: Stage::Learning,
            failures: 0,
        });
        info!(gpid = %self.gpid, ballot = begin.ballot, primary = %begin.primary, "learning from the primary");
        self.start_learning(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::Gpid;

    fn mutation(decree: i64) -> Mutation {
        Mutation {
            gpid: Gpid::new(1, 0),
            ballot: 1,
            decree,
            last_committed: decree - 1,
            timestamp_secs: 0,
            ops: vec![],
        }
    }

    fn batch(decrees: &[i64]) -> Vec<Mutation> {
        decrees.iter().copied().map(mutation).collect()
    }

    fn mutations(decrees: &[i64]) -> LearnResponse {
        LearnResponse::Mutations {
            source: LearnSource::Cache,
            mutations: batch(decrees),
        }
    }

    #[test]
    fn a_gap_free_batch_right_after_the_applied_decree_is_accepted() {
        assert!(check_contiguous(10, &batch(&[11, 12, 13]), &mutations(&[11, 12, 13])).is_ok());
    }

    #[test]
    fn batches_with_gaps_or_a_wrong_start_are_refused() {
        assert!(check_contiguous(10, &batch(&[11, 13]), &mutations(&[11, 13])).is_err());
        assert!(check_contiguous(10, &batch(&[12, 13]), &mutations(&[12, 13])).is_err());
        assert!(check_contiguous(10, &[], &mutations(&[])).is_err());
    }

    #[test]
    fn a_join_must_reach_the_committed_decree() {
        let short = LearnResponse::Joined {
            mutations: batch(&[11, 12]),
            committed: 13,
        };
        assert!(check_contiguous(10, &batch(&[11, 12]), &short)
            .unwrap_err()
            .contains("short of"));
        let complete = LearnResponse::Joined {
            mutations: vec![],
            committed: 10,
        };
        assert!(check_contiguous(10, &[], &complete).is_ok());
    }
}
