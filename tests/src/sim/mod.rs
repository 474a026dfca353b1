//! A deterministic simulation of a whole cluster, for finding replication bugs by the hundred.
//!
//! The replica servers run the real replication core (`aerie_actors::replica::core`), the real
//! lease logic (`LeaseTracker`) and the real replay of a log at restart; the meta runs the real
//! cure (`guardian::cure`), primary-request decisions and failure-detection arithmetic; the
//! clients use the real retry policy and session. What the simulation replaces is everything
//! around them: the network (delays, reordering, loss, cuts), the disks (fsync latency, a crash
//! keeping only what was durable), the clock, and the processes (crash, restart, pause).
//!
//! ```text
//!   seed ─► SmallRng ─► event queue (time, seq) ─► Meta / Node(i) / Client(j) handlers ─► effects ─► events
//!   nemesis: crash, restart, pause past the grace period, cuts, loss, slow disks, meta restart,
//!            an operator's downgrade of a primary
//!   end: heal, wait until fully healthy, read every key ─► linearizability per key + replica digests
//! ```
//!
//! Everything runs on one thread in simulated time, and every choice comes from the seed, so a
//! failing seed replays exactly: `AERIE_SIM_SEED=<seed> cargo test -p aerie-tests --test
//! t40_simulated_cluster -- --nocapture`.

mod client;
pub mod engine;
mod meta;
mod nemesis;
pub mod net;
mod node;

use crate::history::{check_all, History};
use client::Client;
use meta::Meta;
use net::{Endpoint, Links, Message, Request, Response};
use node::Node;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub nodes: usize,
    pub partitions: u32,
    pub clients: usize,
    pub keys_per_partition: usize,
    /// How long faults are injected, in simulated milliseconds.
    pub fault_ms: u64,
    pub faults: bool,
}

impl SimOptions {
    pub fn new(seed: u64) -> Self {
        SimOptions {
            seed,
            nodes: 4,
            partitions: 4,
            clients: 6,
            keys_per_partition: 3,
            fault_ms: 40_000,
            faults: true,
        }
    }
}

/// Timing of the simulated cluster (milliseconds): the shortened settings of the process tests.
pub(crate) mod timing {
    pub const BEACON: u64 = 1_000;
    pub const LEASE: u64 = 3_000;
    pub const GRACE: u64 = 5_000;
    pub const LEASE_CHECK: u64 = 250;
    pub const FD_CHECK: u64 = 250;
    pub const CURE: u64 = 500;
    pub const PREPARE_TIMEOUT: u64 = 1_000;
    pub const PREPARE_RETRY: u64 = 1_000;
    pub const GROUP_CHECK_DELAY: u64 = 20;
    pub const GROUP_CHECK_INTERVAL: u64 = 500;
    pub const RPC_TIMEOUT: u64 = 1_000;
    pub const SYNC_RETRY: u64 = 1_000;
    pub const ASSIGN_DELAY: u64 = 3_000;
    /// `config_sync_interval_ms` (30 s by default; shorter here).
    pub const CONFIG_SYNC: u64 = 5_000;
}

/// What one run found.
#[derive(Debug, Default)]
pub struct SimReport {
    pub seed: u64,
    pub events: u64,
    pub ops_ok: usize,
    pub ops_unknown: usize,
    /// Mutations logged (on any replica) that carried more than one client write.
    pub batched_mutations: u64,
    pub faults: Vec<String>,
    /// Keys whose history no order explains.
    pub violations: Option<String>,
    /// Partitions whose replicas hold different data after quiescence.
    pub divergent: Vec<String>,
    /// Why the cluster did not get back to fully healthy and serving, if it did not.
    pub stuck: Option<String>,
    /// Operations answered with a result of the wrong kind.
    pub wrong_answers: Vec<String>,
}

