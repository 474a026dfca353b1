//! The simulated network: who talks to whom, the messages (modelled on the real RPCs), and the
//! faults a link can have (cut, lossy, slow). Every delay and drop comes from the simulation's
//! seeded random generator, so a seed replays exactly.

use aerie_common::{Ballot, Decree, Gpid, NodeAddr, WireResult};
use aerie_proto::data::{WriteOp, WriteResult};
use aerie_proto::meta::{PartitionChange, PartitionConfig};
use aerie_proto::replica::{ClientRequest, GroupCheck, Mutation, PrepareAck, ReplicaStatus};
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::engine::EngineState;

/// A process of the simulated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Meta,
    Node(usize),
    Client(usize),
}

/// The address of a replica server (node `i`: 127.0.0.(11 + i)).
pub fn node_addr(i: usize) -> NodeAddr {
    format!("127.0.0.{}:34801", 11 + i).parse().expect("an address")
}

pub fn node_index(addr: NodeAddr) -> usize {
    match addr.socket_addr().ip() {
        std::net::IpAddr::V4(ip) => ip.octets()[3] as usize - 11,
        std::net::IpAddr::V6(_) => unreachable!("simulated nodes are IPv4"),
    }
}

/// What a replica server reports about one replica in a sync.
#[derive(Debug, Clone)]
pub struct Report {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub committed: Decree,
    pub prepared: Decree,
}

#[derive(Debug, Clone)]
pub enum Request {
    // Replica to replica.
    Prepare {
        mutation: Arc<Mutation>,
    },
    GroupCheck(GroupCheck),
    StartLearning {
        gpid: Gpid,
        ballot: Ballot,
    },
    LearnRequest {
        gpid: Gpid,
        ballot: Ballot,
    },
    LearnCompleted {
        gpid: Gpid,
        ballot: Ballot,
    },
    // Replica server to meta.
    Beacon {
        sent_ms: u64,
    },
    ConfigSync {
        reports: Vec<Report>,
    },
    UpdatePartitionConfig {
        gpid: Gpid,
        ballot: Ballot,
        change: PartitionChange,
    },
    QueryPartition {
        gpid: Gpid,
    },
    // Meta to replica server.
    ConfigUpdate {
        config: PartitionConfig,
        incarnation: u64,
    },
    AddLearner {
        gpid: Gpid,
        ballot: Ballot,
        learner: NodeAddr,
    },
    // Client.
    QueryConfig,
    ClientWrite {
        gpid: Gpid,
        request: ClientRequest,
        op: WriteOp,
    },
    ClientRead {
        gpid: Gpid,
        hash_key: Vec<u8>,
        sort_key: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub enum Response {
    Prepare(WireResult<PrepareAck>),
    Done(WireResult<()>),
    Learn(WireResult<LearnAnswer>),
    Beacon {
        incarnation: u64,
        is_leader: bool,
    },
    ConfigSync {
        configs: Vec<PartitionConfig>,
        incarnation: u64,
    },
    Config(WireResult<PartitionConfig>),
    Configs(Vec<PartitionConfig>),
    Write(WireResult<WriteResult>),
    Read(WireResult<Option<Vec<u8>>>),
}

/// The primary's answer to a learner.
#[derive(Debug, Clone)]
pub enum LearnAnswer {
    /// Not caught up with its own commits yet: ask again.
    NotYet,
    /// Everything up to `committed` (in `state`); prepares follow from here on.
    Joined { state: Box<EngineState>, committed: Decree },
}

#[derive(Debug, Clone)]
pub enum Message {
    Request {
        call: u64,
        from: Endpoint,
        request: Request,
    },
    Response {
        call: u64,
        response: Response,
    },
}

/// The replica's role, as a test observes it.
pub type Role = ReplicaStatus;

/// Link faults, and the order of messages: like TCP, a link delivers in the order it was given
/// messages (a later message never overtakes an earlier one between the same two processes).
#[derive(Debug, Default)]
pub struct Links {
    /// When the last message on each directed link arrives.
    last_arrival: std::collections::BTreeMap<(Endpoint, Endpoint), u64>,
    /// Pairs that cannot talk, in both directions.
    cut: BTreeSet<(Endpoint, Endpoint)>,
    /// Probability that a message is lost (a lossy network), in per mille.
    pub loss_per_mille: u32,
    /// Nodes whose messages take much longer (a slow or congested host).
    pub slow: BTreeSet<Endpoint>,
}

impl Links {
    fn key(a: Endpoint, b: Endpoint) -> (Endpoint, Endpoint) {
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    pub fn cut(&mut self, a: Endpoint, b: Endpoint) {
        self.cut.insert(Self::key(a, b));
    }

    pub fn uncut(&mut self, a: Endpoint, b: Endpoint) {
        self.cut.remove(&Self::key(a, b));
    }

    pub fn heal_all(&mut self) {
        self.cut.clear();
        self.loss_per_mille = 0;
        self.slow.clear();
    }

    pub fn is_cut(&self, a: Endpoint, b: Endpoint) -> bool {
        self.cut.contains(&Self::key(a, b))
    }

    /// When (after how long) a message sent at `now` arrives, or `None` if it is lost.
    pub fn transit(&mut self, from: Endpoint, to: Endpoint, now: u64, rng: &mut SmallRng) -> Option<u64> {
        let delay = self.delay(from, to, rng)?;
        let last = self.last_arrival.entry((from, to)).or_insert(0);
        let arrival = (now + delay).max(*last);
        *last = arrival;
        Some(arrival - now)
    }

    fn delay(&self, from: Endpoint, to: Endpoint, rng: &mut SmallRng) -> Option<u64> {
        if self.is_cut(from, to) {
            return None;
        }
        if self.loss_per_mille > 0 && rng.random_range(0..1000) < self.loss_per_mille {
            return None;
        }
        let mut delay = rng.random_range(1..=4);
        // Now and then a message takes far longer: reordering.
        if rng.random_range(0..100) < 3 {
            delay += rng.random_range(10..150);
        }
        if self.slow.contains(&from) || self.slow.contains(&to) {
            delay += rng.random_range(50..400);
        }
        Some(delay)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cut links, {}‰ loss, {} slow",
            self.cut.len(),
            self.loss_per_mille,
            self.slow.len()
        )
    }
}
