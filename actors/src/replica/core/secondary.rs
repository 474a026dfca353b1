//! The secondary's and the learner's side of the core: prepares taken only from the primary of
//! their ballot, acknowledgements once logged, commits up to the primary's committed point, and the
//! steps of learning.

use super::{refuse, AckToken, Effect, ReplicaCore};
use crate::replica::prepare_list::{PrepareList, PrepareOutcome, Reject};
use aerie_common::{Ballot, Decree, ErrorCode, NodeAddr, WireResult};
use aerie_proto::replica::{Mutation, PrepareAck, ReplicaStatus};
use std::sync::Arc;

impl ReplicaCore {
    /// Checks who sent a message at `ballot`, adopting a newer ballot (and its primary) when it is
    /// one: a primary steps down first.
    fn accept_sender(&mut self, from: NodeAddr, ballot: Ballot, what: &str, out: &mut Vec<Effect>) -> WireResult<()> {
        if ballot < self.ballot {
            return Err(refuse(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "{what} at ballot {ballot} is older than ballot {} of {}",
                    self.ballot, self.gpid
                ),
            ));
        }
        if ballot == self.ballot {
            if self.role == ReplicaStatus::Primary {
                return Err(refuse(
                    ErrorCode::ERR_INVALID_STATE,
                    format!("{} is the primary of {} at ballot {}", self.me, self.gpid, self.ballot),
                ));
            }
            if self.primary.is_some_and(|primary| primary != from) {
                return Err(refuse(
                    ErrorCode::ERR_INVALID_STATE,
                    format!(
                        "{what} from {from}, but the primary of {} at ballot {ballot} is {}",
                        self.gpid,
                        self.primary.expect("checked")
                    ),
                ));
            }
            self.primary = Some(from);
            return Ok(());
        }
        // A newer ballot, whose primary is the sender: a primary steps down before anything else.
        let role = match self.role {
            ReplicaStatus::Inactive => ReplicaStatus::Inactive,
            _ => ReplicaStatus::Secondary,
        };
        self.step_down(role, &format!("{from} is the primary at ballot {ballot}"), out);
        self.ballot = ballot;
        self.primary = Some(from);
        self.config = None;
        out.push(Effect::PersistBallot(ballot));
        out.extend(self.refresh_config());
        Ok(())
    }

    /// A prepare from `from`; answered through `AnswerPrepare { token }`.
    pub fn prepare(&mut self, token: AckToken, from: NodeAddr, mutation: Arc<Mutation>) -> Vec<Effect> {
        let mut out = Vec::new();
        let (decree, ballot) = (mutation.decree, mutation.ballot);
        let answer = |out: &mut Vec<Effect>, answer| out.push(Effect::AnswerPrepare { token, answer });
        if let Err(e) = self.check_not_broken() {
            answer(&mut out, Err(e));
            return out;
        }
        if mutation.gpid != self.gpid {
            answer(
                &mut out,
                Err(refuse(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!("prepare for {} sent to {}", mutation.gpid, self.gpid),
                )),
            );
            return out;
        }
        if let Err(e) = self.accept_sender(from, ballot, "prepare", &mut out) {
            answer(&mut out, Err(e));
            return out;
        }
        let outcome = match self.list.accept_prepare(mutation.clone(), self.ballot) {
            Ok(outcome) => outcome,
            Err(Reject::StaleBallot { ours, theirs }) => {
                answer(
                    &mut out,
                    Err(refuse(
                        ErrorCode::ERR_INVALID_VERSION,
                        format!(
                            "prepare at ballot {theirs} is older than ballot {ours} of {}",
                            self.gpid
                        ),
                    )),
                );
                return out;
            }
            Err(Reject::Conflict { decree, ballot }) => {
                answer(
                    &mut out,
                    Err(refuse(
                        ErrorCode::ERR_INVALID_STATE,
                        format!(
                            "decree {decree} of {} already holds another write at ballot {ballot}",
                            self.gpid
                        ),
                    )),
                );
                return out;
            }
        };
        self.primary_committed = self.primary_committed.max(mutation.last_committed);
        match outcome {
            PrepareOutcome::AlreadyCommitted | PrepareOutcome::AlreadyLogged => {
                answer(&mut out, Ok(PrepareAck { decree, ballot }));
            }
            PrepareOutcome::NeedsLogging => {
                out.push(Effect::Log(mutation));
                self.ack_waiters.entry(decree).or_default().push((ballot, token));
            }
        }
        self.commit_as_secondary(&mut out);
        out
    }

    /// The primary's committed point, from `from` at `ballot`.
    pub fn group_checked(&mut self, from: NodeAddr, ballot: Ballot, committed: Decree) -> WireResult<Vec<Effect>> {
        let mut out = Vec::new();
        self.accept_sender(from, ballot, "group check", &mut out)?;
        self.primary_committed = self.primary_committed.max(committed);
        self.commit_as_secondary(&mut out);
        self.note_commit_point(&mut out);
        Ok(out)
    }

    /// Commits, in order, what is logged here up to the primary's committed decree.
    pub(super) fn commit_as_secondary(&mut self, out: &mut Vec<Effect>) {
        let committed = self.list.commit_up_to(self.primary_committed);
        self.hand_to_apply(committed, out);
    }

    /// Learner: the meta (through the primary) asked this replica to learn from `primary` at
    /// `ballot`.
    pub fn begin_learning(&mut self, primary: NodeAddr, ballot: Ballot) -> WireResult<Vec<Effect>> {
        let mut out = Vec::new();
        if self.role == ReplicaStatus::Primary && ballot > self.ballot {
            // A primary of a newer ballot adds it as a learner: the configuration moved on without
            // it (it was declared dead while it led, and came back in a new incarnation that no
            // configuration names it in).
            self.step_down(
                ReplicaStatus::Inactive,
                "a newer configuration adds it back as a learner",
                &mut out,
            );
        }
        if self.role == ReplicaStatus::Primary {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!("{} is the primary of {}; it does not learn", self.me, self.gpid),
            ));
        }
        if self.role == ReplicaStatus::Secondary && ballot <= self.ballot {
            return Err(refuse(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "{} is already a secondary of {} at ballot {}",
                    self.me, self.gpid, self.ballot
                ),
            ));
        }
        self.fail_waiters(ErrorCode::ERR_INVALID_STATE, "the replica is learning", &mut out);
        if ballot > self.ballot {
            self.ballot = ballot;
            out.push(Effect::PersistBallot(ballot));
        }
        self.config = None;
        self.primary = Some(primary);
        self.serving = false;
        self.set_role(ReplicaStatus::Learner, &mut out);
        Ok(out)
    }

    /// Learner: local history dropped; everything up to `applied` is in the engine.
    pub fn learning_reset(&mut self, applied: Decree) {
        self.list = PrepareList::new(applied);
        self.applying.clear();
        self.last_applied = applied;
        self.primary_committed = applied;
        self.next_decree = applied + 1;
        self.last_commit_marker = applied;
        self.durable_committed = applied;
    }

    /// Learner: committed mutations up to `decree` were applied straight from the primary.
    pub fn learned_up_to(&mut self, decree: Decree) {
        self.last_applied = self.last_applied.max(decree);
    }

    /// Learner: joined the prepare stream with everything up to `committed` applied.
    pub fn learning_joined(&mut self, committed: Decree) -> Vec<Effect> {
        let mut out = Vec::new();
        self.list.jump_to(committed);
        self.primary_committed = self.primary_committed.max(committed);
        self.last_applied = self.last_applied.max(committed);
        self.commit_as_secondary(&mut out);
        out
    }

    /// Learner: learning stopped; the replica waits, inactive, for the meta.
    pub fn learning_stopped(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.role == ReplicaStatus::Learner {
            self.set_role(ReplicaStatus::Inactive, &mut out);
        }
        out
    }
}
