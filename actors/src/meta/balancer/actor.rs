//! The `Balancer` actor: every `lb_interval` (and soon after a move ends, a node comes or goes, or
//! the level changes) it takes a snapshot of `ServerState`, runs the pure planner on it outside the
//! state's mailbox, and hands back the count of remaining operations and the moves to start now.
//! `ServerState` checks each move again against the current map and carries it out step by step.
//!
//! ```text
//!  Balancer ─TakeBalanceSnapshot─► ServerState
//!     plan(snapshot)
//!  Balancer ─BalanceRound{count, start}─► ServerState ─► start_move ─► steps through the cure path
//! ```

use super::plan::{copy_lower_bound, plan, staying, BalanceOptions, PlanInput, TableView};
use crate::meta::ServerState;
use actix::prelude::*;
use aerie_common::{AppId, Gpid, NodeAddr, WireResult};
use aerie_proto::meta::{BalanceMove, BalancePlan, PlannedMove, QueryBalancePlan};
use aerie_rpc::Inbound;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the balancer needs to know of the cluster map.
#[derive(Debug, Clone, Default)]
pub struct BalanceSnapshot {
    /// Tables as they will be once the moves under way have finished.
    pub tables: Vec<TableView>,
    pub app_names: BTreeMap<AppId, String>,
    /// Alive nodes.
    pub nodes: BTreeSet<NodeAddr>,
    /// Nodes being emptied (`offline_node`).
    pub leaving: BTreeSet<NodeAddr>,
    /// Nodes that receive no new replica.
    pub black_list: BTreeSet<NodeAddr>,
    /// Partitions that take no move now: moving, adding a secondary, or not fully healthy.
    pub locked: BTreeSet<Gpid>,
    pub in_progress: Vec<BalanceMove>,
    pub options: BalanceOptions,
    /// Why balancing may not act now (level, health), if it may not.
    pub balance_blocked: Option<String>,
    /// Why evacuating leaving nodes may not act now, if it may not.
    pub evacuation_blocked: Option<String>,
    /// Alive nodes that have not reported their replicas to this meta yet.
    pub unreported: Vec<NodeAddr>,
    /// Partition sizes as their replicas last reported them.
    pub data_bytes: BTreeMap<Gpid, u64>,
}

/// The balancer asks `ServerState` for a snapshot (`None` while the state is loading).
#[derive(Message)]
#[rtype(result = "Option<BalanceSnapshot>")]
pub struct TakeBalanceSnapshot;

/// The outcome of one planning round.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct BalanceRound {
    /// Moves planned plus moves under way; -1 while a node has not reported.
    pub operation_count: i64,
    /// Moves to start now (at most one per partition).
    pub start: Vec<BalanceMove>,
}

/// Plan again soon.
#[derive(Message)]
#[rtype(result = "()")]
pub struct KickBalancer;

/// Decides one round from a snapshot: the moves that would balance it (or evacuate leaving
/// nodes), how many there are, and which to start.
pub fn decide(snapshot: &BalanceSnapshot) -> (Vec<BalanceMove>, BalanceRound) {
    let moves = plan(PlanInput {
        tables: &snapshot.tables,
        nodes: &snapshot.nodes,
        leaving: &snapshot.leaving,
        black_list: &snapshot.black_list,
        locked: &snapshot.locked,
        options: snapshot.options,
    });
    let operation_count = if snapshot.unreported.is_empty() {
        (moves.len() + snapshot.in_progress.len()) as i64
    } else {
        -1
    };
    let blocked = if snapshot.leaving.is_empty() {
        &snapshot.balance_blocked
    } else {
        &snapshot.evacuation_blocked
    };
    let mut start = Vec::new();
    if blocked.is_none() {
        let first_table = moves.first().map(|m| m.gpid.app_id);
        let mut seen = BTreeSet::new();
        for m in &moves {
            let in_turn_ok = !snapshot.options.in_turn || Some(m.gpid.app_id) == first_table;
            if in_turn_ok && seen.insert(m.gpid) {
                start.push(*m);
            }
        }
    }
    (moves, BalanceRound { operation_count, start })
}

/// The dry run: what the balancer would do now and why it would not, if it would not.
pub fn describe_plan(snapshot: &BalanceSnapshot, moves: &[BalanceMove]) -> BalancePlan {
    let blocked = if snapshot.leaving.is_empty() {
        snapshot.balance_blocked.clone()
    } else {
        snapshot.evacuation_blocked.clone()
    };
    let staying = staying(&snapshot.nodes, &snapshot.leaving, &snapshot.black_list);
    let copy_lower_bound = if snapshot.leaving.is_empty() {
        snapshot
            .tables
            .iter()
            .map(|t| copy_lower_bound(&t.partitions, &staying))
            .sum()
    } else {
        snapshot
            .tables
            .iter()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| p.members())
            .filter(|m| snapshot.leaving.contains(m))
            .count() as u64
    };
    BalancePlan {
        blocked,
        moves: moves
            .iter()
            .map(|m| PlannedMove {
                the_move: *m,
                app_name: snapshot.app_names.get(&m.gpid.app_id).cloned().unwrap_or_default(),
                copy_bytes: m
                    .kind
                    .copies_data()
                    .then(|| snapshot.data_bytes.get(&m.gpid).copied().unwrap_or(0)),
            })
            .collect(),
        in_progress: snapshot.in_progress.clone(),
        copy_lower_bound,
    }
}

