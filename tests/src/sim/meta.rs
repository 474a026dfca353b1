//! The simulated meta server: failure detection with the real `Liveness` arithmetic and
//! incarnations, the cure with the real `guardian::cure` and meta levels, and primaries' requests
//! with the real `plan_primary_request`. The partition configurations survive a restart (they are
//! in the meta store); everything else starts over, as a new leader does.

use super::net::{node_addr, node_index, Endpoint, Request, Response};
use super::{timing, Pending, Process, Sim, Timer};
use aerie_actors::lease::Liveness;
use aerie_actors::meta::guardian::{apply_action, cure, ClusterView, CureAction, CureKnobs, CureOutcome, ReplicaState};
use aerie_actors::meta::level::{cure_allows, effective_level, FreezeRule};
use aerie_actors::meta::placement::NodeLoad;
use aerie_actors::meta::primary_request::{plan_primary_request, RequestContext, RequestPlan};
use aerie_common::{Gpid, MetaLevel, NodeAddr, WireError};
use aerie_proto::meta::{PartitionChange, PartitionConfig, UpdatePartitionConfig};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

struct Tracked {
    liveness: Liveness,
    alive: bool,
    incarnation: u64,
}

pub(crate) struct Meta {
    pub process: Process,
    /// The meta store: survives restarts.
    pub partitions: BTreeMap<Gpid, PartitionConfig>,
    fd: BTreeMap<usize, Tracked>,
    alive_since: BTreeMap<NodeAddr, u64>,
    dropped_at: BTreeMap<Gpid, BTreeMap<NodeAddr, u64>>,
    reports: BTreeMap<Gpid, BTreeMap<NodeAddr, ReplicaState>>,
    pub(crate) adding: BTreeMap<Gpid, (NodeAddr, i64, u64)>,
    knobs: CureKnobs,
    nodes: usize,
}

/// An add-secondary action that neither finished nor failed by then may be tried again.
const ADD_TIMEOUT: u64 = 20_000;

impl Meta {
    pub fn new(nodes: usize, partitions: u32) -> Self {
        // The table as `create` places it: partition i on nodes i, i+1, i+2, primary first.
        let partitions = (0..partitions)
            .map(|p| {
                let gpid = Gpid::new(1, p);
                let members: Vec<NodeAddr> = (0..3).map(|k| node_addr((p as usize + k) % nodes)).collect();
                let config = PartitionConfig {
                    gpid,
                    ballot: 1,
                    primary: Some(members[0]),
                    secondaries: members[1..].to_vec(),
                    max_replica_count: 3,
                    last_drops: Vec::new(),
                    last_committed_decree: 0,
                };
                (gpid, config)
            })
            .collect();
        Meta {
            process: Process::default(),
            partitions,
            fd: BTreeMap::new(),
            alive_since: BTreeMap::new(),
            dropped_at: BTreeMap::new(),
            reports: BTreeMap::new(),
            adding: BTreeMap::new(),
            knobs: CureKnobs {
                assign_delay_ms: timing::ASSIGN_DELAY,
                black_list: BTreeSet::new(),
                flow_control: true,
                max_adds_per_node: 10,
            },
            nodes,
        }
    }

    fn alive(&self) -> BTreeSet<NodeAddr> {
        self.fd
            .iter()
            .filter(|(_, t)| t.alive)
            .map(|(n, _)| node_addr(*n))
            .collect()
    }

    fn incarnation_of(&self, n: usize) -> u64 {
        self.fd.get(&n).filter(|t| t.alive).map_or(0, |t| t.incarnation)
    }
}

impl Sim {
    fn new_incarnation(&mut self) -> u64 {
        self.rng.random_range(1..u64::MAX)
    }

    /// Starts (or restarts) the meta: it loads the configurations and gives every node they name
    /// one grace period, with a new incarnation.
    pub(crate) fn meta_start(&mut self) {
        self.meta.process.up = true;
        self.meta.process.life += 1;
        self.meta.process.paused_until = None;
        self.meta.fd.clear();
        self.meta.alive_since.clear();
        self.meta.dropped_at.clear();
        self.meta.reports.clear();
        self.meta.adding.clear();
        let named: BTreeSet<usize> = self
            .meta
            .partitions
            .values()
            .flat_map(|p| p.members().map(node_index).collect::<Vec<_>>())
            .collect();
        for n in named {
            let incarnation = self.new_incarnation();
            self.meta.fd.insert(
                n,
                Tracked {
                    liveness: Liveness::new(timing::GRACE, self.now),
                    alive: true,
                    incarnation,
                },
            );
            self.meta.alive_since.insert(node_addr(n), self.now);
        }
        self.schedule_timer(Endpoint::Meta, timing::FD_CHECK, Timer::FdCheck);
        self.schedule_timer(Endpoint::Meta, timing::CURE, Timer::Cure);
    }

    pub(crate) fn meta_crash(&mut self) {
        self.meta.process.up = false;
        self.meta.process.life += 1;
        self.meta.process.paused_until = None;
        self.forget_calls(Endpoint::Meta);
    }

