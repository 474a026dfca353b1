//! Balance moves, carried out: the balancer's rounds, the operator's `balance`, and the evacuation
//! of leaving nodes all start moves here. A move is a short sequence of configuration changes
//! (`balancer::steps`), each persisted before it is applied, like the cure's; the cure leaves a
//! moving partition alone unless one of its members dies, which ends the move.
//!
//! A primary is only made primary elsewhere after the old one confirmed it stepped down, so that
//! two replicas never both serve reads as primary.

use super::{err, push_configs, ServerState};
use crate::meta::balancer::actor::{BalanceRound, BalanceSnapshot, KickBalancer, TakeBalanceSnapshot};
use crate::meta::balancer::{next_step, projected, Step, TableView};
use crate::meta::guardian::{apply_action, CureAction};
use crate::metrics::{META_BALANCE_MOVES, META_BALANCE_OPERATIONS};
use actix::prelude::*;
use aerie_common::{Ballot, ErrorCode, Gpid, MetaLevel, NodeAddr, WireResult};
use aerie_proto::meta::{AppInfo, Balance, BalanceMove, MoveKind, PartitionConfig, PartitionHealth};
use aerie_rpc::Inbound;
use std::collections::BTreeSet;
use std::time::Duration;
use tracing::{info, warn};

/// A move that makes no progress for this long is given up (learning has its own, equal, limit).
pub(super) const MOVE_TIMEOUT_MS: u64 = 30 * 60 * 1000;
/// How often the new primary's predecessor is asked to confirm it stepped down.
const STEP_DOWN_ATTEMPTS: u32 = 3;

/// Who asked for a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MoveOrigin {
    Balancer,
    Operator,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct MoveInProgress {
    pub the_move: BalanceMove,
    pub origin: MoveOrigin,
    /// When the move last made progress (meta clock).
    pub progressed_ms: u64,
    /// A step is being persisted.
    pub step_in_flight: bool,
    /// The ballot at which the old primary confirmed it is a secondary now.
    pub stepped_down_at: Option<Ballot>,
    /// The ballot at which the old primary is being asked to confirm that.
    pub confirming: Option<Ballot>,
}

/// The old primary confirmed (or failed to confirm) it stepped down at `ballot`.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SteppedDown {
    gpid: Gpid,
    ballot: Ballot,
    confirmed: bool,
}

impl ServerState {
    /// Why the balancer may not move replicas now, if it may not.
    fn balance_blocked(&self, moving: &BTreeSet<Gpid>) -> Option<String> {
        let level = self.effective_level().0;
        if level != MetaLevel::Lively {
            return Some(format!(
                "the meta level is {}: the balancer only counts (set_meta_level lively to balance)",
                level.pegasus_name()
            ));
        }
        let mut unhealthy = self
            .available_apps()
            .flat_map(|a| &a.partitions)
            .filter(|p| !moving.contains(&p.gpid) && p.health() != PartitionHealth::FullyHealthy);
        if let Some(first) = unhealthy.next() {
            return Some(format!(
                "{} partition(s) are not fully healthy (e.g. {}): the cure goes first",
                1 + unhealthy.count(),
                first.gpid
            ));
        }
        let dead_holder = self
            .available_apps()
            .flat_map(|a| &a.partitions)
            .flat_map(|p| p.members())
            .find(|n| self.nodes.get(n) != Some(&true));
        dead_holder.map(|node| format!("{node} is not alive and still holds replicas"))
    }

    /// Why leaving nodes may not be emptied now, if they may not.
    pub(super) fn evacuation_blocked(&self) -> Option<String> {
        match self.effective_level().0 {
            MetaLevel::Blind | MetaLevel::Freezed => Some(format!(
                "the meta level in force is {}: no replica moves",
                self.effective_level().0.pegasus_name()
            )),
            MetaLevel::Steady | MetaLevel::Lively => None,
        }
    }

