//! A simulated replica server: the lease keeper (the real `LeaseTracker`), the stub (sync,
//! configuration pushes checked by incarnation), and one host of the real `ReplicaCore` per
//! replica, with a simulated log and engine.

use super::engine::{Disk, LogEntry};
use super::net::{node_addr, node_index, Endpoint, LearnAnswer, Report, Request, Response};
use super::{timing, Pending, Process, Sim, Timer};
use aerie_actors::lease::LeaseTracker;
use aerie_actors::replica::core::{
    AppliedLookup, CoreOptions, Effect, Gate, MetaAnswer, PrepareFailure, ReplicaCore, Restored,
};
use aerie_actors::replica::storage::plan_replay;
use aerie_common::{ErrorCode, Gpid, NodeAddr, WireError};
use aerie_proto::meta::PartitionChange;
use aerie_proto::replica::{Mutation, ReplicaStatus};
use aerie_storage::Admission;
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

const CORE: CoreOptions = CoreOptions {
    min_replicas_for_write: 2,
    max_uncommitted: 4096,
    // Two in flight once two writes wait (the server waits for more): with six clients on four
    // partitions, writes batch into shared mutations and mutations overlap in their 2PC.
    max_proposals_in_flight: 2,
    pipeline_min_writes: 2,
    max_batch_bytes: aerie_actors::replica::MAX_BATCH_BYTES,
};

/// A replica being learned here: from which primary, at which ballot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Learning {
    primary: usize,
    ballot: i64,
}

pub(crate) struct Replica {
    pub core: ReplicaCore,
    log_queue: Vec<LogEntry>,
    log_in_flight: Option<Vec<LogEntry>>,
    apply_queue: Vec<Arc<Mutation>>,
    apply_in_flight: Option<Vec<Arc<Mutation>>>,
    write_waiters: BTreeMap<u64, (Endpoint, u64)>,
    ack_waiters: BTreeMap<u64, (Endpoint, u64)>,
    next_token: u64,
    learning: Option<Learning>,
}

pub(crate) struct Node {
    pub process: Process,
    pub addr: NodeAddr,
    tracker: LeaseTracker,
    lease_held: bool,
    incarnation: u64,
    syncing: bool,
    pub replicas: BTreeMap<Gpid, Replica>,
    /// What survives a crash.
    pub disks: BTreeMap<Gpid, Disk>,
    pub slow_disk: bool,
}

impl Node {
    pub fn new(index: usize) -> Self {
        Node {
            process: Process::default(),
            addr: node_addr(index),
            tracker: LeaseTracker::new(timing::LEASE),
            lease_held: false,
            incarnation: 0,
            syncing: false,
            replicas: BTreeMap::new(),
            disks: BTreeMap::new(),
            slow_disk: false,
        }
    }
}

fn wall_secs(now_ms: u64) -> u64 {
    1_700_000_000 + now_ms / 1000
}

impl Sim {
    fn gate(&self, n: usize) -> Gate {
        let lease = self.nodes[n].tracker.snapshot();
        Gate {
            now_ms: self.now,
            lease_until_ms: lease.until_ms,
            incarnation: lease.incarnation,
        }
    }

    /// Starts (or restarts) node `n`: its replicas come back from their disks.
    pub(crate) fn node_start(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.process.up = true;
        node.process.life += 1;
        node.process.paused_until = None;
        node.tracker = LeaseTracker::new(timing::LEASE);
        node.lease_held = false;
        node.incarnation = 0;
        node.syncing = false;
        node.replicas.clear();
        let gpids: Vec<Gpid> = node.disks.keys().copied().collect();
        for gpid in gpids {
            self.open_replica(n, gpid);
        }
        let at = Endpoint::Node(n);
        self.schedule_timer(at, 0, Timer::Beacon);
        self.schedule_timer(at, timing::LEASE_CHECK, Timer::LeaseCheck);
        let flush = self.rng.random_range(2_000..5_000);
        self.schedule_timer(at, flush, Timer::Flush);
        self.schedule_timer(at, timing::GROUP_CHECK_INTERVAL, Timer::GroupChecks);
        self.schedule_timer(at, timing::CONFIG_SYNC, Timer::PeriodicSync);
    }

