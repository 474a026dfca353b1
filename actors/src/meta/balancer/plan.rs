//! The balancer's planner: a pure function from the cluster map to the moves that balance it (or
//! that empty the nodes an operator takes out of service). No I/O, no clock: state in, moves out.
//!
//! Balance, per table, over the nodes that may hold replicas:
//!
//! ```text
//!  loop:
//!   A. move_pri along role-swap paths  u ─(u primary, v secondary)─► v  while some path
//!      leads from a node to one with at least two primaries fewer (no data copied)
//!   B. primaries still apart by 2 or more: copy_pri from a node with too many replicas to one
//!      with too few                                  (a copy that replica balance needs anyway)
//!   C. replicas apart: copy_sec from a node above its replica target to one below it
//!      (copy_pri when only primaries could go)
//!   D. primaries still apart and nothing else helps: copy_pri (an extra copy; last resort)
//! ```
//!
//! A role-swap plan with no improving path is optimal (a semi-matching with no cost-reducing path
//! is balanced as far as swaps can balance it), and once replicas are balanced within one per node,
//! swaps alone can balance primaries; so copies happen only where replica balance needs them, and
//! their number is the lower bound `copy_lower_bound` (the property tests check both claims).
//!
//! Evacuation (nodes leaving): the primaries on leaving nodes move to a secondary that stays
//! (move_pri) or, if none stays, to a new node (copy_pri); then every replica left on a leaving
//! node is copied to the staying node with the fewest replicas of the table (copy_sec).
//!
//! Every move keeps the partition at its replica count or above: a copy adds the new replica before
//! the old one goes, and a role swap changes no membership.

