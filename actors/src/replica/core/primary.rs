//! The primary's side of the core: client writes, proposals, acknowledgements, commits in decree
//! order, reconciliation of what a new primary inherits, group checks, and learners joining.

use super::write_queue::QueuedWrite;
use super::{refuse, AppliedLookup, Effect, Gate, ReplicaCore, WaiterId};
use aerie_common::{Ballot, Decree, ErrorCode, NodeAddr, WireResult};
use aerie_proto::data::WriteOp;
use aerie_proto::meta::PartitionChange;
use aerie_proto::replica::{ClientRequest, GroupCheck, Mutation, MutationOp, PrepareAck, ReplicaStatus};
use std::sync::Arc;

/// Why a prepare did not come back acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepareFailure {
    /// The replica is at a newer ballot than this primary.
    NewerBallot(String),
    /// Refused for another reason, or never answered.
    Other(String),
}

impl ReplicaCore {
    /// A client write, already validated by the host. `applied` is what the host's session table
    /// says about the request.
    pub fn client_write(
        &mut self,
        waiter: WaiterId,
        request: Option<ClientRequest>,
        op: WriteOp,
        applied: AppliedLookup,
        gate: &Gate,
        wall_secs: u64,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let refused = self
            .check_not_broken()
            .and_then(|_| self.check_gate(gate))
            .and_then(|_| self.check_serving_primary());
        if let Err(e) = refused {
            out.push(Effect::AnswerWrite { waiter, answer: Err(e) });
            return out;
        }
        if let Some(request) = &request {
            if let Some(&(decree, index)) = self.requests.get(&request.key()) {
                // A retry of a write under way: wait for the same decree.
                self.write_waiters.entry(decree).or_default().push((waiter, index));
                return out;
            }
            if self.queued_writes.join(request.key(), waiter) {
                // A retry of a write still queued: it goes out once, with both waiting.
                return out;
            }
            match applied {
                AppliedLookup::Applied(answer) => {
                    out.push(Effect::AnswerWrite { waiter, answer });
                    return out;
                }
                AppliedLookup::Stale => {
                    out.push(Effect::AnswerWrite {
                        waiter,
                        answer: Err(refuse(
                            ErrorCode::ERR_OUTCOME_UNKNOWN,
                            "a retry of a write its client no longer waits for",
                        )),
                    });
                    return out;
                }
                AppliedLookup::NotApplied => {}
            }
        }
        if let Err(e) = self.check_write_capacity() {
            out.push(Effect::AnswerWrite { waiter, answer: Err(e) });
            return out;
        }
        self.queued_writes.push(QueuedWrite {
            op: MutationOp { request, op },
            waiters: vec![waiter],
            wall_secs,
        });
        self.propose_queued(&mut out);
        out
    }

    /// Proposes queued client writes while fewer than `max_proposals_in_flight` mutations are
    /// uncommitted (beyond the first, only once `pipeline_min_writes` are queued), as many per
    /// mutation as `max_batch_bytes` allows, in arrival order.
    fn propose_queued(&mut self, out: &mut Vec<Effect>) {
        if self.role != ReplicaStatus::Primary || !self.serving {
            return;
        }
        while self.may_propose_queued() {
            let batch = self.queued_writes.take_batch(self.options.max_batch_bytes);
            let wall_secs = batch.iter().map(|q| q.wall_secs).max().unwrap_or(0);
            let (ops, waiters): (Vec<MutationOp>, Vec<Vec<WaiterId>>) =
                batch.into_iter().map(|q| (q.op, q.waiters)).unzip();
            let decree = self.propose(ops, wall_secs, out);
            let waiting = self.write_waiters.entry(decree).or_default();
            for (index, attempts) in waiters.into_iter().enumerate() {
                waiting.extend(attempts.into_iter().map(|w| (w, index)));
            }
        }
    }

    fn may_propose_queued(&self) -> bool {
        let in_flight = self.list.uncommitted_count();
        let queued = &self.queued_writes;
        !queued.is_empty()
            && in_flight < self.options.max_proposals_in_flight
            && (in_flight == 0
                || queued.len() >= self.options.pipeline_min_writes
                || queued.payload_bytes() >= self.options.max_batch_bytes)
    }

