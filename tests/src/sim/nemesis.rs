//! The faults of a simulated run, chosen by the seed: crashes (SIGKILL), pauses (SIGSTOP) shorter
//! and longer than the grace period, cuts between a node and the meta or its peers, isolation,
//! message loss, slow nodes and disks, meta restarts and pauses, and an operator's downgrade of a
//! primary (the cure then promotes another at once). Each fault is undone after a while; at the end
//! everything is healed. Then the checks: fully healthy and idle, replicas identical.

use super::net::Endpoint;
use super::{timing, Event, Sim};
use aerie_actors::meta::guardian::CureAction;
use aerie_common::Gpid;
use aerie_proto::replica::ReplicaStatus;
use rand::Rng;
use std::collections::BTreeSet;

/// Undoing one fault.
#[derive(Debug, Clone)]
pub(crate) enum Undo {
    Restart(usize),
    Resume(Endpoint),
    Reconnect(Vec<(Endpoint, Endpoint)>),
    LossOff,
    Fast(usize),
    MetaRestart,
}

impl Sim {
    /// The node holding the most primaries (the most damaging one to lose).
    fn busiest_node(&self) -> usize {
        let mut counts = vec![0; self.nodes.len()];
        for partition in self.meta.partitions.values() {
            if let Some(primary) = partition.primary {
                counts[super::net::node_index(primary)] += 1;
            }
        }
        (0..counts.len()).max_by_key(|n| (counts[*n], *n)).unwrap_or(0)
    }

    fn pick_node(&mut self) -> usize {
        if self.rng.random_bool(0.5) {
            self.busiest_node()
        } else {
            self.rng.random_range(0..self.nodes.len())
        }
    }

