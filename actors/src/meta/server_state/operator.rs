//! Operator requests that act on single partitions: `propose` (one low-level configuration change,
//! carried out through the same path as the cure's) and `ddd_diagnose` (what dead partitions wait
//! for, and which former replica to trust).

use super::{err, ServerState};
use crate::meta::guardian::{apply_action, cure, ClusterView, CureAction, CureOutcome};
use crate::meta::placement::NodeLoad;
use actix::prelude::*;
use aerie_common::{ErrorCode, MetaLevel, NodeAddr, WireResult};
use aerie_proto::meta::{
    DddDiagnose, DddPartition, DroppedReplica, PartitionConfig, PartitionHealth, ProposalType, Propose,
};
use aerie_rpc::Inbound;
use std::collections::{BTreeMap, BTreeSet};
use tracing::info;

impl ServerState {
    fn plan_proposal(&self, p: &Propose) -> WireResult<(PartitionConfig, CureAction)> {
        self.check_loaded()?;
        self.check_not_blind()?;
        if self.effective_level().0 == MetaLevel::Freezed && !p.force {
            return Err(err(
                ErrorCode::ERR_STATE_FREEZED,
                "the meta is frozen; add -f to propose anyway",
            ));
        }
        let (_, config) = self.partition(p.gpid).ok_or_else(|| {
            err(
                ErrorCode::ERR_OBJECT_NOT_FOUND,
                format!("partition {} does not exist", p.gpid),
            )
        })?;
        if !self.nodes.contains_key(&p.node) {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!("{} is not a replica server of this cluster", p.node),
            ));
        }
        if let (Some(primary), false) = (config.primary, p.force) {
            if p.target != primary {
                return Err(err(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!(
                        "target {} is not the primary of {} ({primary} is); add -f to ignore",
                        p.target, p.gpid
                    ),
                ));
            }
        }
        let alive = self.nodes.get(&p.node) == Some(&true);
        let need_alive = || {
            if alive {
                Ok(())
            } else {
                Err(err(ErrorCode::ERR_INVALID_STATE, format!("{} is not alive", p.node)))
            }
        };
        let action = match p.kind {
            ProposalType::AssignPrimary => {
                need_alive()?;
                if let (Some(primary), false) = (config.primary, p.force) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} has a primary ({primary}); add -f", p.gpid),
                    ));
                }
                CureAction::AssignPrimary(p.node)
            }
            ProposalType::UpgradeToPrimary => {
                need_alive()?;
                if !config.secondaries.contains(&p.node) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} is not a secondary of {}", p.node, p.gpid),
                    ));
                }
                CureAction::UpgradeToPrimary(p.node)
            }
            ProposalType::AddSecondary => {
                need_alive()?;
                if config.primary.is_none() || config.is_member(p.node) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} needs a primary and must not already serve {}", p.gpid, p.node),
                    ));
                }
                CureAction::AddSecondary(p.node)
            }
            ProposalType::UpgradeToSecondary => {
                return Err(err(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    "a learner becomes a secondary when its primary upgrades it; propose ADD_SECONDARY",
                ))
            }
            ProposalType::DowngradeToSecondary => {
                if config.primary != Some(p.node) {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} is not the primary of {}", p.node, p.gpid),
                    ));
                }
                CureAction::DowngradeToSecondary(p.node)
            }
            ProposalType::DowngradeToInactive | ProposalType::Remove => {
                if config.primary == Some(p.node) {
                    CureAction::DropPrimary(p.node)
                } else if config.secondaries.contains(&p.node) {
                    CureAction::RemoveSecondary(p.node)
                } else {
                    return Err(err(
                        ErrorCode::ERR_INVALID_STATE,
                        format!("{} does not serve {}", p.node, p.gpid),
                    ));
                }
            }
        };
        Ok((config.clone(), action))
    }

    fn diagnose(&self, config: &PartitionConfig) -> DddPartition {
        let alive: BTreeSet<NodeAddr> = self.alive_nodes().collect();
        let empty_reports = BTreeMap::new();
        let reports = self.reports.get(&config.gpid).unwrap_or(&empty_reports);
        let loads: BTreeMap<NodeAddr, NodeLoad> = self.loads(None);
        let empty_drops = BTreeMap::new();
        let view = ClusterView {
            alive: &alive,
            total_load: &loads,
            table_load: &loads,
            dropped_at: self.dropped_at.get(&config.gpid).unwrap_or(&empty_drops),
            alive_since: &self.alive_since,
            rejoin_after_ms: self.params.fd_grace.as_millis() as u64,
            reports,
            adding: None,
            adds_per_node: &BTreeMap::new(),
            knobs: &self.knobs,
            maintenance: &self.maintenance_now(),
            now_ms: self.params.clock.now_ms(),
        };
        let (state, decided) = match cure(config, &view) {
            CureOutcome::Act(CureAction::AssignPrimary(node)) => {
                (format!("assigning the primary to {node}"), Some(node))
            }
            CureOutcome::Act(action) => (format!("cure: {action}"), None),
            CureOutcome::Wait { reason, .. } => (reason, None),
            CureOutcome::Healthy => ("healthy".into(), None),
        };
        let dropped: Vec<DroppedReplica> = config
            .last_drops
            .iter()
            .map(|node| DroppedReplica {
                node: *node,
                alive: alive.contains(node),
                reported: reports.get(node).map(|r| (r.ballot, r.last_committed, r.last_prepared)),
            })
            .collect();
        let best_reported = dropped
            .iter()
            .filter_map(|d| d.reported.map(|r| (r, d.node)))
            .max()
            .map(|(_, node)| node);
        DddPartition {
            gpid: config.gpid,
            ballot: config.ballot,
            dropped,
            recommended_primary: decided.or(best_reported),
            state,
        }
    }
}

impl Handler<Inbound<Propose>> for ServerState {
    type Result = ResponseFuture<WireResult<()>>;

    fn handle(&mut self, Inbound(proposal): Inbound<Propose>, ctx: &mut Self::Context) -> Self::Result {
        let (config, action) = match self.plan_proposal(&proposal) {
            Ok(planned) => planned,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let gpid = config.gpid;
        info!(%gpid, ballot = config.ballot, %action, "operator proposal");
        if let CureAction::AddSecondary(node) = action {
            if let Some(busy) = self.adding.get(&gpid) {
                let busy = busy.node;
                return Box::pin(async move {
                    Err(err(
                        ErrorCode::ERR_BUSY,
                        format!("{gpid} is already adding a secondary on {busy}"),
                    ))
                });
            }
            info!(%gpid, learner = %node, "operator asked to add a secondary");
            self.execute(gpid, action, ctx);
            return Box::pin(async { Ok(()) });
        }
        let next = apply_action(&config, action).expect("a configuration change");
        let ops = vec![self.layout.set_partition_op(&next)];
        let applied = self.persist_then(ctx, ops, move |act, ctx| act.install_partition(next, ctx));
        Box::pin(async move {
            applied
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))?
        })
    }
}

impl Handler<Inbound<DddDiagnose>> for ServerState {
    type Result = WireResult<Vec<DddPartition>>;

    fn handle(&mut self, Inbound(req): Inbound<DddDiagnose>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        Ok(self
            .available_apps()
            .flat_map(|a| a.partitions.iter())
            .filter(|p| req.gpid.is_none_or(|g| g == p.gpid))
            .filter(|p| req.gpid.is_some() || p.health() == PartitionHealth::Dead)
            .map(|p| self.diagnose(p))
            .collect())
    }
}
