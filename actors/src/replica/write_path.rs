//! The write path of SPEC.md section 7, as the `Replica` actor hosts it: requests become events
//! of the replication core, and the core's effects are carried out here (log and apply pipelines,
//! prepares and group checks on the network, answers to waiting callers, timers).
//!
//! ```text
//!  client ─ClientWrite─► core.client_write ─► Log ∥ Prepare ─► secondaries
//!  log pipeline ─► core.logged ─┐   prepare answers ─► core.prepare_answered ─┐
//!                               └──────────► Apply ─► apply pipeline ─► core.applied ─► AnswerWrite
//! ```

use super::actor::{Replica, WriteWaiter};
use super::core::{AppliedLookup, Effect, PrepareFailure};
use super::pipelines::{Applied, LogWritten};
use super::validate::validate_write;
use crate::metrics::{MUTATIONS_COMMITTED, REPLICA_COUNT};
use actix::prelude::*;
use aerie_common::{clock::wall_secs_now, ErrorCode, NodeAddr, WireError, WireResult};
use aerie_proto::data::WriteResult;
use aerie_proto::replica::{ClientWrite, GroupCheck, Mutation, Prepare, PrepareAck, ReplicaStatus};
use aerie_rpc::Inbound;
use aerie_storage::Admission;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

impl Replica {
    /// Carries out the core's effects, in order.
    pub(super) fn run(&mut self, effects: Vec<Effect>, ctx: &mut Context<Self>) {
        let (mut log_queued, mut apply_queued) = (false, false);
        for effect in effects {
            match effect {
                Effect::Log(mutation) => {
                    self.log.enqueue(mutation);
                    log_queued = true;
                }
                Effect::LogCommitPoint(decree) => {
                    self.log.enqueue_commit_marker(decree);
                    log_queued = true;
                }
                Effect::Prepare { to, mutation } => self.send_prepare(to, mutation, ctx),
                Effect::GroupCheck { to, check } => self.send_group_check(to, check),
                Effect::Apply(mutations) => {
                    self.remember_committed(&mutations);
                    self.apply.enqueue(mutations);
                    apply_queued = true;
                }
                Effect::AnswerWrite { waiter, answer } => {
                    if let Some(waiter) = self.write_waiters.remove(&waiter) {
                        self.record_write(waiter.kind, waiter.started, &answer, waiter.bytes);
                        let _ = waiter.tx.send(answer);
                    }
                }
                Effect::AnswerPrepare { token, answer } => {
                    if let Some(tx) = self.ack_waiters.remove(&token) {
                        let _ = tx.send(answer);
                    }
                }
                Effect::AskMeta(change) => self.ask_meta(change, ctx),
                Effect::RefreshConfig => self.refresh_config(ctx),
                Effect::PersistBallot(_) => self.persist_manifest(),
                Effect::ResendLater(to) => {
                    ctx.run_later(self.options.prepare_retry_delay, move |act, ctx| {
                        let effects = act.core.resend_due(to);
                        act.run(effects, ctx);
                    });
                }
                Effect::GroupCheckLater => {
                    ctx.run_later(self.options.group_check_delay, |act, ctx| {
                        let effects = act.core.group_check_due();
                        act.run(effects, ctx);
                    });
                }
                Effect::StartLearner(learner) => self.start_learner(learner, ctx),
                Effect::LearnerDropped {
                    learner,
                    reason,
                    tell_meta,
                } => self.learner_dropped(learner, &reason, tell_meta),
                Effect::RoleChanged { from, to } => self.role_changed(from, to),
                Effect::Serving { committed } => {
                    info!(gpid = %self.gpid, ballot = self.core.ballot(), committed, "primary reconciled; serving")
                }
            }
        }
        if log_queued {
            self.kick_log(ctx);
        }
        // After every other effect of these events: applying reports back to the core, whose
        // effects then run in turn.
        if apply_queued {
            self.apply_queued(ctx);
        }
    }

