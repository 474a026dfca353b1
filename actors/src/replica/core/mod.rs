//! The replication core: one partition replica's PacificA state machine, with no I/O and no clock.
//! The host (the `Replica` actor, or the simulator) feeds it events and carries out the
//! [`Effect`]s it returns, reporting their outcome as further events (Openraft's engine is the
//! model).
//!
//! ```text
//!   client write ─► gate ─► dedup ─► propose(d) ─► Log(d) ∥ Prepare(d) to every secondary
//!   logged(d) / prepare_answered(d) ─► commit in decree order ─► Apply ─► applied ─► AnswerWrite
//!   prepare(from, m) ─► ballot and sender checks ─► Log(m) ─► logged ─► AnswerPrepare
//!   update_config(c) ─► role: primary (reconcile, fill holes) | secondary | inactive
//! ```
//!
//! Invariants it keeps:
//! - A primary proposes only at the ballot of its own configuration; a replica that sees a higher
//!   ballot while primary steps down first, and every write it had proposed is answered
//!   `ERR_OUTCOME_UNKNOWN` (a new primary may still commit it).
//! - A prepare is taken only from the primary of its ballot; a decree is never given a different
//!   write at the same ballot.
//! - Reads and writes are served only through the [`Gate`]: the replica server's lease is valid at
//!   the moment of the request, and the configuration came from the meta view the lease belongs to.
//! - A new primary re-proposes everything it inherited (holes filled with no-ops) and serves only
//!   once all of it is committed and applied.
//! - A client request (session, seq) is proposed at most once per primary: a retry joins the
//!   decree already carrying it, or gets the answer recorded when it was applied.

#[cfg(test)]
mod batching_tests;
mod effects;
mod primary;
mod secondary;
#[cfg(test)]
mod tests;
mod write_queue;

pub use effects::{AckToken, Effect, WaiterId};
pub use primary::PrepareFailure;

use super::prepare_list::PrepareList;
use aerie_common::{Ballot, Decree, ErrorCode, Gpid, NodeAddr, WireError, WireResult};
use aerie_proto::meta::PartitionConfig;
use aerie_proto::replica::{Mutation, ReplicaStatus};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use write_queue::WriteQueue;

/// Settings of the core.
#[derive(Debug, Clone, Copy)]
pub struct CoreOptions {
    /// Replicas a write needs (`mutation_2pc_min_replica_count`).
    pub min_replicas_for_write: usize,
    /// Uncommitted writes (proposed or queued) beyond which new ones are refused (`ERR_BUSY`).
    pub max_uncommitted: usize,
    /// Primary: mutations proposed and not committed yet at which client writes start to queue;
    /// the queued writes go out together in one mutation when one commits (Pegasus's batched
    /// writes). Under load, mutations grow by themselves; at low load a write goes out at once.
    pub max_proposals_in_flight: usize,
    /// Primary: a mutation beyond the first in flight is proposed only once this many writes (or
    /// `max_batch_bytes` of them) are queued. Every mutation costs the same two prepares, three
    /// log appends and three engine writes whatever it carries, so a partition under moderate
    /// load does better sending one larger mutation at a time; a deep queue still keeps
    /// `max_proposals_in_flight` of them in flight.
    pub pipeline_min_writes: usize,
    /// Primary: the most key and value bytes one batched mutation carries (a larger write goes
    /// alone).
    pub max_batch_bytes: usize,
}

/// What a request is checked against: the replica server's lease at the moment of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// The host's monotonic clock now.
    pub now_ms: u64,
    /// When the lease runs out (same clock); `None` while there is none.
    pub lease_until_ms: Option<u64>,
    /// The meta's name for this server's current life (from the acknowledged beacons).
    pub incarnation: u64,
}

/// What the host found about a client request in the applied data (its session table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliedLookup {
    NotApplied,
    Applied(WireResult<aerie_proto::data::WriteResult>),
    /// Older than what its client still waits for.
    Stale,
}

/// The meta's answer to an `AskMeta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaAnswer {
    Config(PartitionConfig),
    /// The meta is at another ballot: refresh.
    Stale,
    /// The meta refused the change: it did not and will not make it.
    Refused,
    /// No answer: the change may or may not have been made.
    Unknown,
}

