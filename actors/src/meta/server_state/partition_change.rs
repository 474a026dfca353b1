//! Requests from a partition's primary to change its configuration: remove a secondary that failed
//! to acknowledge, upgrade a learner that caught up, or report that learning failed.
//!
//! A request names the ballot the primary serves. At that ballot it is carried out (ballot + 1,
//! persisted, then applied); if the partition is one ballot further and the change is already
//! there, it is the same request sent again and is answered OK; anything else is stale and answered
//! `ERR_INVALID_VERSION` with the current ballot.

use super::{err, ServerState};
use crate::meta::guardian::{apply_action, upgrade_learner, CureAction};
use actix::prelude::*;
use aerie_common::{ErrorCode, WireResult};
use aerie_proto::meta::{PartitionChange, PartitionConfig, UpdatePartitionConfig};
use aerie_rpc::Inbound;
use tracing::info;

/// Whether `config` already reflects `change`.
fn already_applied(config: &PartitionConfig, change: PartitionChange) -> bool {
    match change {
        PartitionChange::RemoveSecondary(node) => !config.is_member(node),
        PartitionChange::UpgradeLearner(node) => config.secondaries.contains(&node),
        PartitionChange::LearnerFailed(_) => true,
    }
}

impl ServerState {
    fn plan_change(&self, req: &UpdatePartitionConfig) -> WireResult<Result<PartitionConfig, PartitionConfig>> {
        self.check_loaded()?;
        self.check_not_blind()?;
        let (_, config) = self.partition(req.gpid).ok_or_else(|| {
            err(
                ErrorCode::ERR_OBJECT_NOT_FOUND,
                format!("partition {} does not exist", req.gpid),
            )
        })?;
        if config.ballot == req.ballot + 1 && already_applied(config, req.change) {
            return Ok(Err(config.clone()));
        }
        if config.ballot != req.ballot {
            return Err(err(
                ErrorCode::ERR_INVALID_VERSION,
                format!(
                    "request at ballot {}, but partition {} is at ballot {}",
                    req.ballot, req.gpid, config.ballot
                ),
            ));
        }
        if config.primary != Some(req.requester) {
            return Err(err(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "{} is not the primary of {} at ballot {}",
                    req.requester, req.gpid, config.ballot
                ),
            ));
        }
        let next = match req.change {
            PartitionChange::LearnerFailed(_) => return Ok(Err(config.clone())),
            PartitionChange::RemoveSecondary(node) => {
                if !config.secondaries.contains(&node) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_PARAMETERS,
                        format!("{node} is not a secondary of {}", req.gpid),
                    ));
                }
                apply_action(config, CureAction::RemoveSecondary(node)).expect("a configuration change")
            }
            PartitionChange::UpgradeLearner(node) => {
                if config.is_member(node) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_PARAMETERS,
                        format!("{node} already serves {}", req.gpid),
                    ));
                }
                if config.secondaries.len() + 1 >= config.max_replica_count as usize && !self.move_adds(req.gpid, node)
                {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} already has its {} replicas", req.gpid, config.max_replica_count),
                    ));
                }
                if self.nodes.get(&node) != Some(&true) {
                    return Err(err(ErrorCode::ERR_INVALID_STATE, format!("{node} is not alive")));
                }
                upgrade_learner(config, node)
            }
        };
        Ok(Ok(next))
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
            Ok(Ok(next)) => next,
            Ok(Err(current)) => return Box::pin(async move { Ok(current) }),
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
