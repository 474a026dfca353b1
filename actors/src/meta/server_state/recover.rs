//! `recover`: asks every listed replica server for its replicas, rebuilds the tables and partition
//! configurations (`meta::recovery`), writes them in one store transaction, and starts serving.

use super::{err, push_configs, ServerState};
use crate::meta::persist::LoadedState;
use crate::meta::recovery::rebuild;
use actix::fut::LocalBoxActorFuture;
use actix::prelude::*;
use aerie_common::{ErrorCode, NodeAddr, WireResult};
use aerie_proto::meta::{Recover, RecoverNode, RecoverReport};
use aerie_proto::replica::{QueryReplicas, ReplicaInfo};
use aerie_rpc::Inbound;
use tracing::{info, warn};

impl ServerState {
    fn check_recoverable(&self) -> WireResult<()> {
        if self.recovering {
            return Err(err(ErrorCode::ERR_BUSY, "a recovery is already under way"));
        }
        if self.awaiting_recover {
            return Ok(());
        }
        let why = if !self.params.recover_from_replica_server {
            "this meta was not started with recover_from_replica_server = true".to_string()
        } else if self.loaded {
            format!(
                "the meta store {} already holds the cluster map; recovery only fills an empty one",
                self.params.store.describe()
            )
        } else {
            "the meta is still loading its state".to_string()
        };
        Err(err(ErrorCode::ERR_INVALID_STATE, format!("cannot recover: {why}")))
    }
}

type Answers = Vec<(NodeAddr, Result<Vec<ReplicaInfo>, String>)>;

impl Handler<Inbound<Recover>> for ServerState {
    type Result = ResponseActFuture<Self, WireResult<RecoverReport>>;

    fn handle(&mut self, Inbound(req): Inbound<Recover>, _: &mut Self::Context) -> Self::Result {
        if let Err(e) = self.check_recoverable() {
            return Box::pin(fut::ready(Err(e)));
        }
        if req.nodes.is_empty() {
            return Box::pin(fut::ready(Err(err(
                ErrorCode::ERR_INVALID_PARAMETERS,
                "no replica server given to recover from",
            ))));
        }
        self.recovering = true;
        info!(
            nodes = req.nodes.len(),
            "recovering the cluster map from replica servers"
        );
        let (network, timeout) = (self.params.network.clone(), self.params.rpc_timeout);
        let nodes = req.nodes.clone();
        let queries = async move {
            let calls = nodes.into_iter().map(|node| {
                let network = network.clone();
                async move {
                    let answer = match network.call(node, QueryReplicas {}, timeout).await {
                        Ok(Ok(infos)) => Ok(infos),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    (node, answer)
                }
            });
            futures::future::join_all(calls).await
        };
        Box::pin(
            queries
                .into_actor(self)
                .then(move |answers: Answers, act, ctx| act.finish_recovery(req, answers, ctx)),
        )
    }
}

impl ServerState {
    fn finish_recovery(
        &mut self,
        req: Recover,
        answers: Answers,
        ctx: &mut Context<Self>,
    ) -> LocalBoxActorFuture<Self, WireResult<RecoverReport>> {
        let fail = |act: &mut Self, code, detail: String| {
            act.recovering = false;
            warn!(%detail, "recovery failed");
            fut::ready(Err(err(code, detail))).boxed_local()
        };
        let nodes: Vec<RecoverNode> = answers
            .iter()
            .map(|(node, answer)| RecoverNode {
                node: *node,
                result: answer.as_ref().map(Vec::len).map_err(Clone::clone),
            })
            .collect();
        let bad: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.result.as_ref().err().map(|e| format!("{} ({e})", n.node)))
            .collect();
        if !bad.is_empty() && !req.skip_bad_nodes {
            let detail = format!(
                "{} of {} nodes did not answer: {}; pass --skip_bad_nodes to recover without them",
                bad.len(),
                nodes.len(),
                bad.join(", ")
            );
            return fail(self, ErrorCode::ERR_NETWORK_FAILURE, detail);
        }
        let inventories: Vec<(NodeAddr, Vec<ReplicaInfo>)> = answers
            .into_iter()
            .filter_map(|(node, answer)| answer.ok().map(|infos| (node, infos)))
            .collect();
        let recovered = match rebuild(&inventories, req.skip_lost_partitions) {
            Ok(recovered) => recovered,
            Err(e) => return fail(self, ErrorCode::ERR_OBJECT_NOT_FOUND, e.to_string()),
        };
        let report = RecoverReport {
            nodes,
            tables: recovered.apps.values().map(|a| a.info.app_name.clone()).collect(),
            partitions: recovered.apps.values().map(|a| a.partitions.len() as u32).sum(),
            lost_partitions: recovered.lost.clone(),
            next_app_id: recovered.next_app_id,
        };
        let ops = recovered
            .apps
            .values()
            .flat_map(|app| {
                self.layout
                    .create_app_ops(&app.info, &app.partitions, recovered.next_app_id)
            })
            .collect();
        let written = self.persist_then(ctx, ops, move |act, ctx| {
            act.awaiting_recover = false;
            let pushes: Vec<_> = recovered
                .apps
                .values()
                .flat_map(|app| {
                    app.partitions
                        .iter()
                        .flat_map(|p| act.pushes_for_partition(&app.info, p, []))
                })
                .collect();
            info!(
                tables = recovered.apps.len(),
                replicas = recovered.replicas,
                lost = recovered.lost.len(),
                "cluster map recovered from the replica servers"
            );
            act.install(LoadedState {
                level: None,
                apps: recovered.apps,
                next_app_id: recovered.next_app_id,
                leaving: Default::default(),
                maintenance: Default::default(),
            });
            act.schedule_cure(ctx);
            pushes
        });
        let (network, timeout) = (self.params.network.clone(), self.params.rpc_timeout);
        async move {
            match written.await {
                Ok(Ok(pushes)) => {
                    push_configs(network, pushes, timeout).await;
                    Ok(report)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(err(ErrorCode::ERR_INVALID_STATE, "the meta server stopped")),
            }
        }
        .into_actor(self)
        .map(|result, act, _| {
            act.recovering = false;
            result
        })
        .boxed_local()
    }
}
