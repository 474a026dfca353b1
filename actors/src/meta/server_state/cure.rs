//! The cure, carried out: every `cure_interval` and right after every change, the guardian looks at
//! each partition; each decision is either one configuration change (persisted, then applied, then
//! pushed to the replica servers concerned) or an add-secondary request to the partition's primary.

use super::{push_configs, Adding, ServerState};
use crate::meta::guardian::{apply_action, cure, ClusterView, CureAction, CureOutcome};
use crate::meta::level::cure_allows;
use crate::metrics::META_CURE_ACTIONS;
use actix::prelude::*;
use aerie_common::MetaLevel;
use aerie_common::{Ballot, Gpid, NodeAddr};
use aerie_proto::meta::PartitionConfig;
use aerie_proto::replica::AddLearner;
use futures::FutureExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tracing::{debug, info, warn};

/// An add-secondary action that neither finished nor failed by then is forgotten and may be retried.
const ADD_SECONDARY_TIMEOUT_MS: u64 = 30 * 60 * 1000;

/// How often, and how long apart, adding a learner is asked again of a primary that has not yet
/// applied the configuration the meta sent it.
const PRIMARY_LAG_RETRIES: u32 = 20;
const PRIMARY_LAG_WAIT: Duration = Duration::from_millis(100);

/// Whether an answer means the primary is catching up with the meta: not primary yet, at another
/// ballot, or still committing what it inherited as a new primary.
fn primary_lags(error: &aerie_common::WireError) -> bool {
    use aerie_common::ErrorCode;
    matches!(
        error.code,
        ErrorCode::ERR_NOT_PRIMARY | ErrorCode::ERR_INVALID_VERSION | ErrorCode::ERR_INVALID_STATE
    )
}

/// A primary could not start an add-secondary action.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct AddSecondaryFailed {
    gpid: Gpid,
    node: NodeAddr,
    ballot: Ballot,
    reason: String,
}

impl ServerState {
    /// Runs the cure soon (once, however many events ask for it).
    pub(super) fn schedule_cure(&mut self, ctx: &mut Context<Self>) {
        if self.cure_scheduled {
            return;
        }
        self.cure_scheduled = true;
        ctx.run_later(Duration::ZERO, |act, ctx| {
            act.cure_scheduled = false;
            act.run_cure(ctx);
        });
    }

    pub(super) fn run_cure(&mut self, ctx: &mut Context<Self>) {
        let level = self.effective_level().0;
        if !self.loaded || level == MetaLevel::Blind {
            return;
        }
        let now = self.params.clock.now_ms();
        let ballots: BTreeMap<Gpid, Ballot> = self
            .available_apps()
            .flat_map(|a| a.partitions.iter().map(|p| (p.gpid, p.ballot)))
            .collect();
        self.adding.retain(|gpid, adding| {
            ballots.get(gpid) == Some(&adding.ballot)
                && now.saturating_sub(adding.started_ms) < ADD_SECONDARY_TIMEOUT_MS
        });
        let alive: BTreeSet<NodeAddr> = self.alive_nodes().collect();
        let maintenance = self.maintenance_now();
        let total_load = self.loads(None);
        let mut adds_per_node: BTreeMap<NodeAddr, u32> = BTreeMap::new();
        for adding in self.adding.values() {
            *adds_per_node.entry(adding.node).or_default() += 1;
        }
        self.end_stale_moves(None);
        let empty_reports = BTreeMap::new();
        let empty_drops = BTreeMap::new();
        let mut actions = Vec::new();
        let mut next_wakeup: Option<u64> = None;
        for app in self.available_apps() {
            let table_load = self.loads(Some(app.info.app_id));
            // A moving partition is left to its move (which ends if one of its nodes dies).
            for partition in app.partitions.iter().filter(|p| !self.moves.contains_key(&p.gpid)) {
                // A replica reported out of service counts as gone, for this partition only.
                let serving: BTreeSet<NodeAddr>;
                let alive = match self.broken.get(&partition.gpid) {
                    Some(broken) => {
                        serving = alive.difference(broken).copied().collect();
                        &serving
                    }
                    None => &alive,
                };
                let view = ClusterView {
                    alive,
                    total_load: &total_load,
                    table_load: &table_load,
                    dropped_at: self.dropped_at.get(&partition.gpid).unwrap_or(&empty_drops),
                    alive_since: &self.alive_since,
                    rejoin_after_ms: self.params.fd_grace.as_millis() as u64,
                    reports: self.reports.get(&partition.gpid).unwrap_or(&empty_reports),
                    adding: self.adding.get(&partition.gpid).map(|a| a.node),
                    adds_per_node: &adds_per_node,
                    knobs: &self.knobs,
                    maintenance: &maintenance,
                    now_ms: now,
                };
                match cure(partition, &view) {
                    CureOutcome::Act(action) => {
                        if let CureAction::AddSecondary(node) = action {
                            *adds_per_node.entry(node).or_default() += 1;
                        }
                        actions.push((partition.gpid, action));
                    }
                    CureOutcome::Wait { reason, until_ms } => {
                        debug!(gpid = %partition.gpid, %reason, "cure waits");
                        if let Some(at) = until_ms.filter(|at| *at > now) {
                            next_wakeup = Some(next_wakeup.map_or(at, |n| n.min(at)));
                        }
                    }
                    CureOutcome::Healthy => {}
                }
            }
        }
        if let Some(at) = next_wakeup {
            self.wake_cure_at(at, now, ctx);
        }
        for (gpid, action) in actions {
            let removed_alive = match action {
                CureAction::RemoveSecondary(node) => alive.contains(&node),
                _ => false,
            };
            let kind = action_kind(action);
            if !cure_allows(level, action, removed_alive) {
                META_CURE_ACTIONS.with_label_values(&[kind, "held_back"]).inc();
                debug!(%gpid, %action, %level, "the meta level holds this cure action back");
                continue;
            }
            META_CURE_ACTIONS.with_label_values(&[kind, "taken"]).inc();
            self.execute(gpid, action, ctx);
        }
    }