    pub(super) fn balance_snapshot(&self) -> BalanceSnapshot {
        let moving: BTreeSet<Gpid> = self.moves.keys().copied().collect();
        let mut locked = moving.clone();
        locked.extend(self.adding.keys().copied());
        let mut tables = Vec::new();
        for app in self.available_apps() {
            let partitions = app
                .partitions
                .iter()
                .map(|p| match self.moves.get(&p.gpid) {
                    Some(m) => projected(&m.the_move, p),
                    None => {
                        if p.health() != PartitionHealth::FullyHealthy {
                            locked.insert(p.gpid);
                        }
                        p.clone()
                    }
                })
                .collect();
            tables.push(TableView {
                app_id: app.info.app_id,
                partitions,
            });
        }
        let nodes: BTreeSet<NodeAddr> = self.alive_nodes().collect();
        BalanceSnapshot {
            tables,
            app_names: self
                .available_apps()
                .map(|a| (a.info.app_id, a.info.app_name.clone()))
                .collect(),
            unreported: nodes
                .iter()
                .filter(|n| !self.synced_nodes.contains(n))
                .copied()
                .collect(),
            nodes,
            leaving: self.leaving.clone(),
            // A node in maintenance receives nothing new, as if black-listed.
            black_list: self.knobs.black_list.union(&self.maintenance_now()).copied().collect(),
            locked,
            in_progress: self.moves.values().map(|m| m.the_move).collect(),
            options: self.balance_options,
            balance_blocked: self.balance_blocked(&moving),
            evacuation_blocked: self.evacuation_blocked(),
            data_bytes: self.data_bytes.clone(),
        }
    }

    /// Concurrent add-secondary (learning) actions on `node`.
    fn adds_on(&self, node: NodeAddr) -> u32 {
        self.adding.values().filter(|a| a.node == node).count() as u32
    }

    /// Starts a move after checking it against the current map.
    pub(super) fn start_move(
        &mut self,
        the_move: BalanceMove,
        origin: MoveOrigin,
        ctx: &mut Context<Self>,
    ) -> WireResult<()> {
        let gpid = the_move.gpid;
        if let Some(busy) = self.moves.get(&gpid) {
            return Err(err(
                ErrorCode::ERR_BUSY,
                format!("{gpid} is already moving ({})", busy.the_move),
            ));
        }
        if let Some(adding) = self.adding.get(&gpid) {
            return Err(err(
                ErrorCode::ERR_BUSY,
                format!("{gpid} is adding a secondary on {}", adding.node),
            ));
        }
        // A live node that has not synced with this meta yet (it took over, or the node restarted)
        // may still hold an older incarnation and would ignore the move's configurations.
        if let Some(node) = [the_move.from, the_move.to]
            .into_iter()
            .find(|n| self.nodes.get(n) == Some(&true) && !self.synced_nodes.contains(n))
        {
            return Err(err(
                ErrorCode::ERR_BUSY,
                format!("{node} has not synced with this meta server yet (it took over, or the node restarted); the move waits for it"),
            ));
        }
        let (_, config) = self.partition(gpid).ok_or_else(|| {
            err(
                ErrorCode::ERR_OBJECT_NOT_FOUND,
                format!("partition {gpid} does not exist"),
            )
        })?;
        let ballot = config.ballot;
        match next_step(&the_move, config) {
            Step::Act(CureAction::AddSecondary(node)) => {
                if self.knobs.flow_control && self.adds_on(node) >= self.knobs.max_adds_per_node {
                    return Err(err(
                        ErrorCode::ERR_BUSY,
                        format!(
                            "{node} already learns {} replica(s) (meta.lb.add_secondary_max_count_for_one_node)",
                            self.adds_on(node)
                        ),
                    ));
                }
            }
            Step::Act(_) => {}
            Step::Done => {
                return Err(err(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!("{the_move}: the partition is already there"),
                ))
            }
            Step::GiveUp(reason) => return Err(err(ErrorCode::ERR_INVALID_STATE, reason)),
        }
        self.moves.insert(
            gpid,
            MoveInProgress {
                the_move,
                origin,
                progressed_ms: self.params.clock.now_ms(),
                step_in_flight: false,
                stepped_down_at: None,
                confirming: None,
            },
        );
        META_BALANCE_MOVES
            .with_label_values(&[the_move.kind.name(), "started"])
            .inc();
        info!(%gpid, ballot, the_move = %the_move, ?origin, "move started");
        self.advance_move(gpid, ctx);
        Ok(())
    }

    /// Takes the next step of the move on `gpid`, if it can be taken now.
    pub(super) fn advance_move(&mut self, gpid: Gpid, ctx: &mut Context<Self>) {
        let Some(progress) = self.moves.get(&gpid).copied() else {
            return;
        };
        if progress.step_in_flight || self.stored_level == MetaLevel::Blind {
            return;
        }
        let Some((app, config)) = self.partition(gpid).map(|(a, c)| (a.clone(), c.clone())) else {
            return self.end_move(gpid, Err("the table is gone".into()));
        };
        match next_step(&progress.the_move, &config) {
            Step::Done => self.end_move(gpid, Ok(())),
            Step::GiveUp(reason) => self.end_move(gpid, Err(reason)),
            Step::Act(CureAction::AddSecondary(node)) => {
                if !self.adding.contains_key(&gpid) {
                    self.start_add_secondary(app, config, node, ctx);
                }
            }
            Step::Act(CureAction::UpgradeToPrimary(_)) if progress.stepped_down_at != Some(config.ballot) => {
                // The old primary must confirm it stepped down at this ballot first.
                if progress.confirming != Some(config.ballot) {
                    self.confirm_step_down(&app, config, ctx);
                }
            }
            Step::Act(change) => self.take_step(gpid, &config, change, ctx),
        }
    }

