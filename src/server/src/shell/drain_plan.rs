//! What `migrate_node` and `downgrade_node` will ask the meta for, decided from the cluster map
//! alone (pure, unit-tested): which partition moves where, and which cannot move and why.

use aerie_common::{Gpid, NodeAddr};
use aerie_proto::meta::{AppState, PartitionConfig};
use std::collections::{BTreeMap, BTreeSet};

/// The two ways of taking a node's part in its partitions away before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Every primary on the node swaps roles with a secondary elsewhere (move_pri).
    MigratePrimaries,
    /// Every secondary on the node leaves its partition's configuration (DOWNGRADE_TO_INACTIVE).
    DowngradeSecondaries,
}

impl Drain {
    pub fn command(self) -> &'static str {
        match self {
            Drain::MigratePrimaries => "migrate_node",
            Drain::DowngradeSecondaries => "downgrade_node",
        }
    }

    /// What the node still has that this drain takes away, in `config`.
    pub fn holds(self, config: &PartitionConfig, node: NodeAddr) -> bool {
        match self {
            Drain::MigratePrimaries => config.primary == Some(node),
            Drain::DowngradeSecondaries => config.secondaries.contains(&node),
        }
    }
}

/// One request to the meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedMove {
    pub gpid: Gpid,
    /// The partition's ballot when planned (the move is done once the node holds nothing there).
    pub ballot: i64,
    /// migrate: the secondary that becomes primary; downgrade: the primary that carries it out.
    pub to: NodeAddr,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainPlan {
    pub moves: Vec<PlannedMove>,
    /// Partitions that cannot be moved, with the reason.
    pub problems: Vec<(Gpid, String)>,
}

/// The replicas a write needs (`mutation_2pc_min_replica_count`): a downgrade may not go below.
const MIN_REPLICAS_FOR_WRITE: usize = 2;

/// Plans `drain` of `node` over every table. `alive`: the replica servers the meta sees alive.
pub fn plan(drain: Drain, node: NodeAddr, tables: &[AppState], alive: &BTreeSet<NodeAddr>) -> DrainPlan {
    let mut primaries: BTreeMap<NodeAddr, usize> = alive.iter().map(|n| (*n, 0)).collect();
    for config in tables.iter().flat_map(|t| &t.partitions) {
        if let Some(p) = config.primary {
            *primaries.entry(p).or_default() += 1;
        }
    }
    let mut out = DrainPlan::default();
    for config in tables.iter().flat_map(|t| &t.partitions) {
        match drain {
            Drain::MigratePrimaries if config.primary == Some(node) => {
                match new_primary(config, node, alive, &primaries) {
                    Ok(to) => {
                        *primaries.entry(to).or_default() += 1;
                        out.moves.push(PlannedMove {
                            gpid: config.gpid,
                            ballot: config.ballot,
                            to,
                        });
                    }
                    Err(why) => out.problems.push((config.gpid, why)),
                }
            }
            Drain::DowngradeSecondaries if config.primary == Some(node) => out.problems.push((
                config.gpid,
                format!("{node} is its primary; move it away first (migrate_node -n {node})"),
            )),
            Drain::DowngradeSecondaries if config.secondaries.contains(&node) => {
                match downgrade_by(config, node, alive) {
                    Ok(primary) => out.moves.push(PlannedMove {
                        gpid: config.gpid,
                        ballot: config.ballot,
                        to: primary,
                    }),
                    Err(why) => out.problems.push((config.gpid, why)),
                }
            }
            _ => {}
        }
    }
    out
}