impl SimReport {
    pub fn passed(&self) -> bool {
        self.violations.is_none() && self.divergent.is_empty() && self.stuck.is_none() && self.wrong_answers.is_empty()
    }

    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {} events, {} ops ok, {} unknown, {} faults",
            self.seed,
            self.events,
            self.ops_ok,
            self.ops_unknown,
            self.faults.len()
        );
        if let Some(v) = &self.violations {
            out.push_str(&format!("\n  NOT LINEARIZABLE: {v}"));
        }
        for d in &self.divergent {
            out.push_str(&format!("\n  DIVERGED: {d}"));
        }
        for w in self.wrong_answers.iter().take(3) {
            out.push_str(&format!("\n  WRONG ANSWER: {w}"));
        }
        if let Some(s) = &self.stuck {
            out.push_str(&format!("\n  STUCK: {s}"));
        }
        if !self.passed() {
            out.push_str("\n  faults:");
            for f in &self.faults {
                out.push_str(&format!("\n    {f}"));
            }
        }
        out
    }
}

fn endpoint_id(endpoint: Endpoint) -> u64 {
    match endpoint {
        Endpoint::Meta => 0,
        Endpoint::Node(n) => 1 + n as u64,
        Endpoint::Client(c) => 1_000 + c as u64,
    }
}

/// A timer of one endpoint.
#[derive(Debug, Clone)]
pub(crate) enum Timer {
    CallTimeout(u64),
    // Replica servers.
    Beacon,
    LeaseCheck,
    Flush,
    GroupChecks,
    SyncRetry,
    PeriodicSync,
    LogDone(aerie_common::Gpid),
    ApplyDone(aerie_common::Gpid),
    ResendDue(aerie_common::Gpid, aerie_common::NodeAddr),
    GroupCheckDue(aerie_common::Gpid),
    LearnAgain(aerie_common::Gpid),
    // Meta.
    FdCheck,
    Cure,
    // Clients.
    NextOp,
    Retry,
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: Endpoint,
        to: Endpoint,
        life: u64,
        msg: Message,
    },
    Timer {
        at: Endpoint,
        life: u64,
        timer: Timer,
    },
    Nemesis,
    Undo(nemesis::Undo),
    Heal,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The process state every endpoint has: whether it runs, which life it is in, whether it is paused.
#[derive(Debug, Default)]
pub(crate) struct Process {
    pub up: bool,
    pub life: u64,
    pub paused_until: Option<u64>,
    deferred: Vec<Event>,
}

/// A call waiting for its response, by the caller.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    Prepare {
        gpid: aerie_common::Gpid,
        to: aerie_common::NodeAddr,
        decree: i64,
        ballot: i64,
    },
    MetaAsk(aerie_common::Gpid),
    Refresh(aerie_common::Gpid),
    Beacon {
        sent_ms: u64,
    },
    Sync {
        incarnation: u64,
    },
    StartLearner {
        gpid: aerie_common::Gpid,
        learner: aerie_common::NodeAddr,
    },
    Learn {
        gpid: aerie_common::Gpid,
        ballot: i64,
    },
    LearnCompleted {
        gpid: aerie_common::Gpid,
    },
    AddLearner {
        gpid: aerie_common::Gpid,
        learner: aerie_common::NodeAddr,
        ballot: i64,
    },
    Ignore,
    ClientConfig,
    ClientOp,
}

pub struct Sim {
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    pub(crate) rng: SmallRng,
    pub(crate) links: Links,
    pub(crate) nodes: Vec<Node>,
    pub(crate) meta: Meta,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: History,
    pub(crate) trace: Vec<String>,
    pub(crate) batched_mutations: u64,
    pending: BTreeMap<(Endpoint, u64), Pending>,
    next_call: u64,
    pub(crate) options: SimOptions,
    /// Keys, per partition: (hash key, sort key).
    pub(crate) keys: Vec<(u32, Vec<u8>)>,
    events: u64,
    /// Clients start new operations only while this is set.
    pub(crate) load_running: bool,
    /// Nodes with a fault under way (one at a time per node).
    pub(crate) faulty: std::collections::BTreeSet<usize>,
    /// Replicas that could not be reopened after a crash (the log lost committed data).
    pub(crate) replay_failures: Vec<String>,
    /// Final reads that failed (the cluster did not serve after healing).
    pub(crate) final_failures: Vec<String>,
    /// Operations answered with a result of the wrong kind (a CAS answered `Done`, ...).
    pub(crate) wrong_answers: Vec<String>,
    /// `AERIE_SIM_WATCH=node:app.pidx:decree` traces what that replica does with that decree.
    pub(crate) watch: Option<(usize, aerie_common::Gpid, i64)>,
}

