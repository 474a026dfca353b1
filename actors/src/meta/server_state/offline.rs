//! Taking replica servers out of service: `offline_node` checks that it is safe, black-lists the
//! nodes for new replicas and marks them leaving (the balancer then moves their primaries away and
//! copies their replicas elsewhere, at level steady or lively); `remove_node` forgets a node that is
//! dead and holds nothing, so that `nodes` no longer lists it and it no longer counts towards the
//! freeze threshold, without restarting the meta.

use super::{err, ServerState};
use crate::meta::balancer::actor::KickBalancer;
use crate::meta::failure_detector::ForgetNode;
use crate::meta::offline::{preflight, OfflineFacts};
use actix::prelude::*;
use aerie_common::{ErrorCode, WireResult};
use aerie_proto::meta::{
    CancelOffline, LeavingNode, OfflineCheck, OfflineNodes, OfflineProgress, PartitionHealth, QueryOfflineProgress,
    RemoveNode,
};
use aerie_rpc::Inbound;
use tracing::info;

impl Handler<Inbound<OfflineNodes>> for ServerState {
    type Result = WireResult<OfflineCheck>;

    fn handle(&mut self, Inbound(req): Inbound<OfflineNodes>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.check_not_blind()?;
        let most_replicas = self
            .available_apps()
            .max_by_key(|a| a.info.max_replica_count)
            .map(|a| (a.info.max_replica_count, a.info.app_name.as_str()));
        let result = preflight(
            OfflineFacts {
                nodes: &self.nodes,
                leaving: &self.leaving,
                black_list: &self.knobs.black_list,
                most_replicas,
                freeze: &self.freeze,
                level: self.effective_level().0,
            },
            &req.nodes,
        );
        let started = result.problems.is_empty() && !req.check_only;
        if started {
            for node in &req.nodes {
                self.leaving.insert(*node);
                self.knobs.black_list.insert(*node);
            }
            info!(nodes = ?req.nodes, "taking nodes out of service: black-listed, their replicas move away");
            self.balancer.do_send(KickBalancer);
        }
        Ok(OfflineCheck {
            problems: result.problems,
            notes: result.notes,
            started,
        })
    }
}

impl Handler<Inbound<CancelOffline>> for ServerState {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(req): Inbound<CancelOffline>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        for node in &req.nodes {
            self.leaving.remove(node);
            self.knobs.black_list.remove(node);
        }
        info!(nodes = ?req.nodes, "nodes stay in service: off the black list, no longer emptied");
        self.balancer.do_send(KickBalancer);
        Ok(())
    }
}

impl Handler<Inbound<QueryOfflineProgress>> for ServerState {
    type Result = WireResult<OfflineProgress>;

    fn handle(&mut self, _: Inbound<QueryOfflineProgress>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        let loads = self.loads(None);
        let partitions = self.available_apps().flat_map(|a| &a.partitions);
        Ok(OfflineProgress {
            nodes: self
                .leaving
                .iter()
                .map(|node| {
                    let load = loads.get(node).copied().unwrap_or_default();
                    LeavingNode {
                        node: *node,
                        alive: self.nodes.get(node) == Some(&true),
                        primaries: load.primaries,
                        replicas: load.replicas,
                    }
                })
                .collect(),
            moves_in_progress: self.moves.len() as u32,
            unhealthy_partitions: partitions
                .filter(|p| p.health() != PartitionHealth::FullyHealthy)
                .count() as u32,
            blocked: self.evacuation_blocked(),
        })
    }
}

impl Handler<Inbound<RemoveNode>> for ServerState {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(req): Inbound<RemoveNode>, ctx: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        self.check_not_blind()?;
        let node = req.node;
        match self.nodes.get(&node) {
            None => {
                return Err(err(
                    ErrorCode::ERR_OBJECT_NOT_FOUND,
                    format!("{node} is not a replica server of this cluster"),
                ))
            }
            Some(true) => {
                return Err(err(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!("{node} is alive: stop it first (offline_node -n {node} empties it safely)"),
                ))
            }
            Some(false) => {}
        }
        let holding: Vec<String> = self
            .available_apps()
            .flat_map(|a| &a.partitions)
            .filter(|p| p.is_member(node))
            .map(|p| p.gpid.to_string())
            .collect();
        if !holding.is_empty() {
            return Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                format!(
                    "{node} still holds replicas of {} partition(s) ({}); wait until the cure moved them",
                    holding.len(),
                    holding.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        self.nodes.remove(&node);
        self.alive_since.remove(&node);
        self.leaving.remove(&node);
        self.knobs.black_list.remove(&node);
        self.synced_nodes.remove(&node);
        for reports in self.reports.values_mut() {
            reports.remove(&node);
        }
        self.failure_detector.do_send(ForgetNode(node));
        info!(%node, "node forgotten");
        self.refresh_metrics();
        self.announce_level();
        self.schedule_cure(ctx);
        Ok(())
    }
}