    fn take_step(&mut self, gpid: Gpid, config: &PartitionConfig, change: CureAction, ctx: &mut Context<Self>) {
        let next = apply_action(config, change).expect("a configuration change");
        if let Some(progress) = self.moves.get_mut(&gpid) {
            progress.step_in_flight = true;
        }
        let ops = vec![self.layout.set_partition_op(&next)];
        let applied = self.persist_then(ctx, ops, move |act, ctx| {
            info!(%gpid, ballot = next.ballot, action = %change, "configuration changed by a move");
            act.install_partition(next, ctx);
        });
        ctx.spawn(applied.into_actor(self).map(move |outcome, act, _| {
            let reason = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the meta state actor restarted".to_string(),
            };
            act.moves_failed(gpid, reason);
        }));
    }

    fn moves_failed(&mut self, gpid: Gpid, reason: String) {
        if self.moves.contains_key(&gpid) {
            self.end_move(gpid, Err(format!("a step could not be stored: {reason}")));
        }
    }

    /// Called after every configuration change of a moving partition: the next step follows.
    pub(super) fn after_move_change(&mut self, next: &PartitionConfig, ctx: &mut Context<Self>) {
        let gpid = next.gpid;
        let Some(progress) = self.moves.get_mut(&gpid) else {
            return;
        };
        progress.step_in_flight = false;
        progress.progressed_ms = self.params.clock.now_ms();
        self.advance_move(gpid, ctx);
    }

    /// Pushes the configuration in which the old primary is a secondary to it, and waits for its answer.
    fn confirm_step_down(&mut self, app: &AppInfo, config: PartitionConfig, ctx: &mut Context<Self>) {
        let gpid = config.gpid;
        let Some(progress) = self.moves.get_mut(&gpid) else {
            return;
        };
        let from = progress.the_move.from;
        let ballot = config.ballot;
        progress.confirming = Some(ballot);
        let pushes: Vec<_> = self
            .pushes_for_partition(app, &config, [from])
            .into_iter()
            .filter(|(node, _)| *node == from)
            .collect();
        let (network, timeout, me) = (self.params.network.clone(), self.params.rpc_timeout, ctx.address());
        actix::spawn(async move {
            let mut confirmed = false;
            for attempt in 0..STEP_DOWN_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if push_configs(network.clone(), pushes.clone(), timeout).await == 1 {
                    confirmed = true;
                    break;
                }
            }
            me.do_send(SteppedDown {
                gpid,
                ballot,
                confirmed,
            });
        });
    }

    /// Removes a move, with its outcome, and lets the balancer plan again.
    pub(super) fn end_move(&mut self, gpid: Gpid, outcome: Result<(), String>) {
        let Some(progress) = self.moves.remove(&gpid) else {
            return;
        };
        let kind = progress.the_move.kind.name();
        match outcome {
            Ok(()) => {
                META_BALANCE_MOVES.with_label_values(&[kind, "done"]).inc();
                info!(%gpid, the_move = %progress.the_move, origin = ?progress.origin, "move done");
            }
            Err(reason) => {
                META_BALANCE_MOVES.with_label_values(&[kind, "given_up"]).inc();
                warn!(%gpid, the_move = %progress.the_move, origin = ?progress.origin, %reason, "move given up; the cure takes over");
            }
        }
        self.balancer.do_send(KickBalancer);
    }

    /// Ends the moves that involve `node` (it died), whose table is gone, or that made no progress
    /// for too long.
    pub(super) fn end_stale_moves(&mut self, dead: Option<NodeAddr>) {
        let now = self.params.clock.now_ms();
        let stale: Vec<(Gpid, String)> = self
            .moves
            .values()
            .filter_map(|m| {
                let gpid = m.the_move.gpid;
                let Some((_, config)) = self.partition(gpid) else {
                    return Some((gpid, "the table is gone".to_string()));
                };
                let members_dead = config.members().any(|n| self.nodes.get(&n) != Some(&true));
                if dead.is_some_and(|d| d == m.the_move.from || d == m.the_move.to) || members_dead {
                    Some((gpid, "a node of the move is not alive".to_string()))
                } else if now.saturating_sub(m.progressed_ms) > MOVE_TIMEOUT_MS {
                    Some((gpid, format!("no progress for {} min", MOVE_TIMEOUT_MS / 60_000)))
                } else {
                    None
                }
            })
            .collect();
        for (gpid, reason) in stale {
            self.end_move(gpid, Err(reason));
        }
    }

    /// Whether a learner may join `gpid` beyond its replica count: it is the new node of a copy.
    pub(super) fn move_adds(&self, gpid: Gpid, node: NodeAddr) -> bool {
        self.moves
            .get(&gpid)
            .is_some_and(|m| m.the_move.kind.copies_data() && m.the_move.to == node)
    }

    fn check_manual_move(&self, m: &BalanceMove) -> WireResult<()> {
        self.check_loaded()?;
        self.check_not_blind()?;
        let level = self.effective_level().0;
        if level != MetaLevel::Steady {
            return Err(err(
                ErrorCode::ERR_INVALID_STATE,
                format!(
                    "the meta level is {}: manual moves need fl_steady (set_meta_level steady)",
                    level.pegasus_name()
                ),
            ));
        }
        if m.from == m.to {
            return Err(err(ErrorCode::ERR_INVALID_PARAMETERS, "from and to are the same node"));
        }
        for node in [m.from, m.to] {
            match self.nodes.get(&node) {
                None => {
                    return Err(err(
                        ErrorCode::ERR_INVALID_PARAMETERS,
                        format!("{node} is not a replica server of this cluster"),
                    ))
                }
                Some(false) => return Err(err(ErrorCode::ERR_INVALID_STATE, format!("{node} is not alive"))),
                Some(true) => {}
            }
        }
        let (_, config) = self.partition(m.gpid).ok_or_else(|| {
            err(
                ErrorCode::ERR_OBJECT_NOT_FOUND,
                format!("partition {} does not exist", m.gpid),
            )
        })?;
        let role_error = |what: String| Err(err(ErrorCode::ERR_INVALID_STATE, what));
        match m.kind {
            MoveKind::MovePri | MoveKind::CopyPri if config.primary != Some(m.from) => {
                role_error(format!("{} is not the primary of {}", m.from, m.gpid))
            }
            MoveKind::MovePri if !config.secondaries.contains(&m.to) => {
                role_error(format!("{} is not a secondary of {}", m.to, m.gpid))
            }
            MoveKind::CopySec if !config.secondaries.contains(&m.from) => {
                role_error(format!("{} is not a secondary of {}", m.from, m.gpid))
            }
            MoveKind::CopyPri | MoveKind::CopySec if config.is_member(m.to) => {
                role_error(format!("{} already serves {}", m.to, m.gpid))
            }
            _ if config.health() != PartitionHealth::FullyHealthy => {
                role_error(format!("{} is not fully healthy; the cure goes first", m.gpid))
            }
            _ => Ok(()),
        }
    }
}