    /// Makes sure the cure runs again at `at` (meta clock), unless a run is already set earlier.
    fn wake_cure_at(&mut self, at: u64, now: u64, ctx: &mut Context<Self>) {
        if let Some((pending, handle)) = self.cure_wakeup {
            if pending <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(Duration::from_millis(at - now), |act, ctx| {
            act.cure_wakeup = None;
            act.run_cure(ctx);
        });
        self.cure_wakeup = Some((at, handle));
    }

    pub(super) fn execute(&mut self, gpid: Gpid, action: CureAction, ctx: &mut Context<Self>) {
        let Some((app, config)) = self.partition(gpid).map(|(a, c)| (a.clone(), c.clone())) else {
            return;
        };
        match action {
            CureAction::AddSecondary(learner) => self.start_add_secondary(app, config, learner, ctx),
            change => {
                let next = apply_action(&config, change).expect("a configuration change");
                let ops = vec![self.layout.set_partition_op(&next)];
                // The outcome is logged where it is applied; nobody waits for it here.
                let _applied = self.persist_then(ctx, ops, move |act, ctx| {
                    info!(%gpid, ballot = next.ballot, action = %change, "configuration changed by the cure");
                    act.install_partition(next, ctx);
                });
            }
        }
    }

    pub(super) fn start_add_secondary(
        &mut self,
        app: aerie_proto::meta::AppInfo,
        config: PartitionConfig,
        learner: NodeAddr,
        ctx: &mut Context<Self>,
    ) {
        let Some(primary) = config.primary else {
            return;
        };
        let (gpid, ballot) = (config.gpid, config.ballot);
        self.adding.insert(
            gpid,
            Adding {
                node: learner,
                ballot,
                started_ms: self.params.clock.now_ms(),
            },
        );
        info!(%gpid, ballot, %primary, %learner, "adding a secondary: the new replica learns from the primary");
        let request = AddLearner {
            app,
            gpid,
            ballot,
            learner,
        };
        let (network, timeout, me) = (self.params.network.clone(), self.params.rpc_timeout, ctx.address());
        actix::spawn(async move {
            let mut attempt = 0;
            let failure = loop {
                match network.call(primary, request.clone(), timeout).await {
                    Ok(Ok(())) => return,
                    // The primary has not caught up with this configuration yet (it was just
                    // made primary, or just changed): it will shortly.
                    Ok(Err(e)) if primary_lags(&e) && attempt < PRIMARY_LAG_RETRIES => {
                        attempt += 1;
                        tokio::time::sleep(PRIMARY_LAG_WAIT).await;
                    }
                    Ok(Err(e)) => break e.to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            me.do_send(AddSecondaryFailed {
                gpid,
                node: learner,
                ballot,
                reason: failure,
            });
        });
    }

    /// Replaces a partition's configuration after the store accepted it, and tells the nodes.
    pub(super) fn install_partition(&mut self, next: PartitionConfig, ctx: &mut Context<Self>) {
        let gpid = next.gpid;
        let now = self.params.clock.now_ms();
        let Some(app) = self.apps.get_mut(&gpid.app_id) else {
            return;
        };
        let Some(slot) = app.partitions.get_mut(gpid.pidx as usize) else {
            return;
        };
        let previous = std::mem::replace(slot, next.clone());
        let info = app.info.clone();
        let drops = self.dropped_at.entry(gpid).or_default();
        for node in &next.last_drops {
            if !previous.last_drops.contains(node) {
                drops.insert(*node, now);
            }
        }
        drops.retain(|node, _| next.last_drops.contains(node));
        if self.adding.get(&gpid).is_some_and(|a| a.ballot != next.ballot) {
            self.adding.remove(&gpid);
        }
        let left: Vec<NodeAddr> = previous
            .members()
            .filter(|n| !next.is_member(*n) && self.nodes.get(n) == Some(&true))
            .collect();
        let pushes = self.pushes_for_partition(&info, &next, left);
        let (network, timeout) = (self.params.network.clone(), self.params.rpc_timeout);
        actix::spawn(push_configs(network, pushes, timeout).map(|_| ()));
        self.after_move_change(&next, ctx);
        self.schedule_cure(ctx);
    }
}

impl Handler<AddSecondaryFailed> for ServerState {
    type Result = ();

    fn handle(&mut self, failed: AddSecondaryFailed, ctx: &mut Self::Context) {
        let current = self.adding.get(&failed.gpid).copied();
        if current.is_some_and(|a| a.node == failed.node && a.ballot == failed.ballot) {
            self.adding.remove(&failed.gpid);
            warn!(gpid = %failed.gpid, node = %failed.node, reason = %failed.reason, "the primary could not start adding a secondary");
            if self.move_adds(failed.gpid, failed.node) {
                self.end_move(failed.gpid, Err(format!("learning could not start: {}", failed.reason)));
            }
        }
        // Retried by the next periodic cure, not at once: the cause is usually not gone yet.
        let _ = ctx;
    }
}

fn action_kind(action: CureAction) -> &'static str {
    match action {
        CureAction::AssignPrimary(_) => "assign_primary",
        CureAction::DowngradeToSecondary(_) => "downgrade_to_secondary",
        CureAction::UpgradeToPrimary(_) => "upgrade_to_primary",
        CureAction::DropPrimary(_) => "drop_primary",
        CureAction::AddSecondary(_) => "add_secondary",
        CureAction::RemoveSecondary(_) => "remove_secondary",
    }
}