    /// Starts one fault, schedules its undoing, and the next fault.
    pub(crate) fn nemesis(&mut self) {
        let fault_end = 2_000 + self.options.fault_ms;
        if self.now >= fault_end {
            return;
        }
        let n = self.pick_node();
        let busy = self.faulty.contains(&n);
        let last = self.rng.random_range(1_000..10_000);
        let choice = self.rng.random_range(0..12);
        let started: Option<(Undo, u64)> = match choice {
            _ if busy => None,
            0 | 1 if self.nodes[n].process.up => {
                self.note(format!("FAULT crash node {n} for {last} ms"));
                self.node_crash(n);
                Some((Undo::Restart(n), last))
            }
            2 | 3 => {
                // Sometimes past the grace period: the meta moves its roles while it sleeps.
                let last = self.rng.random_range(1_000..(timing::GRACE * 2));
                self.note(format!("FAULT pause node {n} for {last} ms"));
                self.nodes[n].process.paused_until = Some(self.now + last);
                Some((Undo::Resume(Endpoint::Node(n)), last))
            }
            4 => {
                self.note(format!("FAULT cut node {n} from the meta for {last} ms"));
                Some((self.cut(vec![(Endpoint::Node(n), Endpoint::Meta)]), last))
            }
            5 => {
                self.note(format!("FAULT cut node {n} from its peers for {last} ms"));
                let links = (0..self.nodes.len())
                    .filter(|m| *m != n)
                    .map(|m| (Endpoint::Node(n), Endpoint::Node(m)))
                    .collect();
                Some((self.cut(links), last))
            }
            6 => {
                self.note(format!("FAULT isolate node {n} for {last} ms"));
                let mut links: Vec<(Endpoint, Endpoint)> = (0..self.nodes.len())
                    .filter(|m| *m != n)
                    .map(|m| (Endpoint::Node(n), Endpoint::Node(m)))
                    .collect();
                links.push((Endpoint::Node(n), Endpoint::Meta));
                links.extend((0..self.clients.len()).map(|c| (Endpoint::Node(n), Endpoint::Client(c))));
                Some((self.cut(links), last))
            }
            7 => {
                let loss = self.rng.random_range(50..300);
                self.note(format!("FAULT {loss}‰ message loss for {last} ms"));
                self.links.loss_per_mille = loss;
                Some((Undo::LossOff, last))
            }
            8 => {
                self.note(format!("FAULT node {n} slow (network and disk) for {last} ms"));
                self.links.slow.insert(Endpoint::Node(n));
                self.nodes[n].slow_disk = true;
                Some((Undo::Fast(n), last))
            }
            9 if self.meta.process.up && self.meta.process.paused_until.is_none() => {
                let last = self.rng.random_range(500..4_000);
                if self.rng.random_bool(0.5) {
                    self.note(format!("FAULT meta restart, down for {last} ms"));
                    self.meta_crash();
                    Some((Undo::MetaRestart, last))
                } else {
                    self.note(format!("FAULT pause the meta for {last} ms"));
                    self.meta.process.paused_until = Some(self.now + last);
                    Some((Undo::Resume(Endpoint::Meta), last))
                }
            }
            10 | 11 if self.meta.process.up && self.meta.process.paused_until.is_none() => {
                // An operator's `propose DOWNGRADE_TO_SECONDARY` on a primary; the cure upgrades a
                // secondary right after, without waiting for the old primary to confirm.
                // Its push to the old primary is lost half of the time (the meta does not resend):
                // the old primary then hears of it only through the new primary's prepares.
                let pidx = self.rng.random_range(0..self.options.partitions);
                let gpid = Gpid::new(1, pidx);
                match self.meta.partitions[&gpid].primary {
                    Some(primary) => {
                        let old = super::net::node_index(primary);
                        let cut = self.rng.random_bool(0.5) && !self.faulty.contains(&old);
                        if cut {
                            self.links.cut(Endpoint::Node(old), Endpoint::Meta);
                        }
                        self.execute(gpid, CureAction::DowngradeToSecondary(primary), "an operator");
                        if cut {
                            let last = self.rng.random_range(300..2_000);
                            self.note(format!(
                                "  (its push to node {old} is lost: cut from the meta for {last} ms)"
                            ));
                            Some((Undo::Reconnect(vec![(Endpoint::Node(old), Endpoint::Meta)]), last))
                        } else {
                            None
                        }
                    }
                    None => None,
                }
            }
            _ => None,
        };
        if let Some((undo, after)) = started {
            match &undo {
                Undo::Restart(m) | Undo::Fast(m) | Undo::Resume(Endpoint::Node(m)) => {
                    self.faulty.insert(*m);
                }
                Undo::Reconnect(links) => {
                    if let Some((Endpoint::Node(m), _)) = links.first() {
                        self.faulty.insert(*m);
                    }
                }
                _ => {}
            }
            self.schedule_undo(after, undo);
        }
        let next = self.rng.random_range(1_500..5_000);
        self.push(self.now + next, Event::Nemesis);
    }

    fn cut(&mut self, links: Vec<(Endpoint, Endpoint)>) -> Undo {
        for (a, b) in &links {
            self.links.cut(*a, *b);
        }
        Undo::Reconnect(links)
    }

    fn schedule_undo(&mut self, after_ms: u64, undo: Undo) {
        self.push(self.now + after_ms, Event::Undo(undo));
    }

