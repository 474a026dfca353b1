//! Taking replica servers out of service: the pre-flight checks of `offline_node`, as a pure
//! function of the nodes, the tables' replica counts, the freeze rule and the level.
//!
//! The operation is safe when, once the leaving nodes are stopped, enough nodes stay for every
//! table's replica count and the meta will not freeze itself (a frozen meta stops curing, so
//! the stop would leave partitions short of replicas with nobody repairing them).

use super::level::FreezeRule;
use aerie_common::{MetaLevel, NodeAddr};
use std::collections::{BTreeMap, BTreeSet};

/// What the checks look at.
#[derive(Debug, Clone, Copy)]
pub struct OfflineFacts<'a> {
    /// Every known node and whether it is alive.
    pub nodes: &'a BTreeMap<NodeAddr, bool>,
    /// Nodes already being emptied.
    pub leaving: &'a BTreeSet<NodeAddr>,
    /// Nodes that receive no new replica.
    pub black_list: &'a BTreeSet<NodeAddr>,
    /// The largest replica count of any table, and that table's name.
    pub most_replicas: Option<(u32, &'a str)>,
    pub freeze: &'a FreezeRule,
    /// The level in force.
    pub level: MetaLevel,
}

/// What stops the operation (empty: it may go ahead), and what the operator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

pub fn preflight(facts: OfflineFacts<'_>, requested: &[NodeAddr]) -> Preflight {
    let mut result = Preflight::default();
    if requested.is_empty() {
        result.problems.push("name at least one node (-n host:port)".into());
        return result;
    }
    for node in requested {
        match facts.nodes.get(node) {
            None => result.problems.push(format!(
                "{node} is not a replica server of this cluster (`nodes` lists them)"
            )),
            Some(false) => result.notes.push(format!(
                "{node} is not alive: the cure re-creates its replicas elsewhere; `remove_node -n {node}` forgets it once it holds none"
            )),
            Some(true) => {}
        }
    }
    if matches!(facts.level, MetaLevel::Blind | MetaLevel::Freezed) {
        result.problems.push(format!(
            "the meta level in force is {}: no replica can move (set_meta_level steady, or bring dead nodes back)",
            facts.level.pegasus_name()
        ));
    }
    let leaving: BTreeSet<NodeAddr> = facts.leaving.iter().chain(requested).copied().collect();
    let staying_alive = facts
        .nodes
        .iter()
        .filter(|(node, alive)| **alive && !leaving.contains(node))
        .count();
    let receivers = facts
        .nodes
        .iter()
        .filter(|(node, alive)| **alive && !leaving.contains(node) && !facts.black_list.contains(node))
        .count();
    if let Some((replicas, table)) = facts.most_replicas {
        if staying_alive < replicas as usize {
            result.problems.push(format!(
                "only {staying_alive} alive node(s) would stay, but table {table} keeps {replicas} replicas"
            ));
        } else if receivers < replicas as usize {
            result.problems.push(format!(
                "only {receivers} alive node(s) that are not black-listed would stay, but table {table} keeps {replicas} replicas (meta.lb.assign_secondary_black_list)"
            ));
        }
    }
    // Once the leaving nodes stop, they count as known and dead until `remove_node` forgets them.
    let known = facts.nodes.len();
    if let Some(reason) = facts.freeze.too_few(staying_alive, known) {
        let advice = if (staying_alive as u64) < facts.freeze.min_live_node_count_for_unfreeze as u64 {
            "lower min_live_node_count_for_unfreeze in the meta's configuration and restart the meta".to_string()
        } else {
            format!(
                "lower it for the operation: remote_command -t meta-server meta.live_percentage {}",
                staying_alive * 100 / known.max(1)
            )
        };
        result.problems.push(format!(
            "when the leaving nodes stop, {reason}: the meta would freeze itself and stop curing; {advice}"
        ));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u16) -> NodeAddr {
        format!("127.0.0.1:{}", 34801 + i).parse().unwrap()
    }

    const RULE: FreezeRule = FreezeRule {
        min_live_node_count_for_unfreeze: 3,
        node_live_percentage_threshold_for_update: 50,
    };

    fn check(alive: &[u16], dead: &[u16], requested: &[u16], rule: &FreezeRule) -> Preflight {
        let nodes: BTreeMap<NodeAddr, bool> = alive
            .iter()
            .map(|i| (node(*i), true))
            .chain(dead.iter().map(|i| (node(*i), false)))
            .collect();
        let requested: Vec<NodeAddr> = requested.iter().map(|i| node(*i)).collect();
        preflight(
            OfflineFacts {
                nodes: &nodes,
                leaving: &BTreeSet::new(),
                black_list: &BTreeSet::new(),
                most_replicas: Some((3, "t")),
                freeze: rule,
                level: MetaLevel::Steady,
            },
            &requested,
        )
    }

    #[test]
    fn five_to_three_is_safe() {
        assert_eq!(check(&[0, 1, 2, 3, 4], &[], &[3, 4], &RULE), Preflight::default());
    }

    #[test]
    fn too_few_nodes_for_the_replica_count_is_refused() {
        let result = check(&[0, 1, 2, 3], &[], &[2, 3], &RULE);
        assert!(
            result.problems[0].contains("only 2 alive node(s) would stay, but table t keeps 3 replicas"),
            "{result:?}"
        );
    }

    #[test]
    fn a_freeze_is_foreseen_and_the_knob_that_avoids_it_named() {
        // 7 known nodes, 3 stay: 42% < 50%.
        let result = check(&[0, 1, 2, 3, 4, 5, 6], &[], &[3, 4, 5, 6], &RULE);
        assert_eq!(result.problems.len(), 1, "{result:?}");
        assert!(result.problems[0].contains("below node_live_percentage_threshold_for_update = 50%"));
        assert!(result.problems[0].contains("meta.live_percentage 42"), "{result:?}");
        let lowered = FreezeRule {
            node_live_percentage_threshold_for_update: 42,
            ..RULE
        };
        assert!(check(&[0, 1, 2, 3, 4, 5, 6], &[], &[3, 4, 5, 6], &lowered)
            .problems
            .is_empty());
    }

    #[test]
    fn unknown_nodes_and_a_frozen_meta_are_refused() {
        let result = check(&[0, 1, 2, 3], &[], &[9], &RULE);
        assert!(result.problems[0].contains("is not a replica server of this cluster"));
        let nodes: BTreeMap<NodeAddr, bool> = (0..5).map(|i| (node(i), true)).collect();
        let frozen = preflight(
            OfflineFacts {
                nodes: &nodes,
                leaving: &BTreeSet::new(),
                black_list: &BTreeSet::new(),
                most_replicas: None,
                freeze: &RULE,
                level: MetaLevel::Freezed,
            },
            &[node(4)],
        );
        assert!(frozen.problems[0].contains("fl_freezed"), "{frozen:?}");
    }

    #[test]
    fn a_dead_node_is_noted_not_refused() {
        let result = check(&[0, 1, 2, 3], &[4], &[4], &RULE);
        assert!(result.problems.is_empty(), "{result:?}");
        assert!(result.notes[0].contains("is not alive"));
    }
}