impl Sim {
    pub fn new(options: SimOptions) -> Self {
        let rng = SmallRng::seed_from_u64(options.seed);
        let keys = client::keys(options.partitions, options.keys_per_partition);
        let mut sim = Sim {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            rng,
            links: Links::default(),
            nodes: (0..options.nodes).map(Node::new).collect(),
            meta: Meta::new(options.nodes, options.partitions),
            clients: (0..options.clients).map(|i| Client::new(i, options.seed)).collect(),
            history: History::new(),
            trace: Vec::new(),
            batched_mutations: 0,
            pending: BTreeMap::new(),
            next_call: 1,
            options,
            keys,
            events: 0,
            load_running: true,
            faulty: Default::default(),
            replay_failures: Vec::new(),
            final_failures: Vec::new(),
            wrong_answers: Vec::new(),
            watch: std::env::var("AERIE_SIM_WATCH").ok().and_then(|w| {
                let mut parts = w.split(':');
                Some((
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                    parts.next()?.parse().ok()?,
                ))
            }),
        };
        sim.meta_start();
        for n in 0..sim.nodes.len() {
            sim.node_start(n);
        }
        for c in 0..sim.clients.len() {
            let delay = sim.rng.random_range(100..500);
            sim.schedule_timer(Endpoint::Client(c), delay, Timer::NextOp);
        }
        sim
    }

    pub(crate) fn process(&mut self, endpoint: Endpoint) -> &mut Process {
        match endpoint {
            Endpoint::Meta => &mut self.meta.process,
            Endpoint::Node(n) => &mut self.nodes[n].process,
            Endpoint::Client(c) => &mut self.clients[c].process,
        }
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    pub(crate) fn schedule_timer(&mut self, at: Endpoint, after_ms: u64, timer: Timer) {
        let life = self.process(at).life;
        self.push(self.now + after_ms, Event::Timer { at, life, timer });
    }

    pub(crate) fn note(&mut self, what: String) {
        self.trace.push(format!("{:>7} ms  {what}", self.now));
    }

    /// Sends a message, if the network lets it through.
    fn send(&mut self, from: Endpoint, to: Endpoint, msg: Message) {
        if let Some(delay) = self.links.transit(from, to, self.now, &mut self.rng) {
            let life = self.process(to).life;
            self.push(self.now + delay, Event::Deliver { from, to, life, msg });
        }
    }

    /// Sends a request and waits at most `timeout_ms` for its response.
    pub(crate) fn call(
        &mut self,
        from: Endpoint,
        to: Endpoint,
        request: Request,
        timeout_ms: u64,
        pending: Pending,
    ) -> u64 {
        let call = self.next_call;
        self.next_call += 1;
        self.pending.insert((from, call), pending);
        self.send(from, to, Message::Request { call, from, request });
        self.schedule_timer(from, timeout_ms, Timer::CallTimeout(call));
        call
    }

    pub(crate) fn reply(&mut self, from: Endpoint, to: Endpoint, call: u64, response: Response) {
        self.send(from, to, Message::Response { call, response });
    }

    /// Forgets every call an endpoint is waiting for (it crashed).
    fn forget_calls(&mut self, endpoint: Endpoint) {
        self.pending.retain(|(e, _), _| *e != endpoint);
    }

    fn deliver(&mut self, to: Endpoint, msg: Message) {
        match msg {
            Message::Request { call, from, request } => match to {
                Endpoint::Meta => self.meta_request(from, call, request),
                Endpoint::Node(n) => self.node_request(n, from, call, request),
                Endpoint::Client(_) => {}
            },
            Message::Response { call, response } => {
                if let Some(pending) = self.pending.remove(&(to, call)) {
                    self.response(to, pending, Some(response));
                }
            }
        }
    }

    fn response(&mut self, at: Endpoint, pending: Pending, response: Option<Response>) {
        match at {
            Endpoint::Meta => self.meta_response(pending, response),
            Endpoint::Node(n) => self.node_response(n, pending, response),
            Endpoint::Client(c) => self.client_response(c, pending, response),
        }
    }

    fn timer(&mut self, at: Endpoint, timer: Timer) {
        if let Timer::CallTimeout(call) = timer {
            if let Some(pending) = self.pending.remove(&(at, call)) {
                self.response(at, pending, None);
            }
            return;
        }
        match at {
            Endpoint::Meta => self.meta_timer(timer),
            Endpoint::Node(n) => self.node_timer(n, timer),
            Endpoint::Client(c) => self.client_timer(c, timer),
        }
    }

    /// Runs events until simulated time `until`.
    fn run_until(&mut self, until: u64) {
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at > until {
                break;
            }
            let Reverse(Scheduled { at, event, .. }) = self.queue.pop().expect("peeked");
            self.now = at;
            self.events += 1;
            let target = match &event {
                Event::Deliver { to, life, .. } => Some((*to, *life)),
                Event::Timer { at, life, .. } => Some((*at, *life)),
                _ => None,
            };
            if let Some((to, life)) = target {
                let process = self.process(to);
                if !process.up || process.life != life {
                    continue;
                }
                if process.paused_until.is_some() {
                    process.deferred.push(event);
                    continue;
                }
            }
            match event {
                Event::Nemesis => self.nemesis(),
                Event::Undo(undo) => self.undo(undo),
                Event::Heal => self.heal(),
                Event::Deliver { to, msg, .. } => self.deliver(to, msg),
                Event::Timer { at, timer, .. } => self.timer(at, timer),
            }
        }
        self.now = self.now.max(until);
    }