    pub(crate) fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Restart(n) => {
                if !self.nodes[n].process.up {
                    self.note(format!("restart node {n}"));
                    self.node_start(n);
                }
                self.faulty.remove(&n);
            }
            Undo::Resume(endpoint) => {
                if self.process(endpoint).paused_until.is_some() {
                    self.note(format!("resume {endpoint:?}"));
                    self.resume(endpoint);
                }
                if let Endpoint::Node(n) = endpoint {
                    self.faulty.remove(&n);
                }
            }
            Undo::Reconnect(links) => {
                for (a, b) in links {
                    self.links.uncut(a, b);
                    if let Endpoint::Node(n) = a {
                        self.faulty.remove(&n);
                    }
                }
            }
            Undo::LossOff => self.links.loss_per_mille = 0,
            Undo::Fast(n) => {
                self.links.slow.remove(&Endpoint::Node(n));
                self.nodes[n].slow_disk = false;
                self.faulty.remove(&n);
            }
            Undo::MetaRestart => {
                if !self.meta.process.up {
                    self.note("restart the meta".to_string());
                    self.meta_start();
                }
            }
        }
    }

    /// Ends every fault.
    pub(crate) fn heal(&mut self) {
        self.note(format!("HEAL ({})", self.links.describe()));
        self.links.heal_all();
        for n in 0..self.nodes.len() {
            self.nodes[n].slow_disk = false;
            if !self.nodes[n].process.up {
                self.node_start(n);
            } else if self.nodes[n].process.paused_until.is_some() {
                self.resume(Endpoint::Node(n));
            }
        }
        if !self.meta.process.up {
            self.meta_start();
        } else if self.meta.process.paused_until.is_some() {
            self.resume(Endpoint::Meta);
        }
        self.faulty.clear();
    }

    /// The meta's configuration and every replica's state, for a stuck run's report.
    pub(crate) fn describe_state(&self) -> String {
        let mut out = String::new();
        for (gpid, config) in &self.meta.partitions {
            out.push_str(&format!(
                "    meta {gpid}: ballot {} primary {:?} secondaries {:?}; adding {:?}\n",
                config.ballot,
                config.primary,
                config.secondaries,
                self.meta.adding.get(gpid)
            ));
            for (n, node) in self.nodes.iter().enumerate() {
                if let Some(replica) = node.replicas.get(gpid) {
                    out.push_str(&format!("      node {n}: {}\n", replica.core.describe()));
                }
            }
        }
        out
    }

    /// Fully healthy and idle: every partition has its three replicas, all serving in the roles the
    /// meta says, everything committed applied everywhere, and no client operation under way.
    pub(crate) fn quiescent(&self) -> Result<(), String> {
        for (gpid, config) in &self.meta.partitions {
            let Some(primary) = config.primary else {
                return Err(format!("{gpid} has no primary ({config:?})"));
            };
            if config.secondaries.len() != 2 {
                return Err(format!("{gpid} has {} secondaries", config.secondaries.len()));
            }
            let p = &self.nodes[super::net::node_index(primary)];
            let Some(replica) = p.replicas.get(gpid) else {
                return Err(format!("{gpid}: its primary {primary} has no replica"));
            };
            let core = &replica.core;
            if core.role() != ReplicaStatus::Primary || core.ballot() != config.ballot || !core.is_serving() {
                return Err(format!(
                    "{gpid}: the primary is {} at ballot {} (meta: {}), serving {}",
                    core.role(),
                    core.ballot(),
                    config.ballot,
                    core.is_serving()
                ));
            }
            if core.uncommitted_count() > 0 || core.last_applied() != core.last_committed() {
                return Err(format!("{gpid}: the primary still commits or applies"));
            }
            for secondary in &config.secondaries {
                let node = &self.nodes[super::net::node_index(*secondary)];
                let Some(s) = node.replicas.get(gpid) else {
                    return Err(format!("{gpid}: secondary {secondary} has no replica"));
                };
                if s.core.role() != ReplicaStatus::Secondary || s.core.last_applied() != core.last_committed() {
                    return Err(format!(
                        "{gpid}: secondary {secondary} is {}; the primary is {}",
                        s.core.describe(),
                        core.describe()
                    ));
                }
            }
        }
        if let Some(c) = self.clients.iter().position(|c| !c.idle()) {
            return Err(format!("client {c} still has an operation under way"));
        }
        Ok(())
    }

    /// Partitions whose members hold different data.
    pub(crate) fn divergence(&self) -> Vec<String> {
        let mut diverged = Vec::new();
        for (gpid, config) in &self.meta.partitions {
            let digests: BTreeSet<(i64, u64)> = config
                .members()
                .filter_map(|m| self.nodes[super::net::node_index(m)].disks.get(gpid))
                .map(|d| (d.current.applied, d.current.digest()))
                .collect();
            if digests.len() > 1 {
                diverged.push(format!("{gpid}: (applied, digest) per member {digests:?}"));
            }
        }
        diverged
    }
}