    pub(crate) fn meta_timer(&mut self, timer: Timer) {
        match timer {
            Timer::FdCheck => {
                let now = self.now;
                let dead: Vec<usize> = self
                    .meta
                    .fd
                    .iter()
                    .filter(|(_, t)| t.alive && !t.liveness.is_alive(now))
                    .map(|(n, _)| *n)
                    .collect();
                for n in dead {
                    let tracked = self.meta.fd.get_mut(&n).expect("tracked");
                    tracked.alive = false;
                    tracked.incarnation = 0;
                    let addr = node_addr(n);
                    for reports in self.meta.reports.values_mut() {
                        reports.remove(&addr);
                    }
                    self.meta.adding.retain(|_, (node, _, _)| *node != addr);
                    self.note(format!("meta: node {n} is dead"));
                }
                self.schedule_timer(Endpoint::Meta, timing::FD_CHECK, Timer::FdCheck);
            }
            Timer::Cure => {
                self.run_cure();
                self.schedule_timer(Endpoint::Meta, timing::CURE, Timer::Cure);
            }
            _ => {}
        }
    }

    fn loads(&self) -> BTreeMap<NodeAddr, NodeLoad> {
        let mut loads: BTreeMap<NodeAddr, NodeLoad> = BTreeMap::new();
        for partition in self.meta.partitions.values() {
            if let Some(primary) = partition.primary {
                loads.entry(primary).or_default().primaries += 1;
            }
            for node in partition.members() {
                loads.entry(node).or_default().replicas += 1;
            }
        }
        loads
    }

    fn run_cure(&mut self) {
        let now = self.now;
        let alive = self.meta.alive();
        let (level, _) = effective_level(
            MetaLevel::Steady,
            alive.len(),
            self.meta.fd.len().max(self.meta.nodes),
            &FreezeRule {
                min_live_node_count_for_unfreeze: 3,
                node_live_percentage_threshold_for_update: 50,
            },
        );
        let ballots: BTreeMap<Gpid, i64> = self.meta.partitions.iter().map(|(g, p)| (*g, p.ballot)).collect();
        self.meta
            .adding
            .retain(|g, (_, ballot, started)| ballots.get(g) == Some(ballot) && now - *started < ADD_TIMEOUT);
        let loads = self.loads();
        let mut adds_per_node: BTreeMap<NodeAddr, u32> = BTreeMap::new();
        for (node, _, _) in self.meta.adding.values() {
            *adds_per_node.entry(*node).or_default() += 1;
        }
        let empty_drops = BTreeMap::new();
        let empty_reports = BTreeMap::new();
        let no_maintenance = BTreeSet::new();
        let mut actions = Vec::new();
        for partition in self.meta.partitions.values() {
            let view = ClusterView {
                alive: &alive,
                total_load: &loads,
                table_load: &loads,
                dropped_at: self.meta.dropped_at.get(&partition.gpid).unwrap_or(&empty_drops),
                alive_since: &self.meta.alive_since,
                rejoin_after_ms: timing::GRACE,
                reports: self.meta.reports.get(&partition.gpid).unwrap_or(&empty_reports),
                adding: self.meta.adding.get(&partition.gpid).map(|(n, _, _)| *n),
                adds_per_node: &adds_per_node,
                knobs: &self.meta.knobs,
                maintenance: &no_maintenance,
                now_ms: now,
            };
            if let CureOutcome::Act(action) = cure(partition, &view) {
                if let CureAction::AddSecondary(node) = action {
                    *adds_per_node.entry(node).or_default() += 1;
                }
                actions.push((partition.gpid, action));
            }
        }
        for (gpid, action) in actions {
            let removed_alive = matches!(action, CureAction::RemoveSecondary(n) if alive.contains(&n));
            if !cure_allows(level, action, removed_alive) {
                continue;
            }
            self.execute(gpid, action, "cure");
        }
    }

    /// Carries out one cure action (or an operator's proposal).
    pub(crate) fn execute(&mut self, gpid: Gpid, action: CureAction, by: &str) {
        let config = self.meta.partitions[&gpid].clone();
        match action {
            CureAction::AddSecondary(learner) => {
                let Some(primary) = config.primary else {
                    return;
                };
                self.meta.adding.insert(gpid, (learner, config.ballot, self.now));
                let request = Request::AddLearner {
                    gpid,
                    ballot: config.ballot,
                    learner,
                };
                let pending = Pending::AddLearner {
                    gpid,
                    learner,
                    ballot: config.ballot,
                };
                self.call(
                    Endpoint::Meta,
                    Endpoint::Node(node_index(primary)),
                    request,
                    timing::RPC_TIMEOUT,
                    pending,
                );
            }
            change => {
                let next = apply_action(&config, change).expect("a configuration change");
                self.note(format!("meta: {gpid} ballot {} by {by}: {change}", next.ballot));
                self.install(next);
            }
        }
    }