    fn role_changed(&mut self, from: ReplicaStatus, to: ReplicaStatus) {
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(from)])
            .dec();
        REPLICA_COUNT
            .with_label_values(&[&self.node_label, Self::role_label(to)])
            .inc();
        info!(gpid = %self.gpid, ballot = self.core.ballot(), %from, %to, "replica role changed");
        if from == ReplicaStatus::Learner && self.learning.take().is_some() && to == ReplicaStatus::Secondary {
            info!(gpid = %self.gpid, ballot = self.core.ballot(), "learner upgraded to secondary");
        }
    }

    fn send_prepare(&self, to: NodeAddr, mutation: Arc<Mutation>, ctx: &mut Context<Self>) {
        let network = self.network.clone();
        let (decree, ballot) = (mutation.decree, mutation.ballot);
        let request = Prepare {
            mutation,
            primary: self.me,
        };
        let timeout = self.options.prepare_timeout;
        let call = async move { network.call(to, request, timeout).await };
        ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
            let answer = match answer {
                Ok(Ok(ack)) => Ok(ack),
                Ok(Err(e)) if e.code == ErrorCode::ERR_INVALID_VERSION => {
                    warn!(gpid = %act.gpid, ballot, secondary = %to, error = %e, "a secondary is at a newer ballot; refreshing the configuration");
                    Err(PrepareFailure::NewerBallot(e.to_string()))
                }
                Ok(Err(e)) => Err(PrepareFailure::Other(e.to_string())),
                Err(e) => Err(PrepareFailure::Other(e.to_string())),
            };
            if let Err(PrepareFailure::Other(why)) = &answer {
                debug!(gpid = %act.gpid, decree, ballot, secondary = %to, %why, "prepare failed");
            }
            let effects = act.core.prepare_answered(to, decree, ballot, answer);
            act.run(effects, ctx);
        }));
    }

    /// Sends the committed point to secondaries (fire and forget).
    fn send_group_check(&self, to: Vec<NodeAddr>, check: GroupCheck) {
        for secondary in to {
            let network = self.network.clone();
            let check = check.clone();
            let timeout = self.options.prepare_timeout;
            actix::spawn(async move {
                if let Err(e) = network.call(secondary, check, timeout).await {
                    debug!(%secondary, error = %e, "group check not delivered");
                }
            });
        }
    }

    pub(super) fn kick_log(&mut self, ctx: &mut Context<Self>) {
        if let Some(write) = self.log.start() {
            ctx.spawn(
                write
                    .into_actor(self)
                    .map(|written, act, ctx| act.on_logged(written, ctx)),
            );
        }
    }

    fn on_logged(&mut self, written: LogWritten, ctx: &mut Context<Self>) {
        self.log.finished();
        if let Err(reason) = written.result {
            return self.mark_broken(format!("mutation log write failed: {reason}"), ctx);
        }
        let effects = self.core.logged(&written.written, written.committed);
        self.run(effects, ctx);
        self.kick_log(ctx);
    }

    fn apply_queued(&mut self, ctx: &mut Context<Self>) {
        if let Some(applied) = self.apply.apply_queued() {
            self.on_applied(applied, ctx);
        }
    }

    fn on_applied(&mut self, applied: Applied, ctx: &mut Context<Self>) {
        let results = match applied.result {
            Ok(results) => results,
            Err(reason) => return self.mark_broken(format!("applying mutations failed: {reason}"), ctx),
        };
        let role = if self.core.role() == ReplicaStatus::Primary {
            "primary"
        } else {
            "secondary"
        };
        MUTATIONS_COMMITTED
            .with_label_values(&[&self.node_label, role])
            .inc_by(applied.mutations.len() as u64);
        let last = applied.mutations.last().map(|m| m.decree).unwrap_or(0);
        let answers = applied.mutations.iter().map(|m| m.decree).zip(results).collect();
        let effects = self.core.applied(last, answers);
        self.run(effects, ctx);
    }
}

impl Handler<Inbound<ClientWrite>> for Replica {
    type Result = ResponseFuture<WireResult<WriteResult>>;

    fn handle(&mut self, Inbound(req): Inbound<ClientWrite>, ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let kind = req.op.kind();
        let bytes = req.op.payload_bytes() as u64;
        if let Err(e) = validate_write(
            &req.op,
            self.gpid,
            self.app.partition_count,
            req.partition_count,
            &self.options.limits,
        ) {
            let result = Err(e);
            self.record_write(kind, started, &result, bytes);
            return Box::pin(async move { result });
        }
        let applied = match &req.request {
            None => AppliedLookup::NotApplied,
            Some(request) => match self.engine.session_lookup(request) {
                Admission::Fresh => AppliedLookup::NotApplied,
                Admission::Done(answer) => AppliedLookup::Applied(answer),
                Admission::Stale => AppliedLookup::Stale,
            },
        };
        let waiter = self.next_token();
        let (tx, rx) = oneshot::channel();
        self.write_waiters.insert(
            waiter,
            WriteWaiter {
                tx,
                kind,
                started,
                bytes,
            },
        );
        let effects = self
            .core
            .client_write(waiter, req.request, req.op, applied, &self.gate(), wall_secs_now());
        self.run(effects, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    ErrorCode::ERR_OUTCOME_UNKNOWN,
                    "the replica stopped before the write completed; it may or may not take effect",
                ))
            })
        })
    }
}

impl Handler<Inbound<Prepare>> for Replica {
    type Result = ResponseFuture<WireResult<PrepareAck>>;

    fn handle(&mut self, Inbound(req): Inbound<Prepare>, ctx: &mut Self::Context) -> Self::Result {
        let token = self.next_token();
        let (tx, rx) = oneshot::channel();
        self.ack_waiters.insert(token, tx);
        let effects = self.core.prepare(token, req.primary, req.mutation);
        self.run(effects, ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    ErrorCode::ERR_INVALID_STATE,
                    "the replica stopped before logging",
                ))
            })
        })
    }
}

impl Handler<Inbound<GroupCheck>> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(check): Inbound<GroupCheck>, ctx: &mut Self::Context) -> Self::Result {
        let effects = self
            .core
            .group_checked(check.primary, check.ballot, check.last_committed)?;
        self.run(effects, ctx);
        Ok(())
    }
}