pub struct ReplicaCore {
    gpid: Gpid,
    me: NodeAddr,
    options: CoreOptions,
    role: ReplicaStatus,
    ballot: Ballot,
    /// The configuration at `ballot`, as the meta sent it (`None` when only a prepare said so).
    config: Option<PartitionConfig>,
    /// The primary at `ballot`, as far as this replica knows.
    primary: Option<NodeAddr>,
    /// The meta view (incarnation) the configuration came from.
    incarnation: Option<u64>,
    list: PrepareList,
    next_decree: Decree,
    /// Committed and handed to the host to apply, not applied yet (decree order).
    applying: VecDeque<Arc<Mutation>>,
    last_applied: Decree,
    /// Primary: serves once this decree (the last one it inherited) is applied.
    reconciled_at: Option<Decree>,
    serving: bool,
    /// Secondary: the primary's committed decree, as last heard.
    primary_committed: Decree,
    /// Primary: client writes waiting for a proposal slot, in arrival order.
    queued_writes: WriteQueue,
    /// Client writes waiting for their decree to apply: (waiter, operation index).
    write_waiters: BTreeMap<Decree, Vec<(WaiterId, usize)>>,
    /// Primary: every client request proposed or inherited and not applied yet, with its
    /// (decree, operation index).
    requests: BTreeMap<(u64, u64), (Decree, usize)>,
    /// Prepares to acknowledge once their decree is logged at that ballot.
    ack_waiters: BTreeMap<Decree, Vec<(Ballot, AckToken)>>,
    /// Primary: learners, and whether they joined the prepare stream.
    learners: BTreeMap<NodeAddr, bool>,
    /// Primary: the learner whose upgrade to secondary the meta was asked for. Until the answer
    /// is known it counts as a member (the meta may already have made it a secondary, and a
    /// secondary must hold every committed decree): it is not dropped when a prepare to it fails.
    upgrading: Option<NodeAddr>,
    /// Primary: secondaries with a round of prepare resends scheduled.
    resend_scheduled: BTreeSet<NodeAddr>,
    group_check_scheduled: bool,
    meta_request_in_flight: bool,
    /// The committed decree last written to the log as a marker.
    last_commit_marker: Decree,
    /// The highest committed decree the log durably records.
    durable_committed: Decree,
    /// Storage failed: everything is refused until the replica is reopened.
    broken: Option<String>,
}

fn refuse(code: ErrorCode, detail: impl Into<String>) -> WireError {
    WireError::new(code, detail)
}

/// What a replica reopened from disk holds.
pub struct Restored {
    pub ballot: Ballot,
    pub last_committed: Decree,
    pub last_applied: Decree,
    /// Logged but not known committed, in decree order.
    pub uncommitted: Vec<Arc<Mutation>>,
}

impl ReplicaCore {
    pub fn new(gpid: Gpid, me: NodeAddr, options: CoreOptions, restored: Restored) -> Self {
        let mut list = PrepareList::new(restored.last_committed);
        for mutation in restored.uncommitted {
            list.restore_logged(mutation);
        }
        ReplicaCore {
            gpid,
            me,
            options,
            role: ReplicaStatus::Inactive,
            ballot: restored.ballot,
            config: None,
            primary: None,
            incarnation: None,
            next_decree: list.last_prepared() + 1,
            list,
            applying: VecDeque::new(),
            last_applied: restored.last_applied,
            reconciled_at: None,
            serving: false,
            primary_committed: restored.last_committed,
            queued_writes: WriteQueue::default(),
            write_waiters: BTreeMap::new(),
            requests: BTreeMap::new(),
            ack_waiters: BTreeMap::new(),
            learners: BTreeMap::new(),
            upgrading: None,
            resend_scheduled: BTreeSet::new(),
            group_check_scheduled: false,
            meta_request_in_flight: false,
            last_commit_marker: restored.last_committed,
            durable_committed: restored.last_committed,
            broken: None,
        }
    }

    pub fn gpid(&self) -> Gpid {
        self.gpid
    }

    pub fn role(&self) -> ReplicaStatus {
        self.role
    }

    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// The configuration at the replica's ballot, if the meta sent it.
    pub fn config(&self) -> Option<&PartitionConfig> {
        self.config.as_ref().filter(|c| c.ballot == self.ballot)
    }

    pub fn primary(&self) -> Option<NodeAddr> {
        self.primary
    }

    pub fn last_prepared(&self) -> Decree {
        self.list.last_prepared()
    }

    pub fn last_committed(&self) -> Decree {
        self.list.last_committed()
    }

    pub fn last_applied(&self) -> Decree {
        self.last_applied
    }

    pub fn durable_committed(&self) -> Decree {
        self.durable_committed
    }