use aerie_common::{AppId, Gpid, NodeAddr};
use aerie_proto::meta::{BalanceMove, MoveKind, PartitionConfig};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The runtime options of SPEC.md section 5 (`meta.lb.*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BalanceOptions {
    /// Balance one table at a time (the executor starts moves of the first table only).
    pub in_turn: bool,
    /// Balance primaries only (no copy_sec).
    pub only_primary: bool,
    /// Balance primaries by role swap only (no copy_pri).
    pub only_move_primary: bool,
}

/// One table as the planner sees it.
#[derive(Debug, Clone)]
pub struct TableView {
    pub app_id: AppId,
    /// Partition configurations, as they will be once the moves under way have finished.
    pub partitions: Vec<PartitionConfig>,
}

/// What the planner works on.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub tables: &'a [TableView],
    /// Alive nodes that may hold replicas (leaving nodes included: they still hold theirs).
    pub nodes: &'a BTreeSet<NodeAddr>,
    /// Nodes to empty. When there are any, the plan only evacuates them.
    pub leaving: &'a BTreeSet<NodeAddr>,
    /// Nodes that receive no new replica (`assign_secondary_black_list`): they keep what they
    /// hold and take no part in balancing.
    pub black_list: &'a BTreeSet<NodeAddr>,
    /// Partitions with a move under way: they take no other move.
    pub locked: &'a BTreeSet<Gpid>,
    pub options: BalanceOptions,
}

/// Primaries and replicas per node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Load {
    primaries: i64,
    replicas: i64,
}

/// One partition during planning.
#[derive(Debug, Clone)]
struct Sim {
    gpid: Gpid,
    primary: Option<NodeAddr>,
    secondaries: Vec<NodeAddr>,
    movable: bool,
}

impl Sim {
    fn is_member(&self, node: NodeAddr) -> bool {
        self.primary == Some(node) || self.secondaries.contains(&node)
    }

    fn members(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.primary.into_iter().chain(self.secondaries.iter().copied())
    }
}

/// The moves that balance every table (or evacuate the leaving nodes), in the order they apply.
pub fn plan(input: PlanInput<'_>) -> Vec<BalanceMove> {
    let staying: Vec<NodeAddr> = staying(input.nodes, input.leaving, input.black_list)
        .into_iter()
        .collect();
    if staying.is_empty() {
        return Vec::new();
    }
    let mut planner = Planner {
        staying,
        leaving: input.leaving.clone(),
        options: input.options,
        total: BTreeMap::new(),
        moves: Vec::new(),
    };
    let mut tables: Vec<(AppId, Vec<Sim>)> = input
        .tables
        .iter()
        .map(|t| {
            let sims = t
                .partitions
                .iter()
                .map(|p| Sim {
                    gpid: p.gpid,
                    primary: p.primary,
                    secondaries: p.secondaries.clone(),
                    movable: p.primary.is_some() && !input.locked.contains(&p.gpid),
                })
                .collect();
            (t.app_id, sims)
        })
        .collect();
    for (_, sims) in &tables {
        for sim in sims {
            for node in sim.members() {
                let load = planner.total.entry(node).or_default();
                load.replicas += 1;
                load.primaries += (sim.primary == Some(node)) as i64;
            }
        }
    }
    for (_, sims) in &mut tables {
        if input.leaving.is_empty() {
            planner.balance_table(sims);
        } else {
            planner.evacuate_table(sims);
        }
    }
    planner.moves
}

/// The nodes that may receive replicas: alive, not leaving, not black-listed.
pub fn staying(
    nodes: &BTreeSet<NodeAddr>,
    leaving: &BTreeSet<NodeAddr>,
    black_list: &BTreeSet<NodeAddr>,
) -> BTreeSet<NodeAddr> {
    nodes
        .iter()
        .filter(|n| !leaving.contains(n) && !black_list.contains(n))
        .copied()
        .collect()
}

/// The fewest copies that can balance the replicas of one table over `nodes`: nodes above the
/// lower share must shed down to it, except that `R mod N` of them may keep one more.
pub fn copy_lower_bound(partitions: &[PartitionConfig], nodes: &BTreeSet<NodeAddr>) -> u64 {
    if nodes.is_empty() {
        return 0;
    }
    let mut counts: BTreeMap<NodeAddr, u64> = nodes.iter().map(|n| (*n, 0)).collect();
    for node in partitions.iter().flat_map(|p| p.members()) {
        if let Some(count) = counts.get_mut(&node) {
            *count += 1;
        }
    }
    let total: u64 = counts.values().sum();
    let (low, extra) = (total / nodes.len() as u64, total % nodes.len() as u64);
    let above: u64 = counts.values().map(|c| c.saturating_sub(low)).sum();
    let above_nodes = counts.values().filter(|c| **c > low).count() as u64;
    above - above_nodes.min(extra)
}

struct Planner {
    staying: Vec<NodeAddr>,
    leaving: BTreeSet<NodeAddr>,
    options: BalanceOptions,
    /// Load over every table, kept current as moves are planned (breaks ties between nodes).
    total: BTreeMap<NodeAddr, Load>,
    moves: Vec<BalanceMove>,
}

/// Load per node of the table being planned (staying nodes always present).
type Loads = BTreeMap<NodeAddr, Load>;

/// A candidate copy: partition index, from, to.
type Copy = (usize, NodeAddr, NodeAddr);

impl Planner {
    fn total(&self, node: NodeAddr) -> Load {
        self.total.get(&node).copied().unwrap_or_default()
    }

    /// Plans `kind` and applies it to the simulated partition and both load maps.
    fn apply(&mut self, sim: &mut Sim, loads: &mut Loads, kind: MoveKind, from: NodeAddr, to: NodeAddr) {
        self.moves.push(BalanceMove {
            gpid: sim.gpid,
            kind,
            from,
            to,
        });
        let (primaries, replicas) = match kind {
            MoveKind::MovePri => {
                sim.secondaries.retain(|n| *n != to);
                sim.secondaries.push(from);
                sim.primary = Some(to);
                (1, 0)
            }
            MoveKind::CopyPri => {
                sim.primary = Some(to);
                (1, 1)
            }
            MoveKind::CopySec => {
                sim.secondaries.retain(|n| *n != from);
                sim.secondaries.push(to);
                (0, 1)
            }
        };
        for map in [&mut self.total, loads] {
            let source = map.entry(from).or_default();
            source.primaries -= primaries;
            source.replicas -= replicas;
            let target = map.entry(to).or_default();
            target.primaries += primaries;
            target.replicas += replicas;
        }
    }

    fn table_loads(&self, sims: &[Sim]) -> Loads {
        let mut loads: Loads = self.staying.iter().map(|n| (*n, Load::default())).collect();
        for sim in sims {
            for node in sim.members() {
                let load = loads.entry(node).or_default();
                load.replicas += 1;
                load.primaries += (sim.primary == Some(node)) as i64;
            }
        }
        loads
    }

    /// The staying node that is not a member of `sim` with the fewest replicas of the table, then in total.
    fn best_new_home(&self, sim: &Sim, loads: &Loads) -> Option<NodeAddr> {
        self.staying
            .iter()
            .copied()
            .filter(|n| !sim.is_member(*n))
            .min_by_key(|n| (loads[n].replicas, self.total(*n).replicas, *n))
    }

    fn evacuate_table(&mut self, sims: &mut [Sim]) {
        let mut loads = self.table_loads(sims);
        for sim in sims.iter_mut().filter(|s| s.movable) {
            if let Some(primary) = sim.primary.filter(|p| self.leaving.contains(p)) {
                let swap = sim
                    .secondaries
                    .iter()
                    .copied()
                    .filter(|s| self.staying.contains(s))
                    .min_by_key(|s| (loads[s].primaries, self.total(*s).primaries, *s));
                match swap
                    .map(|to| (MoveKind::MovePri, to))
                    .or_else(|| self.best_new_home(sim, &loads).map(|to| (MoveKind::CopyPri, to)))
                {
                    Some((kind, to)) => self.apply(sim, &mut loads, kind, primary, to),
                    None => continue,
                }
            }
            let leaving: Vec<NodeAddr> = sim
                .secondaries
                .iter()
                .copied()
                .filter(|s| self.leaving.contains(s))
                .collect();
            for from in leaving {
                if let Some(to) = self.best_new_home(sim, &loads) {
                    self.apply(sim, &mut loads, MoveKind::CopySec, from, to);
                }
            }
        }
    }

    /// Replica targets per staying node: the lower share, one more for `R mod N` of them (nodes
    /// above the lower share first, so that they shed as little as possible; then the least
    /// loaded over every table).
    fn replica_targets(&self, loads: &Loads) -> BTreeMap<NodeAddr, i64> {
        let total: i64 = self.staying.iter().map(|n| loads[n].replicas).sum();
        let count = self.staying.len() as i64;
        let (low, extra) = (total / count, (total % count) as usize);
        let mut order = self.staying.clone();
        order.sort_by_key(|n| (loads[n].replicas <= low, self.total(*n).replicas, *n));
        order
            .iter()
            .enumerate()
            .map(|(rank, n)| (*n, low + (rank < extra) as i64))
            .collect()
    }

    fn primary_spread(&self, loads: &Loads) -> i64 {
        let counts = self.staying.iter().map(|n| loads[n].primaries);
        counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
    }

    fn balance_table(&mut self, sims: &mut [Sim]) {
        let mut loads = self.table_loads(sims);
        let targets = self.replica_targets(&loads);
        let replicas: usize = sims.iter().map(|s| s.members().count()).sum();
        let options = self.options;
        for _ in 0..(1_000 + 20 * replicas) {
            if let Some(path) = self.swap_path(sims, &loads) {
                // From the far end back, so that no node on the way holds more than it did.
                for (index, from, to) in path.into_iter().rev() {
                    self.apply(&mut sims[index], &mut loads, MoveKind::MovePri, from, to);
                }
                continue;
            }
            let primaries_apart = self.primary_spread(&loads) >= 2;
            let over = |loads: &Loads, n: &NodeAddr| loads[n].replicas > targets[n];
            let under = |loads: &Loads, n: &NodeAddr| loads[n].replicas < targets[n];
            let next: Option<(MoveKind, Copy)> = if primaries_apart && !options.only_move_primary {
                self.copy_primary(sims, &loads, 2, |l, f, t| over(l, f) && under(l, t))
                    .map(|c| (MoveKind::CopyPri, c))
            } else {
                None
            };
            let next = next.or_else(|| {
                if options.only_primary {
                    return None;
                }
                self.copy_secondary(sims, &loads, &targets)
                    .map(|c| (MoveKind::CopySec, c))
                    .or_else(|| {
                        (!options.only_move_primary)
                            .then(|| self.copy_primary(sims, &loads, i64::MIN, |l, f, t| over(l, f) && under(l, t)))
                            .flatten()
                            .map(|c| (MoveKind::CopyPri, c))
                    })
            });
            let next = next.or_else(|| {
                (primaries_apart && !options.only_move_primary)
                    .then(|| self.copy_primary(sims, &loads, 2, |_, _, _| true))
                    .flatten()
                    .map(|c| (MoveKind::CopyPri, c))
            });
            match next {
                Some((kind, (index, from, to))) => self.apply(&mut sims[index], &mut loads, kind, from, to),
                None => break,
            }
        }
    }

    /// A chain of role swaps that moves one primary from a node to a node with at least two
    /// fewer: `(partition, from, to)` per swap, from the start of the chain.
    fn swap_path(&self, sims: &[Sim], loads: &Loads) -> Option<Vec<Copy>> {
        let staying: BTreeSet<NodeAddr> = self.staying.iter().copied().collect();
        let mut edges: BTreeMap<NodeAddr, Vec<(usize, NodeAddr)>> = BTreeMap::new();
        for (index, sim) in sims.iter().enumerate().filter(|(_, s)| s.movable) {
            let Some(primary) = sim.primary.filter(|p| staying.contains(p)) else {
                continue;
            };
            for secondary in sim.secondaries.iter().filter(|s| staying.contains(s)) {
                edges.entry(primary).or_default().push((index, *secondary));
            }
        }
        let primaries = |n: &NodeAddr| loads[n].primaries;
        let lowest = self.staying.iter().map(primaries).min()?;
        let mut sources = self.staying.clone();
        sources.sort_by_key(|n| (-primaries(n), *n));
        for source in sources.into_iter().take_while(|n| primaries(n) >= lowest + 2) {
            let mut parent: BTreeMap<NodeAddr, (usize, NodeAddr)> = BTreeMap::new();
            let mut queue = VecDeque::from([source]);
            let mut best: Option<NodeAddr> = None;
            while let Some(node) = queue.pop_front() {
                for (index, next) in edges.get(&node).into_iter().flatten() {
                    if *next == source || parent.contains_key(next) {
                        continue;
                    }
                    parent.insert(*next, (*index, node));
                    queue.push_back(*next);
                    if best.is_none_or(|b| primaries(next) < primaries(&b)) {
                        best = Some(*next);
                    }
                }
            }
            let Some(target) = best.filter(|b| primaries(&source) - primaries(b) >= 2) else {
                continue;
            };
            let mut path = Vec::new();
            let mut node = target;
            while node != source {
                let (index, previous) = parent[&node];
                path.push((index, previous, node));
                node = previous;
            }
            path.reverse();
            return Some(path);
        }
        None
    }

    /// A copy_pri from a node to one with at least `min_gap` fewer primaries, among pairs `allowed`;
    /// the pair furthest apart in primaries first.
    fn copy_primary(
        &self,
        sims: &[Sim],
        loads: &Loads,
        min_gap: i64,
        allowed: impl Fn(&Loads, &NodeAddr, &NodeAddr) -> bool,
    ) -> Option<Copy> {
        let mut pairs: Vec<(NodeAddr, NodeAddr)> = self
            .staying
            .iter()
            .flat_map(|f| self.staying.iter().map(move |t| (*f, *t)))
            .filter(|(f, t)| f != t && loads[f].primaries - loads[t].primaries >= min_gap && allowed(loads, f, t))
            .collect();
        pairs.sort_by_key(|(f, t)| (loads[t].primaries - loads[f].primaries, *f, *t));
        pairs.into_iter().find_map(|(from, to)| {
            sims.iter()
                .position(|s| s.movable && s.primary == Some(from) && !s.is_member(to))
                .map(|index| (index, from, to))
        })
    }

    /// A copy_sec from a node above its replica target to one below it.
    fn copy_secondary(&self, sims: &[Sim], loads: &Loads, targets: &BTreeMap<NodeAddr, i64>) -> Option<Copy> {
        let excess = |n: &NodeAddr| loads[n].replicas - targets[n];
        let mut over: Vec<NodeAddr> = self.staying.iter().copied().filter(|n| excess(n) > 0).collect();
        over.sort_by_key(|n| (-excess(n), -self.total(*n).replicas, *n));
        let mut under: Vec<NodeAddr> = self.staying.iter().copied().filter(|n| excess(n) < 0).collect();
        under.sort_by_key(|n| (excess(n), self.total(*n).replicas, *n));
        over.iter().find_map(|from| {
            under.iter().find_map(|to| {
                sims.iter()
                    .position(|s| s.movable && s.secondaries.contains(from) && !s.is_member(*to))
                    .map(|index| (index, *from, *to))
            })
        })
    }
}

#[cfg(test)]
mod tests;