pub struct Balancer {
    state: Addr<ServerState>,
    interval: Duration,
    planning: bool,
    kicked: bool,
}

/// How soon a kick plans again: soon, but several events in a burst make one round.
const KICK_DELAY: Duration = Duration::from_millis(200);

impl Balancer {
    pub fn new(state: Addr<ServerState>, interval: Duration) -> Self {
        Balancer {
            state,
            interval,
            planning: false,
            kicked: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.planning {
            self.kicked = true;
            return;
        }
        self.planning = true;
        let state = self.state.clone();
        ctx.spawn(
            async move { state.send(TakeBalanceSnapshot).await.ok().flatten() }
                .into_actor(self)
                .map(|snapshot, act, ctx| {
                    act.planning = false;
                    if let Some(snapshot) = snapshot {
                        let (_, round) = decide(&snapshot);
                        act.state.do_send(round);
                    }
                    if std::mem::take(&mut act.kicked) {
                        ctx.run_later(KICK_DELAY, |act, ctx| act.round(ctx));
                    }
                }),
        );
    }
}

impl Actor for Balancer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.round(ctx));
    }
}

impl Handler<KickBalancer> for Balancer {
    type Result = ();

    fn handle(&mut self, _: KickBalancer, ctx: &mut Self::Context) {
        if !self.kicked {
            self.kicked = true;
            ctx.run_later(KICK_DELAY, |act, ctx| {
                act.kicked = false;
                act.round(ctx);
            });
        }
    }
}

impl Handler<Inbound<QueryBalancePlan>> for Balancer {
    type Result = ResponseFuture<WireResult<BalancePlan>>;

    fn handle(&mut self, _: Inbound<QueryBalancePlan>, _: &mut Self::Context) -> Self::Result {
        let state = self.state.clone();
        Box::pin(async move {
            let snapshot = state.send(TakeBalanceSnapshot).await.ok().flatten().ok_or_else(|| {
                aerie_common::WireError::new(
                    aerie_common::ErrorCode::ERR_SERVICE_NOT_ACTIVE,
                    "the meta server is loading its state; retry shortly",
                )
            })?;
            let (moves, _) = decide(&snapshot);
            Ok(describe_plan(&snapshot, &moves))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_proto::meta::{MoveKind, PartitionConfig};

    fn node(i: u16) -> NodeAddr {
        format!("127.0.0.1:{}", 34801 + i).parse().unwrap()
    }

    /// Two tables, every primary of each on node 0 of three nodes that all hold every partition.
    fn snapshot() -> BalanceSnapshot {
        let table = |app_id: AppId| TableView {
            app_id,
            partitions: (0..3)
                .map(|p| PartitionConfig {
                    primary: Some(node(0)),
                    secondaries: vec![node(1), node(2)],
                    ..PartitionConfig::empty(Gpid::new(app_id, p), 3)
                })
                .collect(),
        };
        BalanceSnapshot {
            tables: vec![table(1), table(2)],
            nodes: (0..3).map(node).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_blocked_balancer_counts_but_starts_nothing() {
        let mut snap = snapshot();
        snap.balance_blocked = Some("the meta level is fl_steady".into());
        let (moves, round) = decide(&snap);
        assert_eq!(round.operation_count, moves.len() as i64);
        assert_eq!(round.operation_count, 4, "two role swaps per table");
        assert!(round.start.is_empty());
    }

    #[test]
    fn an_unreported_node_makes_the_count_unknown() {
        let mut snap = snapshot();
        snap.unreported = vec![node(2)];
        assert_eq!(decide(&snap).1.operation_count, -1);
    }

    #[test]
    fn in_turn_starts_the_first_table_only_and_one_move_per_partition() {
        let mut snap = snapshot();
        let (_, round) = decide(&snap);
        assert_eq!(round.start.len(), 4);
        snap.options.in_turn = true;
        let (_, round) = decide(&snap);
        assert!(round.start.iter().all(|m| m.gpid.app_id == 1), "{round:?}");
        let gpids: BTreeSet<Gpid> = round.start.iter().map(|m| m.gpid).collect();
        assert_eq!(gpids.len(), round.start.len());
    }

    #[test]
    fn the_dry_run_names_the_data_each_copy_moves() {
        let mut snap = snapshot();
        snap.nodes.insert(node(3));
        snap.data_bytes.insert(Gpid::new(1, 0), 4096);
        let (moves, _) = decide(&snap);
        let plan = describe_plan(&snap, &moves);
        assert!(plan.copy_lower_bound > 0);
        let copies: Vec<&PlannedMove> = plan.moves.iter().filter(|m| m.the_move.kind.copies_data()).collect();
        assert_eq!(copies.len() as u64, plan.copy_lower_bound);
        assert!(plan
            .moves
            .iter()
            .filter(|m| m.the_move.kind == MoveKind::MovePri)
            .all(|m| m.copy_bytes.is_none()));
    }
}