    /// A paused endpoint resumes: what waited for it runs now, in no particular order (as a
    /// process woken by SIGCONT handles ready sockets and expired timers), except that messages
    /// from one sender keep their order (one connection).
    pub(crate) fn resume(&mut self, endpoint: Endpoint) {
        let process = self.process(endpoint);
        process.paused_until = None;
        let deferred = std::mem::take(&mut process.deferred);
        let mut queues: BTreeMap<(u8, u64), std::collections::VecDeque<Event>> = BTreeMap::new();
        for (i, event) in deferred.into_iter().enumerate() {
            let source = match &event {
                Event::Deliver { from, .. } => (0, endpoint_id(*from)),
                _ => (1, i as u64),
            };
            queues.entry(source).or_default().push_back(event);
        }
        let mut queues: Vec<std::collections::VecDeque<Event>> = queues.into_values().collect();
        while !queues.is_empty() {
            let pick = self.rng.random_range(0..queues.len());
            let event = queues[pick].pop_front().expect("not empty");
            self.push(self.now, event);
            if queues[pick].is_empty() {
                queues.swap_remove(pick);
            }
        }
    }

    /// The whole run: faults, healing, quiescence, final reads, checks.
    pub fn run(mut self) -> SimReport {
        let fault_end = 2_000 + self.options.fault_ms;
        if self.options.faults {
            self.push(2_000, Event::Nemesis);
        }
        self.push(fault_end, Event::Heal);
        self.run_until(fault_end + 10_000);
        self.load_running = false;
        let mut report = SimReport {
            seed: self.options.seed,
            ..SimReport::default()
        };
        // Let the cluster settle, then wait (bounded) until it is fully healthy and idle.
        let deadline = self.now + 120_000;
        loop {
            self.run_until(self.now + 500);
            match self.quiescent() {
                Ok(()) => break,
                Err(reason) if self.now >= deadline => {
                    report.stuck = Some(format!("120 s after healing: {reason}\n{}", self.describe_state()));
                    break;
                }
                Err(_) => {}
            }
        }
        if report.stuck.is_none() {
            if let Err(e) = self.final_reads() {
                report.stuck = Some(e);
            }
            report.divergent = self.divergence();
        }
        report.divergent.extend(std::mem::take(&mut self.replay_failures));
        report.wrong_answers = std::mem::take(&mut self.wrong_answers);
        let per_key = self.history.per_key();
        let checked = check_all(&per_key, 2_000_000);
        if !checked.is_linearizable() {
            report.violations = Some(checked.describe());
        }
        let (ok, unknown) = self.history.counts();
        report.ops_ok = ok;
        report.ops_unknown = unknown;
        report.batched_mutations = self.batched_mutations;
        report.events = self.events;
        report.faults = std::mem::take(&mut self.trace);
        report
    }
}
