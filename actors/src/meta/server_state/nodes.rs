//! Nodes: liveness from the failure detector, configuration sync with replica servers, listings.

use super::ServerState;
use crate::meta::balancer::actor::KickBalancer;
use crate::meta::failure_detector::NodeLiveness;
use crate::meta::guardian::ReplicaState;
use actix::prelude::*;
use aerie_common::{AppId, Gpid, WireResult};
use aerie_proto::meta::*;
use aerie_rpc::Inbound;
use tracing::{info, warn};

impl Handler<NodeLiveness> for ServerState {
    type Result = ();

    fn handle(&mut self, event: NodeLiveness, ctx: &mut Self::Context) {
        let previous = if event.alive {
            self.incarnations.insert(event.node, event.incarnation)
        } else {
            self.incarnations.remove(&event.node)
        };
        let was = self.nodes.insert(event.node, event.alive);
        // Alive again in a new life without being declared dead: the process restarted.
        let restarted = event.alive && was == Some(true) && previous.is_some_and(|p| p != event.incarnation);
        if was == Some(event.alive) && !restarted {
            return;
        }
        if !event.alive || restarted {
            // What the meta knew of the node's replicas and of the work under way there is gone.
            for reports in self.reports.values_mut() {
                reports.remove(&event.node);
            }
            self.adding.retain(|_, adding| adding.node != event.node);
            self.synced_nodes.remove(&event.node);
            self.end_stale_moves(Some(event.node));
        }
        if event.alive {
            info!(node = %event.node, restarted, "node alive");
            self.alive_since.insert(event.node, self.params.clock.now_ms());
        } else {
            warn!(node = %event.node, "node dead; curing its partitions");
        }
        self.refresh_metrics();
        self.announce_level();
        self.schedule_cure(ctx);
        self.balancer.do_send(KickBalancer);
    }
}

impl Handler<Inbound<ConfigSync>> for ServerState {
    type Result = WireResult<ConfigSyncResponse>;

    fn handle(&mut self, Inbound(sync): Inbound<ConfigSync>, ctx: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        let node = sync.node;
        let partitions = self
            .available_apps()
            .flat_map(|app| {
                app.partitions
                    .iter()
                    .filter(|p| p.is_member(node))
                    .map(|p| (app.info.clone(), p.clone()))
            })
            .collect();
        let mut dropped_apps: Vec<AppId> = Vec::new();
        let mut gc_replicas: Vec<Gpid> = Vec::new();
        let mut new_reports = self.note_broken(node, &sync.replicas);
        for report in &sync.replicas {
            let gpid = report.gpid;
            if report.broken.is_some() {
                continue;
            }
            match self.apps.get(&gpid.app_id) {
                Some(app) if app.info.status == AppStatus::Dropped => dropped_apps.push(app.info.app_id),
                Some(app) => {
                    let Some(config) = app.partitions.get(gpid.pidx as usize) else {
                        continue;
                    };
                    let state = ReplicaState {
                        ballot: report.ballot,
                        last_committed: report.last_committed_decree,
                        last_prepared: report.last_prepared_decree,
                    };
                    new_reports |= self.reports.entry(gpid).or_default().insert(node, state) != Some(state);
                    if config.primary == Some(node) {
                        self.data_bytes.insert(gpid, report.data_bytes);
                    }
                    let learning_here = self.adding.get(&gpid).is_some_and(|a| a.node == node);
                    if !config.is_member(node)
                        && !learning_here
                        && config.health() == PartitionHealth::FullyHealthy
                        && config.members().all(|m| self.nodes.get(&m) == Some(&true))
                    {
                        gc_replicas.push(gpid);
                    }
                }
                None => {
                    warn!(%node, %gpid, "a replica server holds a replica of a table this meta does not know; leaving it alone")
                }
            }
        }
        dropped_apps.sort_unstable();
        dropped_apps.dedup();
        if new_reports {
            self.schedule_cure(ctx);
        }
        if self.synced_nodes.insert(node) {
            self.balancer.do_send(KickBalancer);
        }
        Ok(ConfigSyncResponse {
            partitions,
            dropped_apps,
            gc_replicas,
            incarnation: self.incarnation_of(node),
        })
    }
}

impl ServerState {
    /// Records which replicas `node` reports out of service (and forgets those it no longer
    /// does); returns whether anything changed.
    fn note_broken(&mut self, node: aerie_common::NodeAddr, reports: &[ReplicaReport]) -> bool {
        let now_broken: std::collections::BTreeMap<Gpid, &str> = reports
            .iter()
            .filter_map(|r| r.broken.as_deref().map(|why| (r.gpid, why)))
            .collect();
        let mut changed = false;
        for (gpid, nodes) in self.broken.iter_mut() {
            if !now_broken.contains_key(gpid) && nodes.remove(&node) {
                info!(%gpid, %node, "replica back in service");
                changed = true;
            }
        }
        self.broken.retain(|_, nodes| !nodes.is_empty());
        for (gpid, why) in now_broken {
            if self.broken.entry(gpid).or_default().insert(node) {
                warn!(%gpid, %node, reason = why, "replica out of service; the cure replaces it");
                changed = true;
            }
        }
        changed
    }
}

impl Handler<Inbound<ListNodes>> for ServerState {
    type Result = WireResult<Vec<NodeInfo>>;

    fn handle(&mut self, _: Inbound<ListNodes>, _: &mut Self::Context) -> Self::Result {
        self.check_loaded()?;
        let loads = self.loads(None);
        Ok(self
            .nodes
            .iter()
            .map(|(address, alive)| {
                let load = loads.get(address).copied().unwrap_or_default();
                NodeInfo {
                    address: *address,
                    status: if *alive { NodeStatus::Alive } else { NodeStatus::Unalive },
                    primary_count: load.primaries,
                    secondary_count: load.replicas - load.primaries,
                    maintenance_until_secs: self.maintenance_until(*address),
                }
            })
            .collect())
    }
}