    pub fn uncommitted_count(&self) -> usize {
        self.list.uncommitted_count()
    }

    /// Every mutation not committed yet, in decree order (for a learner joining).
    pub fn uncommitted(&self) -> Vec<Arc<Mutation>> {
        self.list.uncommitted().map(|e| e.mutation.clone()).collect()
    }

    pub fn is_serving(&self) -> bool {
        self.serving
    }

    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// A one-line account of the replica's state, for logs and failure reports.
    pub fn describe(&self) -> String {
        let pending: Vec<String> = self
            .list
            .uncommitted()
            .take(5)
            .map(|e| {
                format!(
                    "{}@{}{}",
                    e.mutation.decree,
                    e.mutation.ballot,
                    if e.logged { "" } else { " (logging)" }
                )
            })
            .collect();
        format!(
            "{} at ballot {} (primary {:?}), committed {}, applied {}, prepared {}, primary's committed {}, applying {}, uncommitted {} [{}], queued writes {}",
            self.role,
            self.ballot,
            self.primary,
            self.list.last_committed(),
            self.last_applied,
            self.list.last_prepared(),
            self.primary_committed,
            self.applying.len(),
            self.list.uncommitted_count(),
            pending.join(", "),
            self.queued_writes.len()
        )
    }

    pub fn learners(&self) -> impl Iterator<Item = (NodeAddr, bool)> + '_ {
        self.learners.iter().map(|(n, joined)| (*n, *joined))
    }

    /// The secondaries of the current configuration.
    pub fn secondaries(&self) -> Vec<NodeAddr> {
        self.config().map(|c| c.secondaries.clone()).unwrap_or_default()
    }

    fn set_role(&mut self, role: ReplicaStatus, out: &mut Vec<Effect>) {
        if role != self.role {
            out.push(Effect::RoleChanged {
                from: self.role,
                to: role,
            });
            self.role = role;
        }
    }

    /// The lease holds now, and the configuration belongs to the meta view it was granted in.
    fn check_gate(&self, gate: &Gate) -> WireResult<()> {
        let lease_holds = gate.lease_until_ms.is_some_and(|until| gate.now_ms < until);
        if !lease_holds {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "{} holds no valid lease; it serves nothing until the meta acknowledges its beacons",
                    self.me
                ),
            ));
        }
        if self.incarnation != Some(gate.incarnation) {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "the configuration of {} predates this server's current lease; waiting for the meta's view",
                    self.gpid
                ),
            ));
        }
        Ok(())
    }

    fn check_not_broken(&self) -> WireResult<()> {
        match &self.broken {
            Some(reason) => Err(refuse(
                ErrorCode::ERR_STORAGE,
                format!("replica {} is out of service: {reason}", self.gpid),
            )),
            None => Ok(()),
        }
    }

    /// Checks a client read; `Ok` means the host may read its engine now.
    pub fn check_read(&self, gate: &Gate) -> WireResult<()> {
        self.check_not_broken()?;
        self.check_gate(gate)?;
        self.check_serving_primary()
    }

    /// Primary, reconciled and applied: may serve (also learners' requests).
    pub fn check_serving_primary(&self) -> WireResult<()> {
        self.check_not_broken()?;
        if self.role != ReplicaStatus::Primary {
            return Err(refuse(
                ErrorCode::ERR_NOT_PRIMARY,
                format!(
                    "{} is not the primary of {} (it is {} at ballot {})",
                    self.me, self.gpid, self.role, self.ballot
                ),
            ));
        }
        if !self.serving {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "the primary of {} is still committing and applying what it inherited; retry shortly",
                    self.gpid
                ),
            ));
        }
        Ok(())
    }

    /// Every client write waiting is answered: a proposed one's outcome is unknown (a later
    /// primary may commit it); one still queued was never proposed and fails with `code`. Every
    /// pending acknowledgement fails with `code`.
    fn fail_waiters(&mut self, code: ErrorCode, reason: &str, out: &mut Vec<Effect>) {
        for queued in self.queued_writes.take_all() {
            for waiter in queued.waiters {
                out.push(Effect::AnswerWrite {
                    waiter,
                    answer: Err(refuse(
                        code,
                        format!("{reason}; the write was not proposed and does not take effect"),
                    )),
                });
            }
        }
        for (_, waiters) in std::mem::take(&mut self.write_waiters) {
            for (waiter, _) in waiters {
                out.push(Effect::AnswerWrite {
                    waiter,
                    answer: Err(refuse(
                        ErrorCode::ERR_OUTCOME_UNKNOWN,
                        format!("{reason}; the write may or may not take effect"),
                    )),
                });
            }
        }
        self.requests.clear();
        for (_, waiters) in std::mem::take(&mut self.ack_waiters) {
            for (_, token) in waiters {
                out.push(Effect::AnswerPrepare {
                    token,
                    answer: Err(refuse(code, reason.to_string())),
                });
            }
        }
    }

    /// Stops being primary (its writes' outcomes are unknown), then takes `role`.
    fn step_down(&mut self, role: ReplicaStatus, reason: &str, out: &mut Vec<Effect>) {
        if self.role == ReplicaStatus::Primary {
            self.serving = false;
            self.reconciled_at = None;
            self.resend_scheduled.clear();
            self.upgrading = None;
            for learner in std::mem::take(&mut self.learners).into_keys() {
                out.push(Effect::LearnerDropped {
                    learner,
                    reason: format!("the primary stepped down ({reason})"),
                    tell_meta: false,
                });
            }
            self.fail_waiters(ErrorCode::ERR_NOT_PRIMARY, reason, out);
        }
        self.set_role(role, out);
    }

    /// The meta's configuration for this partition. `incarnation`: the meta view it belongs to
    /// (a push or a sync); `None` keeps the current one (an answer to this replica's own request).
    pub fn update_config(
        &mut self,
        config: PartitionConfig,
        incarnation: Option<u64>,
        wall_secs: u64,
    ) -> WireResult<Vec<Effect>> {
        if config.gpid != self.gpid {
            return Err(refuse(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("configuration of {} sent to replica {}", config.gpid, self.gpid),
            ));
        }
        if config.ballot < self.ballot {
            return Err(refuse(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "configuration of {} at ballot {} is older than the replica's ballot {}",
                    self.gpid, config.ballot, self.ballot
                ),
            ));
        }
        let mut out = Vec::new();
        let ballot_changed = config.ballot != self.ballot;
        if ballot_changed {
            self.ballot = config.ballot;
            out.push(Effect::PersistBallot(self.ballot));
        }
        if let Some(incarnation) = incarnation {
            self.incarnation = Some(incarnation);
        }
        let role = if config.primary == Some(self.me) {
            ReplicaStatus::Primary
        } else if config.secondaries.contains(&self.me) {
            ReplicaStatus::Secondary
        } else {
            ReplicaStatus::Inactive
        };
        self.primary = config.primary;
        self.config = Some(config);
        match role {
            ReplicaStatus::Primary if self.role != ReplicaStatus::Primary || ballot_changed => {
                self.become_primary(wall_secs, &mut out)
            }
            ReplicaStatus::Primary => {}
            // Not named by the configuration while learning: the meta added it as a learner.
            ReplicaStatus::Inactive if self.role == ReplicaStatus::Learner => {}
            other => self.step_down(other, "the configuration names another primary", &mut out),
        }
        Ok(out)
    }

    /// The replica server's lease ran out: stop serving now.
    pub fn lease_expired(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.role != ReplicaStatus::Inactive {
            self.step_down(ReplicaStatus::Inactive, "the replica server lost its lease", &mut out);
            self.fail_waiters(
                ErrorCode::ERR_INVALID_STATE,
                "the replica server lost its lease",
                &mut out,
            );
        }
        self.incarnation = None;
        out
    }

    /// The replica is closing: answer everything waiting.
    pub fn close(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        self.step_down(ReplicaStatus::Inactive, "the replica is closing", &mut out);
        self.fail_waiters(ErrorCode::ERR_INVALID_STATE, "the replica is closing", &mut out);
        out
    }

    /// Storage failed: refuse everything from now on.
    pub fn storage_failed(&mut self, reason: String) -> Vec<Effect> {
        let mut out = Vec::new();
        self.step_down(ReplicaStatus::Inactive, &format!("storage failed: {reason}"), &mut out);
        self.fail_waiters(ErrorCode::ERR_STORAGE, &reason, &mut out);
        self.broken = Some(reason);
        out
    }

    /// The log made these (decree, ballot) durable, recording `committed` as committed.
    pub fn logged(&mut self, written: &[(Decree, Ballot)], committed: Decree) -> Vec<Effect> {
        let mut out = Vec::new();
        self.durable_committed = self.durable_committed.max(committed);
        for &(decree, ballot) in written {
            self.list.mark_logged(decree, ballot);
            if let Some(waiters) = self.ack_waiters.remove(&decree) {
                let (ready, later): (Vec<_>, Vec<_>) = waiters.into_iter().partition(|(b, _)| *b == ballot);
                for (_, token) in ready {
                    out.push(Effect::AnswerPrepare {
                        token,
                        answer: Ok(aerie_proto::replica::PrepareAck { decree, ballot }),
                    });
                }
                if !later.is_empty() {
                    self.ack_waiters.insert(decree, later);
                }
            }
        }
        match self.role {
            ReplicaStatus::Primary => self.try_commit(&mut out),
            _ => self.commit_as_secondary(&mut out),
        }
        out
    }

    /// Committed mutations up to `last` were applied; `answers` holds, per applied mutation that
    /// carried operations, each operation's answer.
    pub fn applied(
        &mut self,
        last: Decree,
        answers: Vec<(Decree, Vec<WireResult<aerie_proto::data::WriteResult>>)>,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        self.last_applied = self.last_applied.max(last);
        while self.applying.front().is_some_and(|m| m.decree <= last) {
            let mutation = self.applying.pop_front().expect("not empty");
            for op in &mutation.ops {
                if let Some(request) = &op.request {
                    if self
                        .requests
                        .get(&request.key())
                        .is_some_and(|(d, _)| *d == mutation.decree)
                    {
                        self.requests.remove(&request.key());
                    }
                }
            }
        }
        for (decree, op_answers) in answers {
            // Every waiter of an operation (its first attempt and each retry) gets its answer.
            for (waiter, index) in self.write_waiters.remove(&decree).unwrap_or_default() {
                let answer = op_answers
                    .get(index)
                    .cloned()
                    .unwrap_or(Ok(aerie_proto::data::WriteResult::Done));
                out.push(Effect::AnswerWrite { waiter, answer });
            }
        }
        self.check_reconciled(&mut out);
        out
    }

    /// Hands committed mutations to the host to apply.
    fn hand_to_apply(&mut self, committed: Vec<Arc<Mutation>>, out: &mut Vec<Effect>) {
        if committed.is_empty() {
            return;
        }
        self.applying.extend(committed.iter().cloned());
        out.push(Effect::Apply(committed));
    }

    /// Writes the committed decree to the log when no mutation is about to carry it, so that a
    /// restart knows exactly what it may apply.
    fn note_commit_point(&mut self, out: &mut Vec<Effect>) {
        let committed = self.list.last_committed();
        if committed > self.last_commit_marker {
            self.last_commit_marker = committed;
            out.push(Effect::LogCommitPoint(committed));
        }
    }

    /// Whether a configuration request may be sent now (at most one at a time).
    fn take_meta_slot(&mut self) -> bool {
        !std::mem::replace(&mut self.meta_request_in_flight, true)
    }

    /// The meta answered this replica's own configuration request (`AskMeta`).
    pub fn meta_answered(&mut self, answer: MetaAnswer, wall_secs: u64) -> Vec<Effect> {
        self.meta_request_in_flight = false;
        match answer {
            MetaAnswer::Config(config) => {
                let effects = self.update_config(config, None, wall_secs).unwrap_or_default();
                // A configuration at this ballot (the ballot did not move): not upgraded.
                self.upgrading = None;
                effects
            }
            MetaAnswer::Stale => self.refresh_config(),
            MetaAnswer::Refused => {
                self.upgrading = None;
                Vec::new()
            }
            MetaAnswer::Unknown => {
                // An upgrade may have been made: ask again until the answer is known.
                let upgrading = self.upgrading;
                match upgrading {
                    Some(learner) if self.take_meta_slot() => {
                        vec![Effect::AskMeta(aerie_proto::meta::PartitionChange::UpgradeLearner(
                            learner,
                        ))]
                    }
                    _ => Vec::new(),
                }
            }
        }
    }

    /// Asks the host to fetch the configuration, unless a request is under way.
    fn refresh_config(&mut self) -> Vec<Effect> {
        if self.take_meta_slot() {
            vec![Effect::RefreshConfig]
        } else {
            Vec::new()
        }
    }

    /// The configuration fetched after `RefreshConfig` (`None`: it could not be fetched).
    pub fn config_refreshed(&mut self, config: Option<PartitionConfig>, wall_secs: u64) -> Vec<Effect> {
        self.meta_request_in_flight = false;
        match config {
            Some(config) if config.ballot >= self.ballot => {
                self.update_config(config, None, wall_secs).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}
