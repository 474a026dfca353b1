//! Requests from a partition's primary to change its configuration: remove a secondary that failed
//! to acknowledge, upgrade a learner that caught up, or report that learning failed.
//!
//! A request names the ballot the primary serves. At that ballot it is carried out (ballot + 1,
//! persisted, then applied); if the partition is one ballot further and the change is already
//! there, it is the same request sent again and is answered OK; anything else is stale and answered
//! `ERR_INVALID_VERSION` with the current ballot.

use super::{err, ServerState};
use crate::meta::primary_request::{plan_primary_request, RequestContext, RequestPlan};
use actix::prelude::*;
use aerie_common::{ErrorCode, WireResult};
use aerie_proto::meta::{PartitionChange, PartitionConfig, UpdatePartitionConfig};
use aerie_rpc::Inbound;
use tracing::info;

impl ServerState {
    fn plan_change(&self, req: &UpdatePartitionConfig) -> WireResult<RequestPlan> {
        self.check_loaded()?;
        self.check_not_blind()?;
        let (_, config) = self.partition(req.gpid).ok_or_else(|| {
            err(
                ErrorCode::ERR_OBJECT_NOT_FOUND,
                format!("partition {} does not exist", req.gpid),
            )
        })?;
        let context = match req.change {
            PartitionChange::UpgradeLearner(node) => RequestContext {
                learner_alive: self.nodes.get(&node) == Some(&true),
                move_adds_learner: self.move_adds(req.gpid, node),
            },
            _ => RequestContext {
                learner_alive: false,
                move_adds_learner: false,
            },
        };
        plan_primary_request(config, req, context)
    }
}

impl Handler<Inbound<UpdatePartitionConfig>> for ServerState {
    type Result = ResponseFuture<WireResult<PartitionConfig>>;

    fn handle(&mut self, Inbound(req): Inbound<UpdatePartitionConfig>, ctx: &mut Self::Context) -> Self::Result {
        if let PartitionChange::LearnerFailed(node) = req.change {
            if self.adding.get(&req.gpid).is_some_and(|a| a.node == node) {
                info!(gpid = %req.gpid, %node, "learning given up by the primary; the cure may try again");
                self.adding.remove(&req.gpid);
                if self.move_adds(req.gpid, node) {
                    self.end_move(req.gpid, Err(format!("learning on {node} failed")));
                }
            }
        }
        let next = match self.plan_change(&req) {
            Ok(RequestPlan::Change(next)) => next,
            Ok(RequestPlan::Current) => {
                let current = self.partition(req.gpid).map(|(_, c)| c.clone());
                return Box::pin(async move {
                    current.ok_or_else(|| err(ErrorCode::ERR_OBJECT_NOT_FOUND, "the partition is gone"))
                });
            }
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let ops = vec![self.layout.set_partition_op(&next)];
        let change = req.change;
        let applied = self.persist_then(ctx, ops, move |act, ctx| {
            info!(gpid = %next.gpid, ballot = next.ballot, ?change, "configuration changed at the primary's request");
            act.install_partition(next.clone(), ctx);
            next
        });
        Box::pin(async move {
            applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))?
        })
    }
}
