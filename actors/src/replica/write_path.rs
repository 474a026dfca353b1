//! The write path of SPEC.md section 7, as the `Replica` actor runs it.
//!
//! ```text
//!  client ─ClientWrite─► primary: decree d = next; log(d) ∥ Prepare(d) ─► each secondary: log(d), ack
//!                        primary: d logged here and acked by all, d-1 committed ─► commit d ─► apply ─► OK
//!                        secondaries learn the committed point from the next Prepare or a GroupCheck
//! ```
//!
//! A prepare that fails makes the primary ask the meta to remove that secondary (see
//! `reconfigure`); until the configuration changes, what the secondary lacks is resent after a
//! delay. A new primary re-proposes every uncommitted mutation under its ballot before it serves.

use super::actor::{Replica, WriteWaiter};
use super::pipelines::{Applied, LogWritten};
use super::prepare_list::{PrepareOutcome, Reject};
use super::validate::validate_write;
use crate::metrics::{LOG_GROUP_COMMITS, LOG_WRITTEN_BYTES, MUTATIONS_COMMITTED};
use actix::prelude::*;
use aerie_common::{clock::wall_secs_now, Ballot, Decree, ErrorCode, NodeAddr, WireError, WireResult};
use aerie_proto::data::{WriteOp, WriteResult};
use aerie_proto::replica::{ClientWrite, GroupCheck, Mutation, Prepare, PrepareAck, ReplicaStatus};
use aerie_rpc::{Inbound, RpcError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

impl Replica {
    fn check_write_capacity(&self) -> WireResult<()> {
        let members = self.config.as_ref().map(|c| c.replica_count()).unwrap_or(0);
        if members < self.options.min_replicas_for_write {
            return Err(WireError::new(
                ErrorCode::ERR_NOT_ENOUGH_MEMBER,
                format!(
                    "{} has {members} replica(s); a write needs at least {}",
                    self.gpid, self.options.min_replicas_for_write
                ),
            ));
        }
        if self.list.uncommitted_count() >= self.options.max_uncommitted {
            return Err(WireError::new(
                ErrorCode::ERR_BUSY,
                format!(
                    "{} has {} uncommitted writes; a secondary is slow or unreachable",
                    self.gpid,
                    self.list.uncommitted_count()
                ),
            ));
        }
        Ok(())
    }

    /// Primary: assigns the next decree to `ops`, logs it and prepares it on every secondary.
    fn propose(&mut self, ops: Vec<WriteOp>, ctx: &mut Context<Self>) -> Decree {
        let decree = self.next_decree;
        self.next_decree += 1;
        let mutation = Arc::new(Mutation {
            gpid: self.gpid,
            ballot: self.ballot,
            decree,
            last_committed: self.list.last_committed(),
            timestamp_secs: wall_secs_now(),
            ops,
        });
        let targets = self.prepare_targets();
        self.list.propose(mutation.clone(), targets.iter().copied());
        self.log.enqueue(mutation.clone());
        self.kick_log(ctx);
        for target in targets {
            self.send_prepare(target, mutation.clone(), ctx);
        }
        decree
    }

    pub(super) fn send_prepare(&self, to: NodeAddr, mutation: Arc<Mutation>, ctx: &mut Context<Self>) {
        let network = self.network.clone();
        let request = Prepare {
            mutation: Mutation {
                // Carry the freshest committed point: it lets the secondary commit sooner.
                last_committed: self.list.last_committed().max(mutation.last_committed),
                ..(*mutation).clone()
            },
            primary: self.me,
        };
        let (decree, ballot) = (mutation.decree, mutation.ballot);
        let timeout = self.options.prepare_timeout;
        let call = async move { network.call(to, request, timeout).await };
        ctx.spawn(
            call.into_actor(self)
                .map(move |answer, act, ctx| act.on_prepare_answer(to, decree, ballot, answer, ctx)),
        );
    }

    fn on_prepare_answer(
        &mut self,
        from: NodeAddr,
        decree: Decree,
        ballot: Ballot,
        answer: Result<WireResult<PrepareAck>, RpcError>,
        ctx: &mut Context<Self>,
    ) {
        if self.status != ReplicaStatus::Primary || self.ballot != ballot {
            return;
        }
        let failure = match answer {
            Ok(Ok(ack)) => {
                self.list.ack(ack.decree, from, ack.ballot);
                self.try_commit(ctx);
                return;
            }
            // The secondary knows a newer ballot: this primary's view is stale.
            Ok(Err(e)) if e.code == ErrorCode::ERR_INVALID_VERSION && !self.is_learner(from) => {
                warn!(gpid = %self.gpid, ballot, secondary = %from, error = %e, "a secondary is at a newer ballot; refreshing the configuration");
                self.refresh_config(ctx);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        if self.is_learner(from) {
            return self.drop_learner(from, &format!("a prepare failed: {failure}"), ctx);
        }
        self.request_removal(from, ctx);
        // One retry round per secondary, however many prepares to it failed.
        if self.retry_scheduled.insert(from) {
            warn!(gpid = %self.gpid, decree, ballot, secondary = %from, %failure, "prepare failed; resending what the secondary lacks shortly");
            ctx.run_later(self.options.prepare_retry_delay, move |act, ctx| {
                act.retry_scheduled.remove(&from);
                act.resend_prepares(from, ctx);
            });
        }
    }

    /// Primary: sends `to` again every uncommitted mutation of the current ballot it has not
    /// acknowledged. (The ballot may have changed since the failure that scheduled this round.)
    fn resend_prepares(&mut self, to: NodeAddr, ctx: &mut Context<Self>) {
        if self.status != ReplicaStatus::Primary {
            return;
        }
        let ballot = self.ballot;
        let owed: Vec<Arc<Mutation>> = self
            .list
            .uncommitted()
            .filter(|e| e.mutation.ballot == ballot && e.awaiting.contains(&to))
            .map(|e| e.mutation.clone())
            .collect();
        for mutation in owed {
            self.send_prepare(to, mutation, ctx);
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
        match written.result {
            Ok(bytes) => {
                LOG_WRITTEN_BYTES.with_label_values(&[&self.node_label]).inc_by(bytes);
                LOG_GROUP_COMMITS.with_label_values(&[&self.node_label]).inc();
            }
            Err(reason) => return self.mark_broken(format!("mutation log write failed: {reason}")),
        }
        self.durable_committed = self.durable_committed.max(written.committed);
        for (decree, ballot) in written.written {
            self.list.mark_logged(decree, ballot);
            if let Some(waiters) = self.ack_waiters.remove(&decree) {
                let (ready, later): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|(b, _)| *b == ballot);
                for (_, tx) in ready {
                    let _ = tx.send(Ok(PrepareAck { decree, ballot }));
                }
                if !later.is_empty() {
                    self.ack_waiters.insert(decree, later);
                }
            }
        }
        match self.status {
            ReplicaStatus::Primary => self.try_commit(ctx),
            _ => self.commit_as_secondary(ctx),
        }
        self.kick_log(ctx);
    }

    /// Primary: commits what is logged and acked everywhere, in decree order.
    pub(super) fn try_commit(&mut self, ctx: &mut Context<Self>) {
        let committed = self.list.take_committable();
        if committed.is_empty() {
            return;
        }
        // Remembered as they commit (not as they apply): a learner joining now gets all of them.
        self.remember_committed(&committed);
        self.apply.enqueue(committed);
        self.kick_apply(ctx);
        if self.list.uncommitted_count() == 0 {
            self.schedule_group_check(ctx);
            self.note_commit_point(ctx);
        }
        if !self.serving && self.list.uncommitted_count() == 0 && self.status == ReplicaStatus::Primary {
            self.serving = true;
            info!(gpid = %self.gpid, ballot = self.ballot, committed = self.list.last_committed(), "primary reconciled; serving");
        }
    }

    pub(super) fn commit_as_secondary(&mut self, ctx: &mut Context<Self>) {
        let committed = self.list.commit_up_to(self.primary_committed);
        if !committed.is_empty() {
            self.remember_committed(&committed);
            self.apply.enqueue(committed);
            self.kick_apply(ctx);
        }
    }

    /// Writes the committed decree to the log when no mutation is about to carry it, so that a
    /// restart knows exactly what it may apply (and a rejoin need not learn its own last writes).
    fn note_commit_point(&mut self, ctx: &mut Context<Self>) {
        let committed = self.list.last_committed();
        if committed > self.last_commit_marker {
            self.last_commit_marker = committed;
            self.log.enqueue_commit_marker(committed);
            self.kick_log(ctx);
        }
    }

    /// Tells the secondaries the committed point soon, unless a prepare carries it first.
    fn schedule_group_check(&mut self, ctx: &mut Context<Self>) {
        if self.group_check_scheduled {
            return;
        }
        self.group_check_scheduled = true;
        ctx.run_later(self.options.group_check_delay, |act, _| {
            act.group_check_scheduled = false;
            act.send_group_check();
        });
    }

    /// Primary: sends every secondary the committed point (fire and forget).
    pub(super) fn send_group_check(&self) {
        if self.status != ReplicaStatus::Primary {
            return;
        }
        let check = GroupCheck {
            gpid: self.gpid,
            ballot: self.ballot,
            last_committed: self.list.last_committed(),
        };
        for secondary in self.secondaries() {
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

    fn kick_apply(&mut self, ctx: &mut Context<Self>) {
        if let Some(batch) = self.apply.start() {
            ctx.spawn(
                batch
                    .into_actor(self)
                    .map(|applied, act, ctx| act.on_applied(applied, ctx)),
            );
        }
    }

    fn on_applied(&mut self, applied: Applied, ctx: &mut Context<Self>) {
        self.apply.finished();
        let results = match applied.result {
            Ok(results) => results,
            Err(reason) => return self.mark_broken(format!("applying mutations failed: {reason}")),
        };
        let role = if self.status == ReplicaStatus::Primary {
            "primary"
        } else {
            "secondary"
        };
        MUTATIONS_COMMITTED
            .with_label_values(&[&self.node_label, role])
            .inc_by(applied.mutations.len() as u64);
        for (mutation, mut op_results) in applied.mutations.iter().zip(results) {
            self.last_applied = mutation.decree;
            if let Some(waiter) = self.write_waiters.remove(&mutation.decree) {
                let result = if op_results.is_empty() {
                    Ok(WriteResult::Done)
                } else {
                    op_results.swap_remove(0)
                };
                self.record_request(waiter.kind, waiter.started, &result);
                let _ = waiter.tx.send(result);
            }
        }
        self.kick_apply(ctx);
    }

    /// Takes the primary role: re-proposes every uncommitted mutation under the current ballot and
    /// serves once they are all committed.
    pub(super) fn become_primary(&mut self, ctx: &mut Context<Self>) {
        self.forget_learners();
        self.learning = None;
        self.set_status(ReplicaStatus::Primary);
        self.serving = false;
        self.ack_waiters.clear();
        let secondaries = self.secondaries();
        for mutation in self.list.reconcile(self.ballot, &secondaries) {
            self.log.enqueue(mutation);
        }
        self.kick_log(ctx);
        self.next_decree = self.list.last_prepared() + 1;
        let inherited: Vec<Arc<Mutation>> = self.list.uncommitted().map(|e| e.mutation.clone()).collect();
        info!(
            gpid = %self.gpid,
            ballot = self.ballot,
            committed = self.list.last_committed(),
            inherited = inherited.len(),
            "becoming primary"
        );
        for mutation in inherited {
            for secondary in &secondaries {
                self.send_prepare(*secondary, mutation.clone(), ctx);
            }
        }
        self.try_commit(ctx);
        if self.list.uncommitted_count() == 0 && !self.serving {
            self.serving = true;
            info!(gpid = %self.gpid, ballot = self.ballot, "primary serving");
        }
    }
}

impl Handler<Inbound<ClientWrite>> for Replica {
    type Result = ResponseFuture<WireResult<WriteResult>>;

    fn handle(&mut self, Inbound(req): Inbound<ClientWrite>, ctx: &mut Self::Context) -> Self::Result {
        let started = Instant::now();
        let kind = req.op.kind();
        let checked = self
            .check_primary_ready()
            .and_then(|_| self.check_write_capacity())
            .and_then(|_| {
                validate_write(
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
            return Box::pin(async move { result });
        }
        let decree = self.propose(vec![req.op], ctx);
        let (tx, rx) = oneshot::channel();
        self.write_waiters.insert(decree, WriteWaiter { tx, kind, started });
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(WireError::new(
                    ErrorCode::ERR_INVALID_STATE,
                    "the replica stopped before the write completed",
                ))
            })
        })
    }
}

impl Handler<Inbound<Prepare>> for Replica {
    type Result = ResponseFuture<WireResult<PrepareAck>>;

    fn handle(&mut self, Inbound(req): Inbound<Prepare>, ctx: &mut Self::Context) -> Self::Result {
        let answer = |r: WireResult<PrepareAck>| -> Self::Result { Box::pin(async move { r }) };
        let mutation = Arc::new(req.mutation);
        let (decree, ballot) = (mutation.decree, mutation.ballot);
        if let Some(reason) = &self.broken {
            return answer(Err(WireError::new(ErrorCode::ERR_STORAGE, reason.clone())));
        }
        if mutation.gpid != self.gpid {
            return answer(Err(WireError::new(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("prepare for {} sent to {}", mutation.gpid, self.gpid),
            )));
        }
        if self.status == ReplicaStatus::Primary && ballot <= self.ballot {
            return answer(Err(WireError::new(
                ErrorCode::ERR_INVALID_STATE,
                format!("{} is the primary of {} at ballot {}", self.me, self.gpid, self.ballot),
            )));
        }
        let outcome = match self.list.accept_prepare(mutation.clone(), self.ballot) {
            Ok(outcome) => outcome,
            Err(Reject::StaleBallot { ours, theirs }) => {
                return answer(Err(WireError::new(
                    ErrorCode::ERR_INVALID_VERSION,
                    format!(
                        "prepare at ballot {theirs} is older than ballot {ours} of {}",
                        self.gpid
                    ),
                )))
            }
        };
        if ballot > self.ballot {
            self.ballot = ballot;
        }
        self.primary_committed = self.primary_committed.max(mutation.last_committed);
        let reply = match outcome {
            PrepareOutcome::AlreadyCommitted | PrepareOutcome::AlreadyLogged => {
                answer(Ok(PrepareAck { decree, ballot }))
            }
            PrepareOutcome::NeedsLogging => {
                self.log.enqueue(mutation);
                self.kick_log(ctx);
                let (tx, rx) = oneshot::channel();
                self.ack_waiters.entry(decree).or_default().push((ballot, tx));
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(WireError::new(
                            ErrorCode::ERR_INVALID_STATE,
                            "the replica stopped before logging",
                        ))
                    })
                })
            }
        };
        self.commit_as_secondary(ctx);
        reply
    }
}

impl Handler<Inbound<GroupCheck>> for Replica {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(check): Inbound<GroupCheck>, ctx: &mut Self::Context) -> Self::Result {
        if check.ballot < self.ballot {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "group check at ballot {} is older than ballot {}",
                    check.ballot, self.ballot
                ),
            ));
        }
        if self.status == ReplicaStatus::Primary {
            return Err(WireError::new(
                ErrorCode::ERR_INVALID_STATE,
                "a primary does not take group checks",
            ));
        }
        self.primary_committed = self.primary_committed.max(check.last_committed);
        self.commit_as_secondary(ctx);
        self.note_commit_point(ctx);
        Ok(())
    }
}