impl Handler<TakeBalanceSnapshot> for ServerState {
    type Result = Option<BalanceSnapshot>;

    fn handle(&mut self, _: TakeBalanceSnapshot, _: &mut Self::Context) -> Self::Result {
        self.loaded.then(|| self.balance_snapshot())
    }
}

impl Handler<BalanceRound> for ServerState {
    type Result = ();

    fn handle(&mut self, round: BalanceRound, ctx: &mut Self::Context) {
        self.balance_operation_count = round.operation_count;
        META_BALANCE_OPERATIONS.set(round.operation_count);
        for the_move in round.start {
            if let Err(e) = self.start_move(the_move, MoveOrigin::Balancer, ctx) {
                tracing::debug!(%the_move, error = %e, "planned move not started");
            }
        }
    }
}

impl Handler<SteppedDown> for ServerState {
    type Result = ();

    fn handle(&mut self, msg: SteppedDown, ctx: &mut Self::Context) {
        let current = self.partition(msg.gpid).map(|(_, c)| c.ballot);
        let Some(progress) = self.moves.get_mut(&msg.gpid) else {
            return;
        };
        progress.confirming = None;
        if current != Some(msg.ballot) {
            // The partition moved on meanwhile; the next step decides whether to ask again.
            return self.advance_move(msg.gpid, ctx);
        }
        if msg.confirmed {
            progress.stepped_down_at = Some(msg.ballot);
            self.advance_move(msg.gpid, ctx);
        } else {
            let from = progress.the_move.from;
            self.end_move(
                msg.gpid,
                Err(format!("{from} did not confirm it stepped down as primary")),
            );
            self.schedule_cure(ctx);
        }
    }
}

impl Handler<Inbound<Balance>> for ServerState {
    type Result = WireResult<()>;

    fn handle(&mut self, Inbound(req): Inbound<Balance>, ctx: &mut Self::Context) -> Self::Result {
        self.check_manual_move(&req.the_move)?;
        self.start_move(req.the_move, MoveOrigin::Operator, ctx)
    }
}
