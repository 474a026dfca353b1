//! `FailureDetector`: the meta server's view of which replica servers are alive. It answers beacons
//! (replica servers renew their lease with them) and tells `ServerState` when a node becomes alive
//! or dead. It is its own actor so that beacons never wait behind a meta-store write.
//!
//! A node is dead once no beacon arrived for `fd_grace_seconds` (measured on this process's
//! monotonic clock). Nodes the meta remembers from the cluster map but has not heard from since it
//! started get one grace period before they are declared dead.
//!
//! Each life of a node (from becoming alive, or being remembered, to being declared dead) has an
//! incarnation: a random number carried by every beacon acknowledgement and by every
//! configuration the meta makes for the node. A node that was declared dead and came back gets a
//! new one, so it can tell configurations made for its earlier life (still in flight) from
//! current ones.

use crate::lease::Liveness;
use actix::prelude::*;
use aerie_common::{Clock, NodeAddr, WireResult};
use aerie_proto::meta::{Beacon, BeaconAck};
use aerie_rpc::Inbound;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// A node became alive (`alive = true`, with the incarnation of this life) or dead.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct NodeLiveness {
    pub node: NodeAddr,
    pub alive: bool,
    pub incarnation: u64,
}

/// A fresh incarnation: random, never 0 (0 means "none").
pub fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish().max(1)
}

/// Nodes the cluster map names: each gets one grace period from now, unless already known.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RememberNodes(pub Vec<NodeAddr>);

/// Forget every node (this meta stopped leading; the next term starts from the cluster map).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ResetDetector;

/// Stop tracking a node (it was removed from the cluster).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ForgetNode(pub NodeAddr);

struct Tracked {
    liveness: Liveness,
    alive: bool,
    incarnation: u64,
}

pub struct FailureDetector {
    me: NodeAddr,
    grace_ms: u64,
    check_interval: Duration,
    clock: Arc<dyn Clock>,
    listener: Recipient<NodeLiveness>,
    nodes: BTreeMap<NodeAddr, Tracked>,
}

impl FailureDetector {
    pub fn new(
        me: NodeAddr,
        grace: Duration,
        check_interval: Duration,
        clock: Arc<dyn Clock>,
        listener: Recipient<NodeLiveness>,
    ) -> Self {
        FailureDetector {
            me,
            grace_ms: grace.as_millis() as u64,
            check_interval,
            clock,
            listener,
            nodes: BTreeMap::new(),
        }
    }

    fn check(&mut self) {
        let now = self.clock.now_ms();
        for (node, tracked) in self.nodes.iter_mut() {
            if tracked.alive && !tracked.liveness.is_alive(now) {
                tracked.alive = false;
                warn!(%node, silent_ms = tracked.liveness.silent_for(now), "replica server is dead: no beacon within the grace period");
                self.listener.do_send(NodeLiveness {
                    node: *node,
                    alive: false,
                    incarnation: tracked.incarnation,
                });
            }
        }
    }
}

impl Actor for FailureDetector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.check_interval, |act, _| act.check());
    }
}

impl Handler<Inbound<Beacon>> for FailureDetector {
    type Result = WireResult<BeaconAck>;

    fn handle(&mut self, Inbound(beacon): Inbound<Beacon>, _: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        let grace = self.grace_ms;
        let tracked = self.nodes.entry(beacon.node).or_insert_with(|| Tracked {
            liveness: Liveness::new(grace, now),
            alive: false,
            incarnation: 0,
        });
        tracked.liveness.on_beacon(now);
        if !tracked.alive {
            tracked.alive = true;
            tracked.incarnation = new_incarnation();
            info!(node = %beacon.node, incarnation = tracked.incarnation, "replica server is alive");
            // Sent before the acknowledgement: whatever the node asks next finds it known.
            self.listener.do_send(NodeLiveness {
                node: beacon.node,
                alive: true,
                incarnation: tracked.incarnation,
            });
        }
        Ok(BeaconAck {
            is_leader: true,
            leader: Some(self.me),
            incarnation: tracked.incarnation,
        })
    }
}

impl Handler<RememberNodes> for FailureDetector {
    type Result = ();

    fn handle(&mut self, RememberNodes(nodes): RememberNodes, _: &mut Self::Context) {
        let now = self.clock.now_ms();
        for node in nodes {
            let grace = self.grace_ms;
            if self.nodes.contains_key(&node) {
                continue;
            }
            let incarnation = new_incarnation();
            self.nodes.insert(
                node,
                Tracked {
                    liveness: Liveness::new(grace, now),
                    alive: true,
                    incarnation,
                },
            );
            self.listener.do_send(NodeLiveness {
                node,
                alive: true,
                incarnation,
            });
        }
    }
}

impl Handler<ForgetNode> for FailureDetector {
    type Result = ();

    fn handle(&mut self, ForgetNode(node): ForgetNode, _: &mut Self::Context) {
        self.nodes.remove(&node);
    }
}

impl Handler<ResetDetector> for FailureDetector {
    type Result = ();

    fn handle(&mut self, _: ResetDetector, _: &mut Self::Context) {
        self.nodes.clear();
    }
}