    fn check_write_capacity(&self) -> WireResult<()> {
        let members = self.config().map(|c| c.replica_count()).unwrap_or(0);
        if members < self.options.min_replicas_for_write {
            return Err(refuse(
                ErrorCode::ERR_NOT_ENOUGH_MEMBER,
                format!(
                    "{} has {members} replica(s); a write needs at least {}",
                    self.gpid, self.options.min_replicas_for_write
                ),
            ));
        }
        let waiting = self.list.uncommitted_count() + self.queued_writes.len();
        if waiting >= self.options.max_uncommitted {
            return Err(refuse(
                ErrorCode::ERR_BUSY,
                format!(
                    "{} has {waiting} uncommitted writes; a secondary is slow or unreachable",
                    self.gpid
                ),
            ));
        }
        Ok(())
    }

    /// The nodes every new prepare goes to: secondaries, and learners that joined.
    pub fn prepare_targets(&self) -> Vec<NodeAddr> {
        let mut targets = self.secondaries();
        targets.extend(self.learners.iter().filter(|(_, joined)| **joined).map(|(n, _)| *n));
        targets
    }

    /// Assigns the next decree to `ops`, logs it and prepares it on every target.
    fn propose(&mut self, ops: Vec<MutationOp>, wall_secs: u64, out: &mut Vec<Effect>) -> Decree {
        debug_assert_eq!(self.config().map(|c| c.ballot), Some(self.ballot));
        let decree = self.next_decree;
        self.next_decree += 1;
        for (index, op) in ops.iter().enumerate() {
            if let Some(request) = &op.request {
                self.requests.insert(request.key(), (decree, index));
            }
        }
        let mutation = Arc::new(Mutation {
            gpid: self.gpid,
            ballot: self.ballot,
            decree,
            last_committed: self.list.last_committed(),
            timestamp_secs: wall_secs,
            ops,
        });
        let targets = self.prepare_targets();
        self.list.propose(mutation.clone(), targets.iter().copied());
        out.push(Effect::Log(mutation.clone()));
        for to in targets {
            out.push(self.prepare_effect(to, &mutation));
        }
        decree
    }

    /// A prepare of `mutation` to `to`, carrying the freshest committed point.
    fn prepare_effect(&self, to: NodeAddr, mutation: &Arc<Mutation>) -> Effect {
        let committed = self.list.last_committed();
        let mutation = if mutation.last_committed >= committed {
            mutation.clone()
        } else {
            Arc::new(Mutation {
                last_committed: committed,
                ..(**mutation).clone()
            })
        };
        Effect::Prepare { to, mutation }
    }