    /// Applies a persisted configuration and tells the nodes concerned (each for its incarnation).
    fn install(&mut self, next: PartitionConfig) {
        let gpid = next.gpid;
        let previous = self
            .meta
            .partitions
            .insert(gpid, next.clone())
            .expect("known partition");
        let drops = self.meta.dropped_at.entry(gpid).or_default();
        for node in &next.last_drops {
            if !previous.last_drops.contains(node) {
                drops.insert(*node, self.now);
            }
        }
        drops.retain(|node, _| next.last_drops.contains(node));
        if self.meta.adding.get(&gpid).is_some_and(|(_, b, _)| *b != next.ballot) {
            self.meta.adding.remove(&gpid);
        }
        let alive = self.meta.alive();
        let mut targets: Vec<NodeAddr> = next.members().collect();
        for node in previous.members() {
            if !next.is_member(node) && alive.contains(&node) {
                targets.push(node);
            }
        }
        for node in targets {
            let n = node_index(node);
            let request = Request::ConfigUpdate {
                config: next.clone(),
                incarnation: self.meta.incarnation_of(n),
            };
            self.call(
                Endpoint::Meta,
                Endpoint::Node(n),
                request,
                timing::RPC_TIMEOUT,
                Pending::Ignore,
            );
        }
    }

    pub(crate) fn meta_request(&mut self, from: Endpoint, call: u64, request: Request) {
        let me = Endpoint::Meta;
        match (from, request) {
            (Endpoint::Node(n), Request::Beacon { .. }) => {
                let now = self.now;
                let fresh = self.new_incarnation();
                let tracked = self.meta.fd.entry(n).or_insert_with(|| Tracked {
                    liveness: Liveness::new(timing::GRACE, now),
                    alive: false,
                    incarnation: 0,
                });
                tracked.liveness.on_beacon(now);
                let revived = !tracked.alive;
                if revived {
                    tracked.alive = true;
                    tracked.incarnation = fresh;
                }
                let incarnation = tracked.incarnation;
                if revived {
                    self.meta.alive_since.insert(node_addr(n), now);
                    self.note(format!("meta: node {n} is alive"));
                }
                self.reply(
                    me,
                    from,
                    call,
                    Response::Beacon {
                        incarnation,
                        is_leader: true,
                    },
                );
            }
            (Endpoint::Node(n), Request::ConfigSync { reports }) => {
                let addr = node_addr(n);
                for report in reports {
                    let state = ReplicaState {
                        ballot: report.ballot,
                        last_committed: report.committed,
                        last_prepared: report.prepared,
                    };
                    self.meta.reports.entry(report.gpid).or_default().insert(addr, state);
                }
                let configs = self
                    .meta
                    .partitions
                    .values()
                    .filter(|p| p.is_member(addr))
                    .cloned()
                    .collect();
                let incarnation = self.meta.incarnation_of(n);
                self.reply(me, from, call, Response::ConfigSync { configs, incarnation });
            }
            (Endpoint::Node(n), Request::UpdatePartitionConfig { gpid, ballot, change }) => {
                let answer = self.primary_request(UpdatePartitionConfig {
                    gpid,
                    ballot,
                    requester: node_addr(n),
                    change,
                });
                self.reply(me, from, call, Response::Config(answer));
            }
            (_, Request::QueryPartition { gpid }) => {
                let config = self.meta.partitions[&gpid].clone();
                self.reply(me, from, call, Response::Config(Ok(config)));
            }
            (_, Request::QueryConfig) => {
                let configs = self.meta.partitions.values().cloned().collect();
                self.reply(me, from, call, Response::Configs(configs));
            }
            _ => {}
        }
    }

    fn primary_request(&mut self, req: UpdatePartitionConfig) -> Result<PartitionConfig, WireError> {
        if let PartitionChange::LearnerFailed(node) = req.change {
            if self.meta.adding.get(&req.gpid).is_some_and(|(n, _, _)| *n == node) {
                self.meta.adding.remove(&req.gpid);
            }
        }
        let config = self.meta.partitions[&req.gpid].clone();
        let learner_alive = match req.change {
            PartitionChange::UpgradeLearner(node) => self.meta.alive().contains(&node),
            _ => false,
        };
        let context = RequestContext {
            learner_alive,
            move_adds_learner: false,
        };
        match plan_primary_request(&config, &req, context)? {
            RequestPlan::Current => Ok(config),
            RequestPlan::Change(next) => {
                self.note(format!(
                    "meta: {} ballot {} at the primary's request: {:?}",
                    next.gpid, next.ballot, req.change
                ));
                self.install(next.clone());
                Ok(next)
            }
        }
    }

    pub(crate) fn meta_response(&mut self, pending: Pending, response: Option<Response>) {
        if let Pending::AddLearner { gpid, learner, ballot } = pending {
            let failed = !matches!(response, Some(Response::Done(Ok(()))));
            if failed
                && self
                    .meta
                    .adding
                    .get(&gpid)
                    .is_some_and(|(n, b, _)| *n == learner && *b == ballot)
            {
                self.meta.adding.remove(&gpid);
            }
        }
    }
}
