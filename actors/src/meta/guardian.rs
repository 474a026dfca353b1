//! The partition guardian: the cure rules of SPEC.md section 4 as a pure function. Given one
//! partition's configuration and a read-only view of the cluster, `cure` returns the one next step
//! that brings the partition closer to `max_replica_count` live replicas, or says why it waits.
//!
//! ```text
//!  dead primary, live secondary ─► UpgradeToPrimary(secondary with fewest primaries)
//!  dead primary, no live one    ─► DropPrimary                     (the partition becomes DDD)
//!  dead secondary               ─► RemoveSecondary(it)
//!  no primary, live secondaries ─► UpgradeToPrimary
//!  no replica ever (ballot 0)   ─► AssignPrimary(fewest primaries, then fewest replicas)
//!  DDD                          ─► AssignPrimary(the last dropped, once back and reported) or wait
//!  missing secondary            ─► AddSecondary(the dropped node, back) | wait for it | AddSecondary(elsewhere)
//!  too many secondaries         ─► RemoveSecondary(the one on the busiest node)
//! ```
//!
//! Every action but `AddSecondary` is one configuration change (ballot + 1); `AddSecondary` starts
//! learning on the new node, and the configuration changes when the primary upgrades it.

use super::placement::NodeLoad;
use aerie_common::{Ballot, Decree, NodeAddr};
use aerie_proto::meta::PartitionConfig;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Runtime knobs of the cure (remote commands `meta.lb.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CureKnobs {
    pub assign_delay_ms: u64,
    pub black_list: BTreeSet<NodeAddr>,
    pub flow_control: bool,
    pub max_adds_per_node: u32,
}

/// What a node said about its replica of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    pub ballot: Ballot,
    pub last_committed: Decree,
    pub last_prepared: Decree,
}

/// The cluster as the guardian sees it, for one partition.
#[derive(Debug, Clone, Copy)]
pub struct ClusterView<'a> {
    pub alive: &'a BTreeSet<NodeAddr>,
    /// Load over every table.
    pub total_load: &'a BTreeMap<NodeAddr, NodeLoad>,
    /// Load of this partition's table.
    pub table_load: &'a BTreeMap<NodeAddr, NodeLoad>,
    /// When each node dropped out of this partition (meta clock), when known.
    pub dropped_at: &'a BTreeMap<NodeAddr, u64>,
    /// When each live node last became alive (meta clock).
    pub alive_since: &'a BTreeMap<NodeAddr, u64>,
    /// A node dropped for failing is taken back cheaply only after it showed it is alive: it became
    /// alive again after the drop, or it stayed alive this long after it (a full grace period, by
    /// which a dead node would have been declared dead).
    pub rejoin_after_ms: u64,
    /// Replicas of this partition that live nodes reported.
    pub reports: &'a BTreeMap<NodeAddr, ReplicaState>,
    /// The node this partition is already adding as a secondary, if any.
    pub adding: Option<NodeAddr>,
    /// Add-secondary actions in progress per receiving node.
    pub adds_per_node: &'a BTreeMap<NodeAddr, u32>,
    pub knobs: &'a CureKnobs,
    /// Nodes in maintenance (`node_maintenance`): they receive no new replica, and a replica they
    /// dropped waits for them (no assign delay) until they restart.
    pub maintenance: &'a BTreeSet<NodeAddr>,
    pub now_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CureAction {
    AssignPrimary(NodeAddr),
    /// The primary becomes a secondary; the partition has no primary until one is promoted. Only
    /// operators (and later the balancer) ask for it; the cure never does.
    DowngradeToSecondary(NodeAddr),
    UpgradeToPrimary(NodeAddr),
    DropPrimary(NodeAddr),
    AddSecondary(NodeAddr),
    RemoveSecondary(NodeAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CureOutcome {
    Act(CureAction),
    /// Nothing to do yet, and why. `until_ms` (meta clock): when the wait ends by itself, if it
    /// does without any event, so that the cure can look again then.
    Wait {
        reason: String,
        until_ms: Option<u64>,
    },
    Healthy,
}

impl CureOutcome {
    fn wait(reason: impl Into<String>) -> Self {
        CureOutcome::Wait {
            reason: reason.into(),
            until_ms: None,
        }
    }

    fn wait_until(until_ms: u64, reason: impl Into<String>) -> Self {
        CureOutcome::Wait {
            reason: reason.into(),
            until_ms: Some(until_ms),
        }
    }
}

impl fmt::Display for CureAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CureAction::AssignPrimary(n) => write!(f, "ASSIGN_PRIMARY {n}"),
            CureAction::DowngradeToSecondary(n) => write!(f, "DOWNGRADE_TO_SECONDARY {n}"),
            CureAction::UpgradeToPrimary(n) => write!(f, "UPGRADE_TO_PRIMARY {n}"),
            CureAction::DropPrimary(n) => write!(f, "DOWNGRADE_TO_INACTIVE {n} (primary)"),
            CureAction::AddSecondary(n) => write!(f, "ADD_SECONDARY {n}"),
            CureAction::RemoveSecondary(n) => write!(f, "REMOVE {n}"),
        }
    }
}

impl ClusterView<'_> {
    fn load(&self, node: NodeAddr) -> (NodeLoad, NodeLoad) {
        (
            self.table_load.get(&node).copied().unwrap_or_default(),
            self.total_load.get(&node).copied().unwrap_or_default(),
        )
    }

    /// The live node of `candidates` with the fewest primaries (then the fewest replicas).
    fn fewest_primaries(&self, candidates: impl Iterator<Item = NodeAddr>) -> Option<NodeAddr> {
        candidates.filter(|n| self.alive.contains(n)).min_by_key(|n| {
            let (_, total) = self.load(*n);
            (total.primaries, total.replicas, *n)
        })
    }

    /// Whether a node that dropped out of this partition has shown it is alive since.
    /// The node came back (a new life) after it dropped out.
    fn restarted_since_drop(&self, node: NodeAddr) -> bool {
        let dropped = self.dropped_at.get(&node).copied().unwrap_or(0);
        self.alive_since.get(&node).copied().unwrap_or(0) > dropped
    }

    fn back_since_drop(&self, node: NodeAddr) -> bool {
        let dropped = self.dropped_at.get(&node).copied().unwrap_or(0);
        let since = self.alive_since.get(&node).copied().unwrap_or(0);
        since > dropped || self.now_ms.saturating_sub(dropped) >= self.rejoin_after_ms
    }

    /// When a live node that dropped out will have shown it is alive by staying alive (meta clock).
    fn rejoins_at(&self, node: NodeAddr) -> Option<u64> {
        if !self.alive.contains(&node) || self.back_since_drop(node) {
            return None;
        }
        let dropped = self.dropped_at.get(&node).copied().unwrap_or(0);
        Some(dropped + self.rejoin_after_ms)
    }

    fn may_receive(&self, node: NodeAddr) -> bool {
        if self.knobs.black_list.contains(&node) || !self.alive.contains(&node) {
            return false;
        }
        if self.knobs.flow_control {
            let busy = self.adds_per_node.get(&node).copied().unwrap_or(0);
            return busy < self.knobs.max_adds_per_node;
        }
        true
    }
}

/// The next step for one partition.
pub fn cure(config: &PartitionConfig, view: &ClusterView<'_>) -> CureOutcome {
    let live_secondaries: Vec<NodeAddr> = config
        .secondaries
        .iter()
        .copied()
        .filter(|s| view.alive.contains(s))
        .collect();

    if let Some(primary) = config.primary {
        if !view.alive.contains(&primary) {
            return CureOutcome::Act(match view.fewest_primaries(live_secondaries.into_iter()) {
                Some(secondary) => CureAction::UpgradeToPrimary(secondary),
                None => CureAction::DropPrimary(primary),
            });
        }
    }
    if let Some(dead) = config.secondaries.iter().find(|s| !view.alive.contains(s)) {
        return CureOutcome::Act(CureAction::RemoveSecondary(*dead));
    }
    let Some(primary) = config.primary else {
        if let Some(secondary) = view.fewest_primaries(config.secondaries.iter().copied()) {
            return CureOutcome::Act(CureAction::UpgradeToPrimary(secondary));
        }
        return cure_dead_partition(config, view);
    };

    let wanted = config.max_replica_count.saturating_sub(1) as usize;
    if config.secondaries.len() > wanted {
        let busiest = config
            .secondaries
            .iter()
            .copied()
            .max_by_key(|n| {
                let (table, total) = view.load(*n);
                (table.replicas, total.replicas, *n)
            })
            .expect("more secondaries than wanted");
        return CureOutcome::Act(CureAction::RemoveSecondary(busiest));
    }
    if config.secondaries.len() < wanted {
        return add_secondary(config, primary, view);
    }
    CureOutcome::Healthy
}

/// No replica alive: a new partition gets a primary; a dead one waits for its last replica.
fn cure_dead_partition(config: &PartitionConfig, view: &ClusterView<'_>) -> CureOutcome {
    if config.ballot == 0 {
        return match view.fewest_primaries(view.alive.iter().copied()) {
            Some(node) => CureOutcome::Act(CureAction::AssignPrimary(node)),
            None => CureOutcome::wait("a new partition and no alive node"),
        };
    }
    match config.last_drops.as_slice() {
        [] => CureOutcome::wait(format!(
            "dead, and no record of its former replicas; see ddd_diagnose -g {}",
            config.gpid
        )),
        [only] => {
            if view.alive.contains(only) && view.reports.contains_key(only) {
                CureOutcome::Act(CureAction::AssignPrimary(*only))
            } else {
                CureOutcome::wait(format!("dead; waiting for its last replica on {only} to come back"))
            }
        }
        [.., second_last, last] => {
            let back: Vec<NodeAddr> = [*second_last, *last]
                .into_iter()
                .filter(|n| view.alive.contains(n) && view.reports.contains_key(n))
                .collect();
            if back.len() < 2 {
                return CureOutcome::wait(format!(
                    "dead; waiting for its last two replicas ({second_last}, {last}) to come back and report"
                ));
            }
            let best = back
                .into_iter()
                .max_by_key(|n| {
                    let r = view.reports[n];
                    (r.ballot, r.last_committed, r.last_prepared)
                })
                .expect("two candidates");
            CureOutcome::Act(CureAction::AssignPrimary(best))
        }
    }
}

fn add_secondary(config: &PartitionConfig, primary: NodeAddr, view: &ClusterView<'_>) -> CureOutcome {
    if let Some(node) = view.adding {
        return CureOutcome::wait(format!("adding a secondary on {node}"));
    }
    if view.knobs.flow_control && view.knobs.max_adds_per_node == 0 {
        return CureOutcome::wait("adding secondaries is stopped (add_secondary_max_count_for_one_node = 0)");
    }
    let members: BTreeSet<NodeAddr> = config.members().collect();
    // The node that dropped out most recently is the cheapest new secondary: it has most of the data.
    let last_dropped = config.last_drops.iter().rev().find(|n| !members.contains(n)).copied();
    let only_primary_left = config.secondaries.is_empty();
    if let Some(dropped) = last_dropped.filter(|n| view.maintenance.contains(n)) {
        // Its replica waits for it, however long it is down, unless the primary is alone.
        if view.may_receive(dropped) && view.restarted_since_drop(dropped) {
            return CureOutcome::Act(CureAction::AddSecondary(dropped));
        }
        if !only_primary_left {
            return CureOutcome::wait(format!(
                "{dropped} is in maintenance; its replica waits for it to come back"
            ));
        }
    }
    if let Some(dropped) = last_dropped {
        if view.may_receive(dropped) && view.back_since_drop(dropped) && !view.maintenance.contains(&dropped) {
            return CureOutcome::Act(CureAction::AddSecondary(dropped));
        }
    }
    let waited = match last_dropped {
        None => true,
        Some(dropped) if view.knobs.black_list.contains(&dropped) => true,
        Some(dropped) => {
            let since = view.dropped_at.get(&dropped).copied().unwrap_or(0);
            view.now_ms.saturating_sub(since) >= view.knobs.assign_delay_ms
        }
    };
    if !(only_primary_left || waited) {
        let dropped = last_dropped.expect("waiting implies a dropped node");
        let since = view.dropped_at.get(&dropped).copied().unwrap_or(0);
        let left = view
            .knobs
            .assign_delay_ms
            .saturating_sub(view.now_ms.saturating_sub(since));
        // Waiting ends when the delay does, or earlier when the dropped node can be taken back.
        let delay_ends = view.now_ms + left;
        let until = view.rejoins_at(dropped).map_or(delay_ends, |at| at.min(delay_ends));
        return CureOutcome::wait_until(until, format!("waiting {left} ms more for {dropped} to come back"));
    }
    let candidate = view
        .alive
        .iter()
        .copied()
        .filter(|n| *n != primary && !members.contains(n) && view.may_receive(*n) && !view.maintenance.contains(n))
        .filter(|n| Some(*n) != last_dropped || view.back_since_drop(*n))
        .min_by_key(|n| {
            let (table, total) = view.load(*n);
            (table.replicas, total.replicas, *n)
        });
    let reason = "no node can take another secondary (all members, black-listed, dead or busy)";
    match (
        candidate,
        last_dropped
            .filter(|n| view.may_receive(*n))
            .and_then(|n| view.rejoins_at(n)),
    ) {
        (Some(node), _) => CureOutcome::Act(CureAction::AddSecondary(node)),
        (None, Some(rejoins_at)) => CureOutcome::wait_until(rejoins_at, reason),
        (None, None) => CureOutcome::wait(reason),
    }
}

/// Records `node` as the most recent former replica, keeping the list short and without repeats.
fn remember_drop(config: &mut PartitionConfig, node: NodeAddr) {
    config.last_drops.retain(|n| *n != node);
    config.last_drops.push(node);
    let excess = config.last_drops.len().saturating_sub(MAX_LAST_DROPS);
    config.last_drops.drain(..excess);
}

/// The configuration after a change action (ballot + 1). `AddSecondary` changes no configuration.
pub fn apply_action(config: &PartitionConfig, action: CureAction) -> Option<PartitionConfig> {
    let mut next = config.clone();
    next.ballot += 1;
    match action {
        CureAction::AssignPrimary(node) => {
            next.primary = Some(node);
            next.secondaries.retain(|n| *n != node);
            next.last_drops.retain(|n| *n != node);
        }
        CureAction::UpgradeToPrimary(node) => {
            if let Some(old) = next.primary.take() {
                remember_drop(&mut next, old);
            }
            next.secondaries.retain(|n| *n != node);
            next.primary = Some(node);
        }
        CureAction::DowngradeToSecondary(node) => {
            if next.primary == Some(node) {
                next.primary = None;
                next.secondaries.push(node);
            }
        }
        CureAction::DropPrimary(node) => {
            next.primary = None;
            remember_drop(&mut next, node);
        }
        CureAction::RemoveSecondary(node) => {
            next.secondaries.retain(|n| *n != node);
            remember_drop(&mut next, node);
        }
        CureAction::AddSecondary(_) => return None,
    }
    Some(next)
}

/// Adds a learner that caught up as a secondary (ballot + 1).
pub fn upgrade_learner(config: &PartitionConfig, learner: NodeAddr) -> PartitionConfig {
    let mut next = config.clone();
    next.ballot += 1;
    if !next.secondaries.contains(&learner) {
        next.secondaries.push(learner);
    }
    next.last_drops.retain(|n| *n != learner);
    next
}

/// How many former replicas a configuration remembers.
pub const MAX_LAST_DROPS: usize = 3;

#[cfg(test)]
mod tests;