    /// SIGKILL: what was in flight to the log may be partly written; the memtables are lost.
    pub(crate) fn node_crash(&mut self, n: usize) {
        let survives: Vec<(Gpid, usize)> = self.nodes[n]
            .replicas
            .iter()
            .map(|(g, r)| (*g, r.log_in_flight.as_ref().map_or(0, Vec::len)))
            .collect();
        let keep: Vec<(Gpid, usize)> = survives
            .into_iter()
            .map(|(g, len)| (g, if len == 0 { 0 } else { self.rng.random_range(0..=len) }))
            .collect();
        let node = &mut self.nodes[n];
        for (gpid, kept) in keep {
            let torn: Vec<LogEntry> = node
                .replicas
                .get(&gpid)
                .and_then(|r| r.log_in_flight.clone())
                .unwrap_or_default()
                .into_iter()
                .take(kept)
                .collect();
            if let Some(disk) = node.disks.get_mut(&gpid) {
                disk.log.extend(torn);
            }
        }
        for disk in node.disks.values_mut() {
            disk.crash();
        }
        node.replicas.clear();
        node.process.up = false;
        node.process.life += 1;
        node.process.paused_until = None;
        self.forget_calls(Endpoint::Node(n));
    }

    /// Opens a replica from its disk, replaying the log as the real `open_replica` does.
    fn open_replica(&mut self, n: usize, gpid: Gpid) {
        let addr = self.nodes[n].addr;
        let disk = self.nodes[n].disks.get_mut(&gpid).expect("a disk");
        if disk.learning {
            // Learning was interrupted: the engine holds what was applied, the log nothing of use.
            disk.log.clear();
        }
        let applied = disk.current.applied;
        let (logged, marker) = disk.replay_input();
        let plan = match plan_replay(applied, logged, marker) {
            Ok(plan) => plan,
            Err(missing) => {
                let what = format!(
                    "REPLAY FAILED on node {n} for {gpid}: committed decree {} missing (applied {applied}, committed {})",
                    missing.decree, missing.committed
                );
                self.note(what.clone());
                self.replay_failures.push(what);
                return;
            }
        };
        let to_apply: Vec<Arc<Mutation>> = plan.to_apply.into_iter().map(Arc::new).collect();
        disk.current.apply(&to_apply);
        let ballot = disk.manifest_ballot.max(plan.ballot);
        let core = ReplicaCore::new(
            gpid,
            addr,
            CORE,
            Restored {
                ballot,
                last_committed: plan.committed,
                last_applied: plan.committed,
                uncommitted: plan.uncommitted.into_iter().map(Arc::new).collect(),
            },
        );
        self.nodes[n].replicas.insert(
            gpid,
            Replica {
                core,
                log_queue: Vec::new(),
                log_in_flight: None,
                apply_queue: Vec::new(),
                apply_in_flight: None,
                write_waiters: BTreeMap::new(),
                ack_waiters: BTreeMap::new(),
                next_token: 1,
                learning: None,
            },
        );
    }

    /// The replica of `gpid` on node `n`, opened or created empty.
    fn ensure_replica(&mut self, n: usize, gpid: Gpid) -> bool {
        if self.nodes[n].replicas.contains_key(&gpid) {
            return true;
        }
        self.nodes[n].disks.entry(gpid).or_default();
        self.open_replica(n, gpid);
        self.nodes[n].replicas.contains_key(&gpid)
    }

    fn replica(&mut self, n: usize, gpid: Gpid) -> Option<&mut Replica> {
        self.nodes[n].replicas.get_mut(&gpid)
    }

