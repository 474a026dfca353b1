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
//! current ones. A node whose process restarted within the grace period (a beacon with another
//! boot id) also begins a new life at once: the meta sees it alive again, with a new incarnation,
//! as if it had been declared dead in between (what a rolling restart relies on to give the node
//! its replicas back).

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

/// Whether a beacon's boot id says the process restarted since the last one heard (0 on either
/// side: unknown, so no).
fn restarted(known: u64, beacon: u64) -> bool {
    known != 0 && beacon != 0 && known != beacon
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
    /// The boot id of the process last heard from (0: none yet).
    boot_id: u64,
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
            boot_id: 0,
        });
        tracked.liveness.on_beacon(now);
        let restarted = tracked.alive && restarted(tracked.boot_id, beacon.boot_id);
        if beacon.boot_id != 0 {
            tracked.boot_id = beacon.boot_id;
        }
        if !tracked.alive || restarted {
            tracked.alive = true;
            tracked.incarnation = new_incarnation();
            info!(node = %beacon.node, incarnation = tracked.incarnation, restarted, "replica server is alive");
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
                    boot_id: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::SystemClock;
    use std::sync::Mutex;

    /// Records every liveness event it is told.
    struct Recorder(Arc<Mutex<Vec<NodeLiveness>>>);

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<NodeLiveness> for Recorder {
        type Result = ();
        fn handle(&mut self, event: NodeLiveness, _: &mut Self::Context) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[actix_rt::test]
    async fn a_process_restarted_within_the_grace_period_begins_a_new_life() {
        let events = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder(events.clone()).start();
        let me: NodeAddr = "127.0.0.1:1".parse().unwrap();
        let node: NodeAddr = "127.0.0.1:2".parse().unwrap();
        let detector = FailureDetector::new(
            me,
            Duration::from_secs(60),
            Duration::from_secs(60),
            Arc::new(SystemClock::default()),
            recorder.recipient(),
        )
        .start();
        let beacon = |boot_id| Inbound(Beacon { node, boot_id });
        let first = detector.send(beacon(7)).await.unwrap().unwrap().incarnation;
        let same = detector.send(beacon(7)).await.unwrap().unwrap().incarnation;
        assert_eq!(first, same, "beacons of one process keep its incarnation");
        // A sender that does not say its boot id never looks restarted.
        assert_eq!(detector.send(beacon(0)).await.unwrap().unwrap().incarnation, first);
        let after_restart = detector.send(beacon(8)).await.unwrap().unwrap().incarnation;
        assert_ne!(after_restart, first, "a new process gets a new incarnation");
        assert_eq!(
            detector.send(beacon(8)).await.unwrap().unwrap().incarnation,
            after_restart
        );
        // Let the recorder's mailbox drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let events = events.lock().unwrap();
        let lives: Vec<(bool, u64)> = events.iter().map(|e| (e.alive, e.incarnation)).collect();
        assert_eq!(lives, vec![(true, first), (true, after_restart)]);
    }
}