    /// Takes the primary role: re-proposes everything uncommitted under the current ballot (holes
    /// filled with no-ops) and serves once all of it is committed and applied. A primary that stays
    /// primary at a new ballot keeps its waiting writes: their decrees are re-proposed as they are.
    pub(super) fn become_primary(&mut self, wall_secs: u64, out: &mut Vec<Effect>) {
        if self.role == ReplicaStatus::Primary {
            self.upgrading = None;
            for learner in std::mem::take(&mut self.learners).into_keys() {
                out.push(Effect::LearnerDropped {
                    learner,
                    reason: "the configuration changed".to_string(),
                    tell_meta: false,
                });
            }
        } else {
            self.set_role(ReplicaStatus::Primary, out);
        }
        self.serving = false;
        self.resend_scheduled.clear();
        for (_, waiters) in std::mem::take(&mut self.ack_waiters) {
            for (_, token) in waiters {
                out.push(Effect::AnswerPrepare {
                    token,
                    answer: Err(refuse(ErrorCode::ERR_INVALID_STATE, "the replica became primary")),
                });
            }
        }
        let secondaries = self.secondaries();
        let relog = self.list.reconcile(self.gpid, self.ballot, &secondaries, wall_secs);
        for mutation in &relog {
            out.push(Effect::Log(mutation.clone()));
        }
        self.next_decree = self.list.last_prepared() + 1;
        self.reconciled_at = Some(self.list.last_prepared());
        // Requests already carried by a decree: a retry waits for that decree.
        self.requests.clear();
        let carried: Vec<((u64, u64), (Decree, usize))> = self
            .applying
            .iter()
            .chain(self.list.uncommitted().map(|e| &e.mutation))
            .flat_map(|m| {
                m.ops
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, op)| op.request.map(|r| (r.key(), (m.decree, i))))
            })
            .collect();
        self.requests.extend(carried);
        let inherited = self.uncommitted();
        for mutation in &inherited {
            for secondary in &secondaries {
                out.push(self.prepare_effect(*secondary, mutation));
            }
        }
        self.try_commit(out);
        self.check_reconciled(out);
    }

    /// Serves once everything inherited is committed and applied.
    pub(super) fn check_reconciled(&mut self, out: &mut Vec<Effect>) {
        if self.role != ReplicaStatus::Primary || self.serving {
            return;
        }
        let Some(target) = self.reconciled_at else {
            return;
        };
        if self.list.last_committed() >= target && self.last_applied >= target {
            self.serving = true;
            out.push(Effect::Serving {
                committed: self.list.last_committed(),
            });
            // Writes queued before a ballot change go out now.
            self.propose_queued(out);
        }
    }

    /// The answer to a prepare this primary sent.
    pub fn prepare_answered(
        &mut self,
        from: NodeAddr,
        decree: Decree,
        ballot: Ballot,
        answer: Result<PrepareAck, PrepareFailure>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.role != ReplicaStatus::Primary || self.ballot != ballot {
            return out;
        }
        let failure = match answer {
            Ok(ack) => {
                self.list.ack(ack.decree, from, ack.ballot);
                self.try_commit(&mut out);
                return out;
            }
            Err(PrepareFailure::NewerBallot(why)) if !self.learners.contains_key(&from) => {
                // This primary's view is stale: find out what the meta says.
                let _ = why;
                out.extend(self.refresh_config());
                return out;
            }
            Err(PrepareFailure::NewerBallot(why)) | Err(PrepareFailure::Other(why)) => why,
        };
        if self.upgrading == Some(from) {
            // Maybe a secondary already: keep waiting for it, and resend.
            if self.resend_scheduled.insert(from) {
                out.push(Effect::ResendLater(from));
            }
            return out;
        }
        if self.learners.contains_key(&from) {
            self.drop_learner(
                from,
                &format!("a prepare of decree {decree} failed: {failure}"),
                &mut out,
            );
            return out;
        }
        self.request_removal(from, &mut out);
        // One resend round per secondary, however many prepares to it failed.
        if self.resend_scheduled.insert(from) {
            out.push(Effect::ResendLater(from));
        }
        out
    }

    /// Resends `to` every uncommitted mutation of the current ballot it has not acknowledged.
    pub fn resend_due(&mut self, to: NodeAddr) -> Vec<Effect> {
        self.resend_scheduled.remove(&to);
        if self.role != ReplicaStatus::Primary {
            return Vec::new();
        }
        let ballot = self.ballot;
        let owed: Vec<Arc<Mutation>> = self
            .list
            .uncommitted()
            .filter(|e| e.mutation.ballot == ballot && e.awaiting.contains(&to))
            .map(|e| e.mutation.clone())
            .collect();
        owed.iter().map(|m| self.prepare_effect(to, m)).collect()
    }

    /// Asks the meta to take `secondary` out of the configuration, unless that would leave too
    /// few replicas to write: then the write path keeps resending (the meta's failure detector
    /// removes a node that is really gone).
    fn request_removal(&mut self, secondary: NodeAddr, out: &mut Vec<Effect>) {
        let members = self.config().map(|c| c.replica_count()).unwrap_or(0);
        if members <= self.options.min_replicas_for_write || self.meta_request_in_flight {
            return;
        }
        if self.take_meta_slot() {
            out.push(Effect::AskMeta(PartitionChange::RemoveSecondary(secondary)));
        }
    }

    /// Commits what is logged here and acknowledged everywhere, in decree order.
    pub(super) fn try_commit(&mut self, out: &mut Vec<Effect>) {
        let committed = self.list.take_committable();
        if committed.is_empty() {
            return;
        }
        self.hand_to_apply(committed, out);
        self.propose_queued(out);
        if self.list.uncommitted_count() == 0 {
            self.schedule_group_check(out);
            self.note_commit_point(out);
        }
        self.check_reconciled(out);
    }

    /// Tells the secondaries the committed point soon, unless a prepare carries it first.
    fn schedule_group_check(&mut self, out: &mut Vec<Effect>) {
        if !self.group_check_scheduled {
            self.group_check_scheduled = true;
            out.push(Effect::GroupCheckLater);
        }
    }

    /// The delay after `GroupCheckLater` passed.
    pub fn group_check_due(&mut self) -> Vec<Effect> {
        self.group_check_scheduled = false;
        self.group_check()
    }

    /// Primary: the committed point, for every secondary (also sent periodically by the host).
    pub fn group_check(&self) -> Vec<Effect> {
        let to = self.secondaries();
        if self.role != ReplicaStatus::Primary || to.is_empty() {
            return Vec::new();
        }
        vec![Effect::GroupCheck {
            to,
            check: GroupCheck {
                gpid: self.gpid,
                ballot: self.ballot,
                last_committed: self.list.last_committed(),
                primary: self.me,
            },
        }]
    }

    /// Primary: the meta asked to add `learner` at `ballot`. A request at a newer ballot than this
    /// replica's means it missed a configuration: it asks the meta (and the meta asks again).
    pub fn add_learner(&mut self, learner: NodeAddr, ballot: Ballot) -> (WireResult<()>, Vec<Effect>) {
        if ballot > self.ballot {
            let refused = Err(refuse(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "add learner at ballot {ballot}, but {} is at ballot {}; refreshing",
                    self.gpid, self.ballot
                ),
            ));
            return (refused, self.refresh_config());
        }
        match self.start_adding_learner(learner, ballot) {
            Ok(effects) => (Ok(()), effects),
            Err(e) => (Err(e), Vec::new()),
        }
    }

    fn start_adding_learner(&mut self, learner: NodeAddr, ballot: Ballot) -> WireResult<Vec<Effect>> {
        self.check_serving_primary()?;
        if ballot != self.ballot {
            return Err(refuse(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "add learner at ballot {ballot}, but {} is at ballot {}",
                    self.gpid, self.ballot
                ),
            ));
        }
        if self.config().is_some_and(|c| c.is_member(learner)) {
            return Err(refuse(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("{learner} already serves {}", self.gpid),
            ));
        }
        self.learners.entry(learner).or_insert(false);
        // Asked again (the meta's earlier attempt timed out, or the learner gave up meanwhile):
        // starting learning is idempotent on the learner's side.
        Ok(vec![Effect::StartLearner(learner)])
    }

    /// Primary: checks a learner's request at `ballot`.
    pub fn check_learner(&self, learner: NodeAddr, ballot: Ballot) -> WireResult<()> {
        self.check_serving_primary()?;
        if ballot != self.ballot {
            return Err(refuse(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "learning at ballot {ballot}, but {} is at ballot {}",
                    self.gpid, self.ballot
                ),
            ));
        }
        if !self.learners.contains_key(&learner) {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!("{learner} has no learning session for {} here", self.gpid),
            ));
        }
        Ok(())
    }

    /// Primary: `learner` has every committed mutation and joins the prepare stream: from now on
    /// every uncommitted mutation waits for its acknowledgement too. Returns the committed decree
    /// it joined at.
    pub fn learner_joined(&mut self, learner: NodeAddr) -> (Decree, Vec<Effect>) {
        let mut out = Vec::new();
        if let Some(joined) = self.learners.get_mut(&learner) {
            *joined = true;
        }
        self.list.add_member(learner);
        for mutation in self.uncommitted() {
            out.push(self.prepare_effect(learner, &mutation));
        }
        (self.list.last_committed(), out)
    }

    /// Primary: the learner caught up and made its state durable; ask for its upgrade.
    pub fn learner_completed(&mut self, learner: NodeAddr) -> WireResult<Vec<Effect>> {
        if !self.learners.get(&learner).copied().unwrap_or(false) {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!("{learner} has not joined the prepare stream yet"),
            ));
        }
        if !self.take_meta_slot() {
            return Err(refuse(
                ErrorCode::ERR_BUSY,
                "another configuration request is under way",
            ));
        }
        self.upgrading = Some(learner);
        Ok(vec![Effect::AskMeta(PartitionChange::UpgradeLearner(learner))])
    }

    /// Primary: stops learning on `learner` (nothing waits for it any more), unless its upgrade
    /// to secondary may have been made.
    pub fn drop_learner(&mut self, learner: NodeAddr, reason: &str, out: &mut Vec<Effect>) {
        if self.upgrading == Some(learner) || self.learners.remove(&learner).is_none() {
            return;
        }
        self.list.remove_member(learner);
        out.push(Effect::LearnerDropped {
            learner,
            reason: reason.to_string(),
            tell_meta: true,
        });
        self.try_commit(out);
    }

    /// The host could not start learning on `learner`.
    pub fn learner_failed(&mut self, learner: NodeAddr, reason: &str) -> Vec<Effect> {
        let mut out = Vec::new();
        self.drop_learner(learner, reason, &mut out);
        out
    }
}