    /// Carries out the core's effects for replica `gpid` on node `n`.
    fn run_effects(&mut self, n: usize, gpid: Gpid, effects: Vec<Effect>) {
        let me = Endpoint::Node(n);
        if let Some((wn, wg, wd)) = self.watch {
            if wn == n && wg == gpid {
                for e in &effects {
                    let hit = match e {
                        Effect::Log(m) => m.decree == wd,
                        Effect::Apply(ms) => ms.iter().any(|m| m.decree == wd),
                        Effect::AnswerPrepare { answer, .. } => answer.as_ref().is_ok_and(|a| a.decree == wd),
                        Effect::RoleChanged { .. } => true,
                        _ => false,
                    };
                    if hit {
                        let state = self.nodes[n].replicas[&gpid].core.describe();
                        self.note(format!("WATCH node {n} {gpid}: {e:?} / {state}"));
                    }
                }
            }
        }
        for effect in effects {
            let Some(replica) = self.nodes[n].replicas.get_mut(&gpid) else {
                return;
            };
            match effect {
                Effect::Log(m) => {
                    self.batched_mutations += u64::from(m.ops.len() > 1);
                    replica.log_queue.push(LogEntry::Mutation(m));
                    self.kick_log(n, gpid);
                }
                Effect::LogCommitPoint(d) => {
                    replica.log_queue.push(LogEntry::Committed(d));
                    self.kick_log(n, gpid);
                }
                Effect::Prepare { to, mutation } => {
                    let pending = Pending::Prepare {
                        gpid,
                        to,
                        decree: mutation.decree,
                        ballot: mutation.ballot,
                    };
                    let target = Endpoint::Node(node_index(to));
                    self.call(
                        me,
                        target,
                        Request::Prepare { mutation },
                        timing::PREPARE_TIMEOUT,
                        pending,
                    );
                }
                Effect::GroupCheck { to, check } => {
                    for node in to {
                        let request = Request::GroupCheck(check.clone());
                        self.call(
                            me,
                            Endpoint::Node(node_index(node)),
                            request,
                            timing::RPC_TIMEOUT,
                            Pending::Ignore,
                        );
                    }
                }
                Effect::Apply(mutations) => {
                    replica.apply_queue.extend(mutations);
                    self.kick_apply(n, gpid);
                }
                Effect::AnswerWrite { waiter, answer } => {
                    if let Some((to, call)) = replica.write_waiters.remove(&waiter) {
                        self.reply(me, to, call, Response::Write(answer));
                    }
                }
                Effect::AnswerPrepare { token, answer } => {
                    if let Some((to, call)) = replica.ack_waiters.remove(&token) {
                        self.reply(me, to, call, Response::Prepare(answer));
                    }
                }
                Effect::AskMeta(change) => {
                    let request = Request::UpdatePartitionConfig {
                        gpid,
                        ballot: replica.core.ballot(),
                        change,
                    };
                    self.call(me, Endpoint::Meta, request, timing::RPC_TIMEOUT, Pending::MetaAsk(gpid));
                }
                Effect::RefreshConfig => {
                    let request = Request::QueryPartition { gpid };
                    self.call(me, Endpoint::Meta, request, timing::RPC_TIMEOUT, Pending::Refresh(gpid));
                }
                Effect::PersistBallot(ballot) => {
                    if let Some(disk) = self.nodes[n].disks.get_mut(&gpid) {
                        disk.manifest_ballot = disk.manifest_ballot.max(ballot);
                    }
                }
                Effect::ResendLater(to) => self.schedule_timer(me, timing::PREPARE_RETRY, Timer::ResendDue(gpid, to)),
                Effect::GroupCheckLater => {
                    self.schedule_timer(me, timing::GROUP_CHECK_DELAY, Timer::GroupCheckDue(gpid))
                }
                Effect::StartLearner(learner) => {
                    let request = Request::StartLearning {
                        gpid,
                        ballot: replica.core.ballot(),
                    };
                    let pending = Pending::StartLearner { gpid, learner };
                    self.call(
                        me,
                        Endpoint::Node(node_index(learner)),
                        request,
                        timing::RPC_TIMEOUT,
                        pending,
                    );
                }
                Effect::LearnerDropped { learner, tell_meta, .. } => {
                    if tell_meta {
                        let request = Request::UpdatePartitionConfig {
                            gpid,
                            ballot: replica.core.ballot(),
                            change: PartitionChange::LearnerFailed(learner),
                        };
                        self.call(me, Endpoint::Meta, request, timing::RPC_TIMEOUT, Pending::Ignore);
                    }
                }
                Effect::RoleChanged { from, .. } => {
                    if from == ReplicaStatus::Learner {
                        replica.learning = None;
                    }
                }
                Effect::Serving { .. } => {}
            }
        }
    }

