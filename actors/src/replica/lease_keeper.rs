//! `LeaseKeeper`: the replica server's beacons and lease, in an actor of their own so that nothing
//! the `ReplicaStub` does (opening replicas, applying a sync with its mailbox held) can delay a
//! beacon or the noticing of an expired lease.
//!
//! ```text
//!  every beacon interval ─► Beacon ─► meta leader ─► BeaconAck { incarnation }
//!        lease.on_ack(send time) ─► SharedLease { until, incarnation } ─► read by every replica, per request
//!        granted again after a lapse, or a new incarnation ─► stub: LeaseGranted (sync with the meta)
//!  every check interval: expired ─► stub: LeaseLost (every replica goes inactive)
//! ```
//!
//! The replicas never rely on these messages for safety: each read and write checks the shared
//! lease against the clock itself. The messages make the server step down and resync promptly.

use super::MetaLocator;
use crate::lease::{LeaseTracker, SharedLease};
use actix::prelude::*;
use aerie_common::{Clock, NodeAddr};
use aerie_proto::meta::Beacon;
use aerie_rpc::Network;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The lease was granted again after a lapse (or for a new incarnation): sync with the meta.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct LeaseGranted {
    pub incarnation: u64,
}

/// The lease ran out: stop serving.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct LeaseLost;

pub struct LeaseKeeper {
    me: NodeAddr,
    meta: MetaLocator,
    network: Network,
    clock: Arc<dyn Clock>,
    beacon_interval: Duration,
    tracker: LeaseTracker,
    shared: SharedLease,
    listener: Recipient<LeaseGranted>,
    lost: Recipient<LeaseLost>,
    /// When the meta last acknowledged a beacon (clock milliseconds; read by `/health`).
    last_ack_ms: Arc<AtomicU64>,
    /// This process's identity in its beacons (see [`Beacon::boot_id`]).
    boot_id: u64,
}

impl LeaseKeeper {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: NodeAddr,
        meta: MetaLocator,
        network: Network,
        clock: Arc<dyn Clock>,
        beacon_interval: Duration,
        lease: Duration,
        shared: SharedLease,
        listener: Recipient<LeaseGranted>,
        lost: Recipient<LeaseLost>,
        last_ack_ms: Arc<AtomicU64>,
    ) -> Self {
        LeaseKeeper {
            me,
            meta,
            network,
            clock,
            beacon_interval,
            tracker: LeaseTracker::new(lease.as_millis() as u64),
            shared,
            listener,
            lost,
            last_ack_ms,
            boot_id: crate::meta::failure_detector::new_incarnation(),
        }
    }

    fn send_beacon(&mut self, ctx: &mut Context<Self>, follow_leader: bool) {
        let (meta, network, me, boot_id) = (self.meta.clone(), self.network.clone(), self.me, self.boot_id);
        let timeout = self.beacon_interval.max(Duration::from_millis(500));
        let sent_ms = self.clock.now_ms();
        let call = async move { meta.call(&network, Beacon { node: me, boot_id }, timeout).await };
        ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| match answer {
            Ok(Ok(ack)) if ack.is_leader => act.on_ack(sent_ms, ack.incarnation),
            Ok(Ok(ack)) => {
                let asked = act.meta.current();
                match ack.leader {
                    Some(leader) if leader != asked => {
                        info!(%leader, %asked, "beacon answered by a meta server that does not lead; following the leader");
                        act.meta.follow(leader);
                        if follow_leader {
                            act.send_beacon(ctx, false);
                        }
                    }
                    _ => {
                        warn!(%asked, "beacon answered by a meta server that knows no leader");
                        act.meta.rotate();
                    }
                }
                act.check();
            }
            Ok(Err(e)) => warn!(error = %e, "beacon refused"),
            Err(e) => warn!(error = %e, "beacon failed"),
        }));
    }

    /// The leader acknowledged the beacon sent at `sent_ms`.
    fn on_ack(&mut self, sent_ms: u64, incarnation: u64) {
        let now = self.clock.now_ms();
        self.last_ack_ms.store(now.max(1), Ordering::Release);
        let change = self.tracker.on_ack(now, sent_ms, incarnation);
        self.publish();
        if change.lost {
            warn!(node = %self.me, "the lease ran out unnoticed (was the process stopped?); every replica steps down");
            self.lost.do_send(LeaseLost);
        }
        if let Some(incarnation) = change.granted {
            info!(node = %self.me, incarnation, "lease granted; syncing with the meta");
            self.listener.do_send(LeaseGranted { incarnation });
        }
    }

    fn publish(&self) {
        self.shared.set(self.tracker.snapshot());
    }

    /// Notices an expired lease and tells the stub.
    fn check(&mut self) {
        if self.tracker.check(self.clock.now_ms()) {
            warn!(node = %self.me, "lease expired: every replica stops serving until the meta is reachable again");
            self.lost.do_send(LeaseLost);
        }
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish();
        self.send_beacon(ctx, true);
        ctx.run_interval(self.beacon_interval, |act, ctx| act.send_beacon(ctx, true));
        let check_every = (self.beacon_interval / 4).clamp(Duration::from_millis(50), Duration::from_millis(250));
        ctx.run_interval(check_every, |act, _| act.check());
    }
}
