//! Taking replica servers out of service: `offline_node` checks that it is safe, black-lists the
//! nodes for new replicas and marks them leaving (the balancer then moves their primaries away and
//! copies their replicas elsewhere, at level steady or lively); `remove_node` forgets a node that is
//! dead and holds nothing, so that `nodes` no longer lists it and it no longer counts towards the
//! freeze threshold, without restarting the meta. The leaving set is kept in the meta store, so a
//! new leader goes on emptying the same nodes.

use super::{err, ServerState};
use crate::meta::balancer::actor::KickBalancer;
use crate::meta::failure_detector::ForgetNode;
use crate::meta::offline::{preflight, OfflineFacts};
use actix::prelude::*;
use aerie_common::{ErrorCode, NodeAddr, WireResult};
use aerie_proto::meta::{
    CancelOffline, LeavingNode, OfflineCheck, OfflineNodes, OfflineProgress, PartitionHealth, QueryOfflineProgress,
    RemoveNode,
};
use aerie_rpc::Inbound;
use std::collections::BTreeSet;
use tracing::info;

/// The answer of a handler that may first write the leaving set.
type Answer<T> = ResponseFuture<WireResult<T>>;

fn answer<T: 'static>(result: WireResult<T>) -> Answer<T> {
    Box::pin(async move { result })
}

impl ServerState {
    /// Writes the leaving set `leaving` to the store, then makes it (and `black_list`) current.
    fn persist_leaving<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        leaving: BTreeSet<NodeAddr>,
        black_list: BTreeSet<NodeAddr>,
        reply: T,
    ) -> Answer<T> {
        let op = self.layout.set_leaving_op(&leaving);
        let written = self.persist_then(ctx, vec![op], move |act, _| {
            act.leaving = leaving;
            act.knobs.black_list = black_list;
            act.balancer.do_send(KickBalancer);
        });
        Box::pin(async move {
            written
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))??;
            Ok(reply)
        })
    }
}

impl Handler<Inbound<OfflineNodes>> for ServerState {
    type Result = Answer<OfflineCheck>;

    fn handle(&mut self, Inbound(req): Inbound<OfflineNodes>, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_loaded().and_then(|_| self.check_not_blind()) {
            return answer(Err(e));
        }
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
        let check = OfflineCheck {
            problems: result.problems,
            notes: result.notes,
            started,
        };
        if !started {
            return answer(Ok(check));
        }
        let (mut leaving, mut black_list) = (self.leaving.clone(), self.knobs.black_list.clone());
        leaving.extend(req.nodes.iter().copied());
        black_list.extend(req.nodes.iter().copied());
        info!(nodes = ?req.nodes, "taking nodes out of service: black-listed, their replicas move away");
        self.persist_leaving(ctx, leaving, black_list, check)
    }
}

impl Handler<Inbound<CancelOffline>> for ServerState {
    type Result = Answer<()>;

    fn handle(&mut self, Inbound(req): Inbound<CancelOffline>, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_loaded() {
            return answer(Err(e));
        }
        let (mut leaving, mut black_list) = (self.leaving.clone(), self.knobs.black_list.clone());
        for node in &req.nodes {
            leaving.remove(node);
            black_list.remove(node);
        }
        info!(nodes = ?req.nodes, "nodes stay in service: off the black list, no longer emptied");
        self.persist_leaving(ctx, leaving, black_list, ())
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
    type Result = Answer<()>;

    fn handle(&mut self, Inbound(req): Inbound<RemoveNode>, ctx: &mut Self::Context) -> Self::Result {
        if let Err(e) = self
            .check_loaded()
            .and_then(|_| self.check_not_blind())
            .and_then(|_| self.check_removable(req.node))
        {
            return answer(Err(e));
        }
        let node = req.node;
        let forget = move |act: &mut Self, ctx: &mut Context<Self>| {
            act.nodes.remove(&node);
            act.alive_since.remove(&node);
            act.knobs.black_list.remove(&node);
            act.synced_nodes.remove(&node);
            for reports in act.reports.values_mut() {
                reports.remove(&node);
            }
            act.failure_detector.do_send(ForgetNode(node));
            info!(%node, "node forgotten");
            act.refresh_metrics();
            act.announce_level();
            act.schedule_cure(ctx);
        };
        if !self.leaving.contains(&node) {
            forget(self, ctx);
            return answer(Ok(()));
        }
        let mut leaving = self.leaving.clone();
        leaving.remove(&node);
        let op = self.layout.set_leaving_op(&leaving);
        let written = self.persist_then(ctx, vec![op], move |act, ctx| {
            act.leaving = leaving;
            forget(act, ctx);
        });
        Box::pin(async move {
            written
                .await
                .map_err(|_| err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped"))?
        })
    }
}

impl ServerState {
    /// A node may be forgotten once it is dead and holds no replica.
    fn check_removable(&self, node: NodeAddr) -> WireResult<()> {
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
        Ok(())
    }
}