    fn kick_log(&mut self, n: usize, gpid: Gpid) {
        let slow = self.nodes[n].slow_disk;
        let latency = if slow {
            self.rng.random_range(50..300)
        } else {
            self.rng.random_range(1..6)
        };
        let Some(replica) = self.replica(n, gpid) else {
            return;
        };
        if replica.log_in_flight.is_some() || replica.log_queue.is_empty() {
            return;
        }
        replica.log_in_flight = Some(std::mem::take(&mut replica.log_queue));
        self.schedule_timer(Endpoint::Node(n), latency, Timer::LogDone(gpid));
    }

    fn log_done(&mut self, n: usize, gpid: Gpid) {
        let Some(batch) = self.replica(n, gpid).and_then(|r| r.log_in_flight.take()) else {
            return;
        };
        let mut written = Vec::new();
        let mut committed = 0;
        for entry in &batch {
            match entry {
                LogEntry::Mutation(m) => {
                    written.push((m.decree, m.ballot));
                    committed = committed.max(m.last_committed);
                }
                LogEntry::Committed(d) => committed = committed.max(*d),
            }
        }
        if let Some(disk) = self.nodes[n].disks.get_mut(&gpid) {
            disk.log.extend(batch);
        }
        let effects = match self.replica(n, gpid) {
            Some(replica) => replica.core.logged(&written, committed),
            None => return,
        };
        self.run_effects(n, gpid, effects);
        self.kick_log(n, gpid);
    }

    fn kick_apply(&mut self, n: usize, gpid: Gpid) {
        // Now and then a RocksDB write stalls (a flush, a compaction); a slow disk always does.
        let latency = if self.nodes[n].slow_disk {
            self.rng.random_range(50..300)
        } else if self.rng.random_range(0..100) < 10 {
            self.rng.random_range(10..100)
        } else {
            self.rng.random_range(1..8)
        };
        let Some(replica) = self.replica(n, gpid) else {
            return;
        };
        if replica.apply_in_flight.is_some() || replica.apply_queue.is_empty() {
            return;
        }
        replica.apply_in_flight = Some(std::mem::take(&mut replica.apply_queue));
        self.schedule_timer(Endpoint::Node(n), latency, Timer::ApplyDone(gpid));
    }

    fn apply_done(&mut self, n: usize, gpid: Gpid) {
        let Some(batch) = self.replica(n, gpid).and_then(|r| r.apply_in_flight.take()) else {
            return;
        };
        let Some(disk) = self.nodes[n].disks.get_mut(&gpid) else {
            return;
        };
        let answers = disk.current.apply(&batch);
        let last = batch.last().map(|m| m.decree).unwrap_or(0);
        let answers = batch.iter().map(|m| m.decree).zip(answers).collect();
        let effects = match self.replica(n, gpid) {
            Some(replica) => replica.core.applied(last, answers),
            None => return,
        };
        self.run_effects(n, gpid, effects);
        self.kick_apply(n, gpid);
    }

    /// Every replica steps down: the lease ran out.
    fn lease_lost(&mut self, n: usize) {
        self.nodes[n].lease_held = false;
        let gpids: Vec<Gpid> = self.nodes[n].replicas.keys().copied().collect();
        for gpid in gpids {
            let effects = self.nodes[n]
                .replicas
                .get_mut(&gpid)
                .expect("present")
                .core
                .lease_expired();
            self.run_effects(n, gpid, effects);
        }
    }

    fn sync(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        if node.syncing || !node.lease_held {
            return;
        }
        node.syncing = true;
        let reports = node
            .replicas
            .values()
            .map(|r| Report {
                gpid: r.core.gpid(),
                ballot: r.core.ballot(),
                committed: r.core.last_committed(),
                prepared: r.core.last_prepared(),
            })
            .collect();
        let incarnation = node.incarnation;
        self.call(
            Endpoint::Node(n),
            Endpoint::Meta,
            Request::ConfigSync { reports },
            timing::RPC_TIMEOUT,
            Pending::Sync { incarnation },
        );
    }

