//! A replica server in maintenance (`node_maintenance`, the model is Kudu's maintenance mode and
//! CockroachDB's drain): while on, the cure and the balancer put no new replica on it, and a replica
//! it dropped waits for it, however long it is down, instead of being copied elsewhere after the
//! assign delay (unless the partition is down to its primary alone). It ends by command or by itself
//! at its deadline (at most `maintenance_max_seconds`), after which the normal cure applies. The set
//! and its deadlines (wall-clock seconds) are kept in the meta store, so a new leader honours them.

use super::{err, ServerState};
use crate::meta::balancer::actor::KickBalancer;
use actix::prelude::*;
use aerie_common::{ErrorCode, NodeAddr, WireResult};
use aerie_proto::meta::NodeMaintenance;
use aerie_rpc::Inbound;
use std::collections::{BTreeMap, BTreeSet};
use tracing::info;

impl ServerState {
    /// The maintenances that have not ended yet: (node, when it ends).
    fn active_maintenance(&self) -> impl Iterator<Item = (NodeAddr, u64)> + '_ {
        let now = self.params.clock.wall_secs();
        self.maintenance
            .iter()
            .filter(move |(_, until)| **until > now)
            .map(|(node, until)| (*node, *until))
    }

    /// The nodes in maintenance now.
    pub(super) fn maintenance_now(&self) -> BTreeSet<NodeAddr> {
        self.active_maintenance().map(|(node, _)| node).collect()
    }

    /// When `node`'s maintenance ends, if it is in maintenance.
    pub(super) fn maintenance_until(&self, node: NodeAddr) -> Option<u64> {
        self.active_maintenance()
            .find(|(n, _)| *n == node)
            .map(|(_, until)| until)
    }

    /// The maintenance set after `req`, without entries that ended: the new map and the answer.
    fn next_maintenance(&self, req: &NodeMaintenance) -> WireResult<(BTreeMap<NodeAddr, u64>, Option<u64>)> {
        let now = self.params.clock.wall_secs();
        let max = self.params.maintenance_max.as_secs();
        let mut next: BTreeMap<NodeAddr, u64> = self.active_maintenance().collect();
        if !req.on {
            next.remove(&req.node);
            return Ok((next, None));
        }
        if !self.nodes.contains_key(&req.node) {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("{} is not a replica server of this cluster", req.node),
            ));
        }
        let seconds = req.seconds.unwrap_or(max);
        if seconds == 0 || seconds > max {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("maintenance lasts 1 to {max} seconds (meta_server.maintenance_max_seconds); {seconds} asked"),
            ));
        }
        let until = now + seconds;
        next.insert(req.node, until);
        Ok((next, Some(until)))
    }
}

impl Handler<Inbound<NodeMaintenance>> for ServerState {
    type Result = ResponseFuture<WireResult<Option<u64>>>;

    fn handle(&mut self, Inbound(req): Inbound<NodeMaintenance>, ctx: &mut Self::Context) -> Self::Result {
        let planned = self
            .check_loaded()
            .and_then(|_| self.check_not_blind())
            .and_then(|_| self.next_maintenance(&req));
        let (next, until) = match planned {
            Ok(planned) => planned,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let op = self.layout.set_maintenance_op(&next);
        let node = req.node;
        let written = self.persist_then(ctx, vec![op], move |act, ctx| {
            info!(%node, until_secs = ?until, "node maintenance {}", if until.is_some() { "on" } else { "off" });
            act.maintenance = next;
            act.balancer.do_send(KickBalancer);
            act.schedule_cure(ctx);
        });
        Box::pin(async move {
            written
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            Ok(until)
        })
    }
}
