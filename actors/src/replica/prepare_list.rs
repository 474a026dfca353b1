//! The prepare list: PacificA's two-phase commit bookkeeping for one partition, as a pure state
//! machine (no I/O, no clock). The replica actor feeds it events and carries out what it returns.
//!
//! ```text
//!  primary:   propose(m) ──► log locally + Prepare to every secondary
//!             mark_logged / ack ──► take_committable(): the longest run of decrees, from
//!                                   last_committed + 1, that are logged here and acked by all
//!  secondary: accept_prepare(m) ──► log, then ack      commit_up_to(primary's committed decree)
//! ```
//!
//! Invariants: decrees commit strictly in order, each exactly once; a mutation whose ballot is older
//! than the replica's is rejected; an uncommitted decree may be replaced by a proposal for it at a
//! newer ballot (a new primary's reconciliation), never by a different one at the same ballot, and a
//! committed one never. A new primary fills every hole of its list with a no-op: a decree missing
//! here was never acknowledged by this replica, so it cannot have been committed.

use aerie_common::{Ballot, Decree, NodeAddr};
use aerie_proto::replica::Mutation;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Entry {
    pub mutation: Arc<Mutation>,
    /// Durable in this replica's own log.
    pub logged: bool,
    /// Secondaries whose ack is still missing (primary only).
    pub awaiting: BTreeSet<NodeAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareOutcome {
    /// New (or replaced): log it, then acknowledge.
    NeedsLogging,
    /// Already logged with this ballot: acknowledge at once.
    AlreadyLogged,
    /// Committed long ago: acknowledge at once.
    AlreadyCommitted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The sender's ballot is older than this replica's.
    StaleBallot { ours: Ballot, theirs: Ballot },
    /// Another mutation holds this decree at the same ballot: two primaries at one ballot.
    Conflict { decree: Decree, ballot: Ballot },
}

/// Whether two mutations carry the same write (the committed point they piggyback may differ).
pub fn same_write(a: &Mutation, b: &Mutation) -> bool {
    a.gpid == b.gpid
        && a.ballot == b.ballot
        && a.decree == b.decree
        && a.timestamp_secs == b.timestamp_secs
        && a.ops == b.ops
}

#[derive(Debug, Default)]
pub struct PrepareList {
    last_committed: Decree,
    entries: BTreeMap<Decree, Entry>,
}

impl PrepareList {
    pub fn new(last_committed: Decree) -> Self {
        PrepareList {
            last_committed,
            entries: BTreeMap::new(),
        }
    }

    pub fn last_committed(&self) -> Decree {
        self.last_committed
    }

    /// The highest decree known here, committed or not.
    pub fn last_prepared(&self) -> Decree {
        self.entries.keys().next_back().copied().unwrap_or(self.last_committed)
    }

    pub fn uncommitted(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn uncommitted_count(&self) -> usize {
        self.entries.len()
    }

    pub fn get(&self, decree: Decree) -> Option<&Entry> {
        self.entries.get(&decree)
    }

    /// Restores an entry read back from the log at start-up (already durable).
    pub fn restore_logged(&mut self, mutation: Arc<Mutation>) {
        if mutation.decree > self.last_committed {
            self.entries.insert(
                mutation.decree,
                Entry {
                    mutation,
                    logged: true,
                    awaiting: BTreeSet::new(),
                },
            );
        }
    }

    /// Primary: records a new proposal that every node in `secondaries` must acknowledge.
    pub fn propose(&mut self, mutation: Arc<Mutation>, secondaries: impl IntoIterator<Item = NodeAddr>) {
        debug_assert!(mutation.decree > self.last_committed);
        self.entries.insert(
            mutation.decree,
            Entry {
                mutation,
                logged: false,
                awaiting: secondaries.into_iter().collect(),
            },
        );
    }

    /// The local log made `decree` (at `ballot`) durable.
    pub fn mark_logged(&mut self, decree: Decree, ballot: Ballot) {
        if let Some(entry) = self.entries.get_mut(&decree) {
            if entry.mutation.ballot == ballot {
                entry.logged = true;
            }
        }
    }

    /// Primary: `from` acknowledged `decree` at `ballot`. Acks for another ballot are ignored.
    pub fn ack(&mut self, decree: Decree, from: NodeAddr, ballot: Ballot) {
        if let Some(entry) = self.entries.get_mut(&decree) {
            if entry.mutation.ballot == ballot {
                entry.awaiting.remove(&from);
            }
        }
    }

    /// Primary: commits, in decree order, every entry that is logged here and acked by everyone.
    pub fn take_committable(&mut self) -> Vec<Arc<Mutation>> {
        self.commit_while(|entry| entry.logged && entry.awaiting.is_empty(), Decree::MAX)
    }

    /// Secondary: accepts a prepare from a primary at `mutation.ballot`, given our own `ballot`.
    pub fn accept_prepare(&mut self, mutation: Arc<Mutation>, ballot: Ballot) -> Result<PrepareOutcome, Reject> {
        if mutation.ballot < ballot {
            return Err(Reject::StaleBallot {
                ours: ballot,
                theirs: mutation.ballot,
            });
        }
        if mutation.decree <= self.last_committed {
            return Ok(PrepareOutcome::AlreadyCommitted);
        }
        if let Some(existing) = self.entries.get(&mutation.decree) {
            if existing.mutation.ballot == mutation.ballot {
                if !same_write(&existing.mutation, &mutation) {
                    return Err(Reject::Conflict {
                        decree: mutation.decree,
                        ballot: mutation.ballot,
                    });
                }
                return Ok(if existing.logged {
                    PrepareOutcome::AlreadyLogged
                } else {
                    PrepareOutcome::NeedsLogging
                });
            }
            if existing.mutation.ballot > mutation.ballot {
                return Err(Reject::StaleBallot {
                    ours: existing.mutation.ballot,
                    theirs: mutation.ballot,
                });
            }
        }
        self.entries.insert(
            mutation.decree,
            Entry {
                mutation,
                logged: false,
                awaiting: BTreeSet::new(),
            },
        );
        Ok(PrepareOutcome::NeedsLogging)
    }

    /// Secondary: commits, in order, logged entries up to the primary's committed decree.
    pub fn commit_up_to(&mut self, primary_committed: Decree) -> Vec<Arc<Mutation>> {
        self.commit_while(|entry| entry.logged, primary_committed)
    }

    fn commit_while(&mut self, ready: impl Fn(&Entry) -> bool, limit: Decree) -> Vec<Arc<Mutation>> {
        let mut committed = Vec::new();
        while self.last_committed < limit {
            let next = self.last_committed + 1;
            match self.entries.get(&next) {
                Some(entry) if ready(entry) => {
                    let entry = self.entries.remove(&next).expect("present");
                    committed.push(entry.mutation);
                    self.last_committed = next;
                }
                _ => break,
            }
        }
        committed
    }

    /// Primary: from now on `node` must acknowledge every uncommitted entry too (a learner joining).
    pub fn add_member(&mut self, node: NodeAddr) {
        for entry in self.entries.values_mut() {
            entry.awaiting.insert(node);
        }
    }

    /// Primary: `node` no longer has to acknowledge anything (a learner that failed).
    pub fn remove_member(&mut self, node: NodeAddr) {
        for entry in self.entries.values_mut() {
            entry.awaiting.remove(&node);
        }
    }

    /// Learner: everything up to `committed` is now known committed (applied from the primary's
    /// copy); older local entries are dropped.
    pub fn jump_to(&mut self, committed: Decree) {
        if committed <= self.last_committed {
            return;
        }
        self.entries = self.entries.split_off(&(committed + 1));
        self.last_committed = committed;
    }

    /// New primary: every uncommitted entry is re-proposed under `ballot` to `secondaries`, and
    /// every hole between the committed point and the last prepared decree is filled with a no-op
    /// (stamped `timestamp_secs`). Returns the entries that must be logged (again).
    pub fn reconcile(
        &mut self,
        gpid: aerie_common::Gpid,
        ballot: Ballot,
        secondaries: &[NodeAddr],
        timestamp_secs: u64,
    ) -> Vec<Arc<Mutation>> {
        for decree in self.last_committed + 1..self.last_prepared() {
            self.entries.entry(decree).or_insert_with(|| Entry {
                mutation: Arc::new(Mutation {
                    gpid,
                    ballot,
                    decree,
                    last_committed: 0,
                    timestamp_secs,
                    ops: Vec::new(),
                }),
                logged: false,
                awaiting: BTreeSet::new(),
            });
        }
        let mut relog = Vec::new();
        for entry in self.entries.values_mut() {
            if entry.mutation.ballot != ballot || !entry.logged {
                let mut mutation = (*entry.mutation).clone();
                mutation.ballot = ballot;
                mutation.last_committed = self.last_committed;
                entry.mutation = Arc::new(mutation);
                entry.logged = false;
                relog.push(entry.mutation.clone());
            }
            entry.awaiting = secondaries.iter().copied().collect();
        }
        relog
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::Gpid;

    fn node(port: u16) -> NodeAddr {
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    fn mutation(decree: Decree, ballot: Ballot) -> Arc<Mutation> {
        Arc::new(Mutation {
            gpid: Gpid::new(1, 0),
            ballot,
            decree,
            last_committed: 0,
            timestamp_secs: 0,
            ops: vec![],
        })
    }

    fn decrees(committed: &[Arc<Mutation>]) -> Vec<Decree> {
        committed.iter().map(|m| m.decree).collect()
    }

    #[test]
    fn commits_only_when_logged_and_acked_by_everyone() {
        let mut list = PrepareList::new(0);
        list.propose(mutation(1, 1), [node(2), node(3)]);
        list.ack(1, node(2), 1);
        list.ack(1, node(3), 1);
        assert!(list.take_committable().is_empty(), "not logged locally yet");
        list.mark_logged(1, 1);
        assert_eq!(decrees(&list.take_committable()), vec![1]);
        assert_eq!(list.last_committed(), 1);
        assert!(list.take_committable().is_empty(), "each decree commits once");
    }

    #[test]
    fn out_of_order_acks_commit_in_decree_order() {
        let mut list = PrepareList::new(0);
        for d in 1..=3 {
            list.propose(mutation(d, 1), [node(2)]);
            list.mark_logged(d, 1);
        }
        list.ack(3, node(2), 1);
        list.ack(2, node(2), 1);
        assert!(list.take_committable().is_empty(), "decree 1 holds back 2 and 3");
        list.ack(1, node(2), 1);
        assert_eq!(decrees(&list.take_committable()), vec![1, 2, 3]);
    }

    #[test]
    fn acks_for_another_ballot_are_ignored() {
        let mut list = PrepareList::new(0);
        list.propose(mutation(1, 2), [node(2)]);
        list.mark_logged(1, 2);
        list.ack(1, node(2), 1);
        assert!(list.take_committable().is_empty());
        list.ack(1, node(2), 2);
        assert_eq!(decrees(&list.take_committable()), vec![1]);
    }

    #[test]
    fn stale_ballot_is_rejected() {
        let mut list = PrepareList::new(0);
        let outcome = list.accept_prepare(mutation(1, 3), 4);
        assert_eq!(outcome, Err(Reject::StaleBallot { ours: 4, theirs: 3 }));
        assert_eq!(list.uncommitted_count(), 0);
    }

    #[test]
    fn secondary_logs_acks_and_commits_to_the_primarys_point() {
        let mut list = PrepareList::new(0);
        for d in 1..=3 {
            assert_eq!(list.accept_prepare(mutation(d, 1), 1), Ok(PrepareOutcome::NeedsLogging));
        }
        list.mark_logged(1, 1);
        list.mark_logged(3, 1);
        // The primary committed 3, but decree 2 is not durable here yet.
        assert_eq!(decrees(&list.commit_up_to(3)), vec![1]);
        list.mark_logged(2, 1);
        assert_eq!(decrees(&list.commit_up_to(3)), vec![2, 3]);
        assert_eq!(
            list.accept_prepare(mutation(2, 1), 1),
            Ok(PrepareOutcome::AlreadyCommitted)
        );
    }

    #[test]
    fn duplicate_prepare_is_acknowledged_without_relogging() {
        let mut list = PrepareList::new(0);
        list.accept_prepare(mutation(1, 1), 1).unwrap();
        list.mark_logged(1, 1);
        assert_eq!(
            list.accept_prepare(mutation(1, 1), 1),
            Ok(PrepareOutcome::AlreadyLogged)
        );
    }

    #[test]
    fn a_different_write_at_the_same_ballot_is_refused() {
        let mut list = PrepareList::new(0);
        list.accept_prepare(mutation(1, 2), 2).unwrap();
        let mut other = (*mutation(1, 2)).clone();
        other.timestamp_secs = 99;
        assert_eq!(
            list.accept_prepare(Arc::new(other), 2),
            Err(Reject::Conflict { decree: 1, ballot: 2 })
        );
        // The same write carrying a newer committed point is the same prepare.
        let mut resent = (*mutation(1, 2)).clone();
        resent.last_committed = 0;
        assert_eq!(
            list.accept_prepare(Arc::new(resent), 2),
            Ok(PrepareOutcome::NeedsLogging)
        );
    }

    #[test]
    fn an_entry_is_never_replaced_by_an_older_ballot() {
        let mut list = PrepareList::new(0);
        list.accept_prepare(mutation(1, 3), 1).unwrap();
        assert_eq!(
            list.accept_prepare(mutation(1, 2), 1),
            Err(Reject::StaleBallot { ours: 3, theirs: 2 })
        );
    }

    #[test]
    fn reconcile_fills_holes_with_no_ops_at_the_new_ballot() {
        let mut list = PrepareList::new(2);
        list.restore_logged(mutation(4, 1));
        list.restore_logged(mutation(7, 1));
        let relog = list.reconcile(Gpid::new(1, 0), 3, &[node(2)], 42);
        assert_eq!(decrees(&relog), vec![3, 4, 5, 6, 7]);
        for hole in [3, 5, 6] {
            let entry = list.get(hole).unwrap();
            assert!(entry.mutation.ops.is_empty(), "decree {hole} is a no-op");
            assert_eq!((entry.mutation.ballot, entry.mutation.timestamp_secs), (3, 42));
        }
        for d in 3..=7 {
            list.mark_logged(d, 3);
            list.ack(d, node(2), 3);
        }
        assert_eq!(decrees(&list.take_committable()), vec![3, 4, 5, 6, 7], "nothing stalls");
    }

    #[test]
    fn uncommitted_entry_is_replaced_by_a_newer_ballot() {
        let mut list = PrepareList::new(0);
        list.accept_prepare(mutation(1, 1), 1).unwrap();
        list.mark_logged(1, 1);
        assert_eq!(list.accept_prepare(mutation(1, 2), 1), Ok(PrepareOutcome::NeedsLogging));
        assert_eq!(list.get(1).unwrap().mutation.ballot, 2);
        assert!(!list.get(1).unwrap().logged);
    }

    #[test]
    fn reconcile_reproposes_uncommitted_entries_under_the_new_ballot() {
        let mut list = PrepareList::new(0);
        list.restore_logged(mutation(1, 1));
        list.restore_logged(mutation(2, 1));
        let relog = list.reconcile(Gpid::new(1, 0), 2, &[node(2)], 0);
        assert_eq!(decrees(&relog), vec![1, 2]);
        assert!(list.take_committable().is_empty());
        for d in 1..=2 {
            list.mark_logged(d, 2);
            list.ack(d, node(2), 2);
        }
        assert_eq!(decrees(&list.take_committable()), vec![1, 2]);
    }

    #[test]
    fn a_joining_learner_must_acknowledge_what_is_uncommitted() {
        let mut list = PrepareList::new(0);
        list.propose(mutation(1, 1), [node(2)]);
        list.mark_logged(1, 1);
        list.add_member(node(9));
        list.ack(1, node(2), 1);
        assert!(list.take_committable().is_empty(), "the learner has not acknowledged");
        list.ack(1, node(9), 1);
        assert_eq!(decrees(&list.take_committable()), vec![1]);
        list.propose(mutation(2, 1), [node(2), node(9)]);
        list.mark_logged(2, 1);
        list.ack(2, node(2), 1);
        list.remove_member(node(9));
        assert_eq!(
            decrees(&list.take_committable()),
            vec![2],
            "a failed learner holds nothing back"
        );
    }

    #[test]
    fn a_learner_jumps_to_the_committed_point_it_learned() {
        let mut list = PrepareList::new(3);
        list.restore_logged(mutation(4, 1));
        list.restore_logged(mutation(9, 1));
        list.jump_to(7);
        assert_eq!(list.last_committed(), 7);
        assert!(list.get(4).is_none(), "entries at or below the new point are gone");
        assert!(list.get(9).is_some(), "later ones stay");
        list.jump_to(5);
        assert_eq!(list.last_committed(), 7, "never backwards");
    }

    #[test]
    fn reconcile_under_the_same_ballot_needs_no_relogging() {
        let mut list = PrepareList::new(5);
        list.restore_logged(mutation(6, 1));
        list.restore_logged(mutation(4, 1));
        assert_eq!(
            list.uncommitted_count(),
            1,
            "entries at or below the committed point are dropped"
        );
        assert!(list.reconcile(Gpid::new(1, 0), 1, &[node(2)], 0).is_empty());
        list.ack(6, node(2), 1);
        assert_eq!(decrees(&list.take_committable()), vec![6]);
    }
}