    fn update_config(
        &mut self,
        n: usize,
        config: aerie_proto::meta::PartitionConfig,
        incarnation: u64,
    ) -> Result<(), WireError> {
        let gpid = config.gpid;
        if !config.is_member(self.nodes[n].addr) && !self.nodes[n].replicas.contains_key(&gpid) {
            return Ok(());
        }
        if !self.ensure_replica(n, gpid) {
            return Err(WireError::new(ErrorCode::ERR_STORAGE, "the replica cannot be opened"));
        }
        let wall = wall_secs(self.now);
        let effects = self
            .replica(n, gpid)
            .expect("ensured")
            .core
            .update_config(config, Some(incarnation), wall)?;
        self.run_effects(n, gpid, effects);
        Ok(())
    }

    pub(crate) fn node_timer(&mut self, n: usize, timer: Timer) {
        let me = Endpoint::Node(n);
        match timer {
            Timer::Beacon => {
                let sent_ms = self.now;
                self.call(
                    me,
                    Endpoint::Meta,
                    Request::Beacon { sent_ms },
                    timing::BEACON,
                    Pending::Beacon { sent_ms },
                );
                self.schedule_timer(me, timing::BEACON, Timer::Beacon);
            }
            Timer::LeaseCheck => {
                if self.nodes[n].tracker.check(self.now) {
                    self.lease_lost(n);
                }
                self.schedule_timer(me, timing::LEASE_CHECK, Timer::LeaseCheck);
            }
            Timer::Flush => {
                for disk in self.nodes[n].disks.values_mut() {
                    disk.flush_and_gc();
                }
                let next = self.rng.random_range(2_000..5_000);
                self.schedule_timer(me, next, Timer::Flush);
            }
            Timer::GroupChecks => {
                let checks: Vec<(Gpid, Vec<Effect>)> = self.nodes[n]
                    .replicas
                    .iter()
                    .map(|(g, r)| (*g, r.core.group_check()))
                    .collect();
                for (gpid, effects) in checks {
                    self.run_effects(n, gpid, effects);
                }
                self.schedule_timer(me, timing::GROUP_CHECK_INTERVAL, Timer::GroupChecks);
            }
            Timer::SyncRetry => self.sync(n),
            Timer::PeriodicSync => {
                self.sync(n);
                self.schedule_timer(me, timing::CONFIG_SYNC, Timer::PeriodicSync);
            }
            Timer::LogDone(gpid) => self.log_done(n, gpid),
            Timer::ApplyDone(gpid) => self.apply_done(n, gpid),
            Timer::ResendDue(gpid, to) => {
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.resend_due(to);
                    self.run_effects(n, gpid, effects);
                }
            }
            Timer::GroupCheckDue(gpid) => {
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.group_check_due();
                    self.run_effects(n, gpid, effects);
                }
            }
            Timer::LearnAgain(gpid) => self.learn_request(n, gpid),
            _ => {}
        }
    }

    pub(crate) fn node_request(&mut self, n: usize, from: Endpoint, call: u64, request: Request) {
        let me = Endpoint::Node(n);
        let not_here = |gpid: Gpid| WireError::new(ErrorCode::ERR_OBJECT_NOT_FOUND, format!("no replica {gpid} here"));
        match request {
            Request::Prepare { mutation } => {
                let gpid = mutation.gpid;
                let Endpoint::Node(sender) = from else {
                    return;
                };
                let Some(replica) = self.replica(n, gpid) else {
                    return self.reply(me, from, call, Response::Prepare(Err(not_here(gpid))));
                };
                replica.next_token += 1;
                let token = replica.next_token;
                replica.ack_waiters.insert(token, (from, call));
                let effects = replica.core.prepare(token, node_addr(sender), mutation);
                self.run_effects(n, gpid, effects);
            }
            Request::GroupCheck(check) => {
                let gpid = check.gpid;
                let result = match self.replica(n, gpid) {
                    Some(replica) => replica
                        .core
                        .group_checked(check.primary, check.ballot, check.last_committed),
                    None => Err(not_here(gpid)),
                };
                match result {
                    Ok(effects) => {
                        self.run_effects(n, gpid, effects);
                        self.reply(me, from, call, Response::Done(Ok(())));
                    }
                    Err(e) => self.reply(me, from, call, Response::Done(Err(e))),
                }
            }
            Request::ClientWrite { gpid, request, op } => {
                let gate = self.gate(n);
                let wall = wall_secs(self.now);
                let lookup = match self.nodes[n]
                    .disks
                    .get(&gpid)
                    .map(|d| d.current.sessions.lookup(&request))
                {
                    Some(Admission::Done(answer)) => AppliedLookup::Applied(answer),
                    Some(Admission::Stale) => AppliedLookup::Stale,
                    _ => AppliedLookup::NotApplied,
                };
                let Some(replica) = self.replica(n, gpid) else {
                    return self.reply(me, from, call, Response::Write(Err(not_here(gpid))));
                };
                replica.next_token += 1;
                let waiter = replica.next_token;
                replica.write_waiters.insert(waiter, (from, call));
                let effects = replica
                    .core
                    .client_write(waiter, Some(request), op, lookup, &gate, wall);
                self.run_effects(n, gpid, effects);
            }
            Request::ClientRead {
                gpid,
                hash_key,
                sort_key,
            } => {
                let gate = self.gate(n);
                let answer = match self.nodes[n].replicas.get(&gpid) {
                    None => Err(not_here(gpid)),
                    Some(replica) => replica
                        .core
                        .check_read(&gate)
                        .map(|_| self.nodes[n].disks[&gpid].current.get(&hash_key, &sort_key)),
                };
                self.reply(me, from, call, Response::Read(answer));
            }
            Request::ConfigUpdate { config, incarnation } => {
                let node = &self.nodes[n];
                let answer = if !node.lease_held || incarnation != node.incarnation {
                    Err(WireError::new(
                        ErrorCode::ERR_INVALID_STATE,
                        "no lease, or a configuration made for another incarnation",
                    ))
                } else {
                    self.update_config(n, config, incarnation)
                };
                self.reply(me, from, call, Response::Done(answer));
            }
            Request::AddLearner { gpid, ballot, learner } => {
                let (answer, effects) = match self.replica(n, gpid) {
                    Some(replica) => replica.core.add_learner(learner, ballot),
                    None => (Err(not_here(gpid)), Vec::new()),
                };
                self.run_effects(n, gpid, effects);
                self.reply(me, from, call, Response::Done(answer));
            }
            Request::StartLearning { gpid, ballot } => {
                let Endpoint::Node(primary) = from else {
                    return;
                };
                let answer = self.start_learning(n, gpid, primary, ballot);
                self.reply(me, from, call, Response::Done(answer));
                if self.nodes[n].replicas.get(&gpid).is_some_and(|r| r.learning.is_some()) {
                    self.learn_request(n, gpid);
                }
            }
            Request::LearnRequest { gpid, ballot } => {
                let Endpoint::Node(learner) = from else {
                    return;
                };
                let answer = self.answer_learner(n, gpid, node_addr(learner), ballot);
                self.reply(me, from, call, Response::Learn(answer));
            }
            Request::LearnCompleted { gpid, ballot } => {
                let Endpoint::Node(learner) = from else {
                    return;
                };
                let learner = node_addr(learner);
                let result = match self.replica(n, gpid) {
                    Some(replica) => replica
                        .core
                        .check_learner(learner, ballot)
                        .and_then(|_| replica.core.learner_completed(learner)),
                    None => Err(not_here(gpid)),
                };
                let answer = result.map(|effects| self.run_effects(n, gpid, effects));
                self.reply(me, from, call, Response::Done(answer));
            }
            _ => {}
        }
    }

    fn start_learning(&mut self, n: usize, gpid: Gpid, primary: usize, ballot: i64) -> Result<(), WireError> {
        if !self.nodes[n].lease_held {
            return Err(WireError::new(ErrorCode::ERR_INVALID_STATE, "no lease"));
        }
        if self.nodes[n]
            .replicas
            .get(&gpid)
            .and_then(|r| r.learning)
            .is_some_and(|l| l.ballot == ballot && l.primary == primary)
        {
            return Ok(());
        }
        if !self.ensure_replica(n, gpid) {
            return Err(WireError::new(ErrorCode::ERR_STORAGE, "cannot open the replica"));
        }
        let effects = self
            .replica(n, gpid)
            .expect("ensured")
            .core
            .begin_learning(node_addr(primary), ballot)?;
        self.run_effects(n, gpid, effects);
        // Local history is dropped: the engine stays, the log starts over; until what it learns is
        // durable, a restart drops the log again.
        let disk = self.nodes[n].disks.get_mut(&gpid).expect("a disk");
        disk.learning = true;
        disk.flushed = disk.current.clone();
        disk.log.clear();
        let applied = disk.current.applied;
        let replica = self.replica(n, gpid).expect("ensured");
        replica.log_queue.clear();
        replica.core.learning_reset(applied);
        replica.learning = Some(Learning { primary, ballot });
        self.note(format!(
            "node {n}: learning {gpid} from node {primary} at ballot {ballot}, applied {applied}"
        ));
        Ok(())
    }

    fn learn_request(&mut self, n: usize, gpid: Gpid) {
        let Some(learning) = self.nodes[n].replicas.get(&gpid).and_then(|r| r.learning) else {
            return;
        };
        let request = Request::LearnRequest {
            gpid,
            ballot: learning.ballot,
        };
        let pending = Pending::Learn {
            gpid,
            ballot: learning.ballot,
        };
        self.call(
            Endpoint::Node(n),
            Endpoint::Node(learning.primary),
            request,
            timing::RPC_TIMEOUT,
            pending,
        );
    }

    /// The primary's side: the learner joins once this primary applied everything it committed.
    fn answer_learner(
        &mut self,
        n: usize,
        gpid: Gpid,
        learner: NodeAddr,
        ballot: i64,
    ) -> Result<LearnAnswer, WireError> {
        let Some(replica) = self.nodes[n].replicas.get_mut(&gpid) else {
            return Err(WireError::new(ErrorCode::ERR_OBJECT_NOT_FOUND, "no replica"));
        };
        replica.core.check_learner(learner, ballot)?;
        if replica.core.last_applied() < replica.core.last_committed() {
            return Ok(LearnAnswer::NotYet);
        }
        let (committed, effects) = replica.core.learner_joined(learner);
        let state = Box::new(self.nodes[n].disks[&gpid].current.clone());
        debug_assert_eq!(state.applied, committed);
        self.run_effects(n, gpid, effects);
        Ok(LearnAnswer::Joined { state, committed })
    }

    fn stop_learning(&mut self, n: usize, gpid: Gpid) {
        self.note(format!("node {n}: stops learning {gpid}"));
        if let Some(replica) = self.replica(n, gpid) {
            replica.learning = None;
            let effects = replica.core.learning_stopped();
            self.run_effects(n, gpid, effects);
        }
    }

    pub(crate) fn node_response(&mut self, n: usize, pending: Pending, response: Option<Response>) {
        let me = Endpoint::Node(n);
        match pending {
            Pending::Prepare {
                gpid,
                to,
                decree,
                ballot,
            } => {
                let answer = match response {
                    Some(Response::Prepare(Ok(ack))) => Ok(ack),
                    Some(Response::Prepare(Err(e))) if e.code == ErrorCode::ERR_INVALID_VERSION => {
                        Err(PrepareFailure::NewerBallot(e.to_string()))
                    }
                    Some(Response::Prepare(Err(e))) => Err(PrepareFailure::Other(e.to_string())),
                    _ => Err(PrepareFailure::Other("timed out".into())),
                };
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.prepare_answered(to, decree, ballot, answer);
                    self.run_effects(n, gpid, effects);
                }
            }
            Pending::MetaAsk(gpid) => {
                let answer = match response {
                    Some(Response::Config(Ok(config))) => MetaAnswer::Config(config),
                    Some(Response::Config(Err(e))) if e.code == ErrorCode::ERR_INVALID_VERSION => MetaAnswer::Stale,
                    Some(_) => MetaAnswer::Refused,
                    None => MetaAnswer::Unknown,
                };
                let wall = wall_secs(self.now);
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.meta_answered(answer, wall);
                    self.run_effects(n, gpid, effects);
                }
            }
            Pending::Refresh(gpid) => {
                let config = match response {
                    Some(Response::Config(Ok(config))) => Some(config),
                    _ => None,
                };
                let wall = wall_secs(self.now);
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.config_refreshed(config, wall);
                    self.run_effects(n, gpid, effects);
                }
            }
            Pending::Beacon { sent_ms } => {
                if let Some(Response::Beacon {
                    incarnation,
                    is_leader: true,
                }) = response
                {
                    let change = self.nodes[n].tracker.on_ack(self.now, sent_ms, incarnation);
                    if change.lost {
                        self.lease_lost(n);
                    }
                    if let Some(incarnation) = change.granted {
                        self.nodes[n].lease_held = true;
                        self.nodes[n].incarnation = incarnation;
                        self.sync(n);
                    }
                }
            }
            Pending::Sync { incarnation } => {
                self.nodes[n].syncing = false;
                match response {
                    Some(Response::ConfigSync {
                        configs,
                        incarnation: answered,
                    }) if answered == incarnation && self.nodes[n].incarnation == incarnation => {
                        for config in configs {
                            let _ = self.update_config(n, config, incarnation);
                        }
                    }
                    _ => self.schedule_timer(me, timing::SYNC_RETRY, Timer::SyncRetry),
                }
            }
            Pending::StartLearner { gpid, learner } if !matches!(response, Some(Response::Done(Ok(())))) => {
                if let Some(replica) = self.replica(n, gpid) {
                    let effects = replica.core.learner_failed(learner, "could not start learning");
                    self.run_effects(n, gpid, effects);
                }
            }
            Pending::Learn { gpid, ballot } => {
                let matches = self.nodes[n].replicas.get(&gpid).is_some_and(|r| {
                    r.learning.is_some_and(|l| l.ballot == ballot) && r.core.role() == ReplicaStatus::Learner
                });
                if !matches {
                    return;
                }
                match response {
                    Some(Response::Learn(Ok(LearnAnswer::NotYet))) => {
                        self.schedule_timer(me, 100, Timer::LearnAgain(gpid));
                    }
                    Some(Response::Learn(Ok(LearnAnswer::Joined { state, committed }))) => {
                        let disk = self.nodes[n].disks.get_mut(&gpid).expect("a disk");
                        disk.current = (*state).clone();
                        disk.flushed = *state;
                        disk.learning = false;
                        let replica = self.replica(n, gpid).expect("learning");
                        replica.core.learned_up_to(committed);
                        let effects = replica.core.learning_joined(committed);
                        self.run_effects(n, gpid, effects);
                        self.note(format!("node {n}: {gpid} joined at {committed}"));
                        let primary = self.nodes[n].replicas[&gpid].learning.expect("learning").primary;
                        let request = Request::LearnCompleted { gpid, ballot };
                        self.call(
                            me,
                            Endpoint::Node(primary),
                            request,
                            timing::RPC_TIMEOUT,
                            Pending::LearnCompleted { gpid },
                        );
                    }
                    _ => self.stop_learning(n, gpid),
                }
            }
            Pending::LearnCompleted { gpid } => match response {
                Some(Response::Done(Ok(()))) => {}
                Some(Response::Done(Err(e))) if e.code == ErrorCode::ERR_BUSY => {
                    if let Some(learning) = self.nodes[n].replicas.get(&gpid).and_then(|r| r.learning) {
                        let request = Request::LearnCompleted {
                            gpid,
                            ballot: learning.ballot,
                        };
                        let to = Endpoint::Node(learning.primary);
                        self.call(me, to, request, timing::RPC_TIMEOUT, Pending::LearnCompleted { gpid });
                    }
                }
                _ => self.stop_learning(n, gpid),
            },
            _ => {}
        }
    }
}