/// The alive secondary (not `node`) leading fewest partitions.
fn new_primary(
    config: &PartitionConfig,
    node: NodeAddr,
    alive: &BTreeSet<NodeAddr>,
    primaries: &BTreeMap<NodeAddr, usize>,
) -> Result<NodeAddr, String> {
    if config.secondaries.is_empty() {
        return Err("it has no secondary to take over".to_string());
    }
    config
        .secondaries
        .iter()
        .copied()
        .filter(|s| *s != node && alive.contains(s))
        .min_by_key(|s| (primaries.get(s).copied().unwrap_or(0), *s))
        .ok_or_else(|| {
            format!(
                "none of its secondaries is alive ({})",
                config
                    .secondaries
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// The primary that carries out the downgrade of `node`, if writes go on without it.
fn downgrade_by(config: &PartitionConfig, node: NodeAddr, alive: &BTreeSet<NodeAddr>) -> Result<NodeAddr, String> {
    let Some(primary) = config.primary.filter(|p| alive.contains(p)) else {
        return Err("it has no alive primary to carry out the downgrade".to_string());
    };
    let left = config.replica_count() - 1;
    if left < MIN_REPLICAS_FOR_WRITE {
        return Err(format!(
            "it has {} replica(s); without {node} it could not take writes",
            config.replica_count()
        ));
    }
    Ok(primary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_proto::meta::AppInfo;

    fn n(i: u16) -> NodeAddr {
        format!("127.0.0.{i}:34801").parse().unwrap()
    }

    fn partition(pidx: u32, primary: Option<u16>, secondaries: &[u16]) -> PartitionConfig {
        PartitionConfig {
            gpid: Gpid::new(1, pidx),
            ballot: 3,
            primary: primary.map(n),
            secondaries: secondaries.iter().map(|s| n(*s)).collect(),
            max_replica_count: 3,
            last_drops: vec![],
            last_committed_decree: 0,
        }
    }

    fn table(partitions: Vec<PartitionConfig>) -> Vec<AppState> {
        vec![AppState {
            info: AppInfo {
                app_id: 1,
                app_name: "t".into(),
                status: aerie_proto::meta::AppStatus::Available,
                partition_count: partitions.len() as u32,
                max_replica_count: 3,
                create_time_secs: 0,
                drop_time_secs: None,
                envs: Default::default(),
            },
            partitions,
        }]
    }

    fn alive(nodes: &[u16]) -> BTreeSet<NodeAddr> {
        nodes.iter().map(|i| n(*i)).collect()
    }

    #[test]
    fn primaries_go_to_the_alive_secondary_that_leads_fewest() {
        let tables = table(vec![
            partition(0, Some(1), &[2, 3]),
            partition(1, Some(1), &[2, 3]),
            partition(2, Some(2), &[1, 3]),
            partition(3, Some(3), &[1, 2]),
        ]);
        let plan = plan(Drain::MigratePrimaries, n(1), &tables, &alive(&[1, 2, 3]));
        assert!(plan.problems.is_empty());
        let targets: Vec<(u32, NodeAddr)> = plan.moves.iter().map(|m| (m.gpid.pidx, m.to)).collect();
        // Nodes 2 and 3 lead one each: the first goes to 2 (lower address), the second to 3.
        assert_eq!(targets, vec![(0, n(2)), (1, n(3))]);
    }

    #[test]
    fn a_primary_without_an_alive_secondary_is_named_with_the_reason() {
        let tables = table(vec![partition(0, Some(1), &[]), partition(1, Some(1), &[2, 3])]);
        let plan = plan(Drain::MigratePrimaries, n(1), &tables, &alive(&[1]));
        assert!(plan.moves.is_empty());
        assert_eq!(plan.problems.len(), 2);
        assert!(plan.problems[0].1.contains("no secondary"), "{:?}", plan.problems);
        assert!(
            plan.problems[1].1.contains("none of its secondaries is alive"),
            "{:?}",
            plan.problems
        );
    }

    #[test]
    fn secondaries_are_downgraded_by_their_primary_unless_writes_would_stop() {
        let tables = table(vec![
            partition(0, Some(2), &[1, 3]),
            partition(1, Some(1), &[2, 3]),
            partition(2, Some(3), &[1]),
            partition(3, Some(2), &[3]),
        ]);
        let plan = plan(Drain::DowngradeSecondaries, n(1), &tables, &alive(&[1, 2, 3]));
        assert_eq!(
            plan.moves,
            vec![PlannedMove {
                gpid: Gpid::new(1, 0),
                ballot: 3,
                to: n(2)
            }]
        );
        let reasons: Vec<(u32, &str)> = plan.problems.iter().map(|(g, r)| (g.pidx, r.as_str())).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].1.contains("is its primary"), "{reasons:?}");
        assert!(reasons[1].1.contains("could not take writes"), "{reasons:?}");
    }
}
