//! Where a new table's replicas go: a pure function of the alive nodes and their current load.
//!
//! The nodes form a ring, least loaded first. Partition `i` takes the `r` consecutive ring positions
//! starting at `i·r mod n`; over the whole table the positions used are the consecutive integers
//! `0 .. p·r`, so every node holds the same number of replicas (±1), and a window of `r ≤ n`
//! consecutive positions never names a node twice. The primary sits at offset
//! `(i div (n/g)) mod g` of its window, `g = gcd(r, n)`: the windows of `n/g` consecutive partitions
//! start at every multiple of `g` once, so `g` such rounds with offsets `0 .. g` put exactly one
//! primary on every node per `n` partitions, and primaries are balanced (±1) too.

use aerie_common::NodeAddr;
use std::collections::BTreeMap;

/// A node's current load across every table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub primaries: u32,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub primary: NodeAddr,
    pub secondaries: Vec<NodeAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error(
        "a table with {replica_count} replicas needs {replica_count} alive replica servers, but {alive} are alive"
    )]
    NotEnoughNodes { replica_count: u32, alive: usize },
    #[error("replica count must be at least 1")]
    NoReplicas,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Places `partition_count` partitions with `replica_count` replicas each on `alive` nodes.
pub fn place_table(
    alive: &BTreeMap<NodeAddr, NodeLoad>,
    partition_count: u32,
    replica_count: u32,
) -> Result<Vec<Placement>, PlacementError> {
    if replica_count == 0 {
        return Err(PlacementError::NoReplicas);
    }
    if alive.len() < replica_count as usize {
        return Err(PlacementError::NotEnoughNodes {
            replica_count,
            alive: alive.len(),
        });
    }
    let mut ring: Vec<(NodeAddr, NodeLoad)> = alive.iter().map(|(n, l)| (*n, *l)).collect();
    ring.sort_by_key(|(node, load)| (load.replicas, load.primaries, *node));
    let (n, r) = (ring.len(), replica_count as usize);
    let g = gcd(r, n);
    let round = n / g;
    let placements = (0..partition_count as usize)
        .map(|i| {
            let start = i * r;
            let primary_offset = (i / round) % g;
            let member = |k: usize| ring[(start + k) % n].0;
            Placement {
                primary: member(primary_offset),
                secondaries: (0..r).filter(|k| *k != primary_offset).map(member).collect(),
            }
        })
        .collect();
    Ok(placements)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: u16) -> BTreeMap<NodeAddr, NodeLoad> {
        (0..n)
            .map(|i| (format!("127.0.0.1:{}", 34801 + i).parse().unwrap(), NodeLoad::default()))
            .collect()
    }

    fn spread(placements: &[Placement]) -> (BTreeMap<NodeAddr, u32>, BTreeMap<NodeAddr, u32>) {
        let mut primaries = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for p in placements {
            *primaries.entry(p.primary).or_insert(0) += 1;
            for node in std::iter::once(&p.primary).chain(&p.secondaries) {
                *replicas.entry(*node).or_insert(0) += 1;
            }
        }
        (primaries, replicas)
    }

    fn max_minus_min(counts: &BTreeMap<NodeAddr, u32>, all: &BTreeMap<NodeAddr, NodeLoad>) -> u32 {
        let values: Vec<u32> = all.keys().map(|n| counts.get(n).copied().unwrap_or(0)).collect();
        values.iter().max().unwrap() - values.iter().min().unwrap()
    }

    #[test]
    fn eight_partitions_on_three_nodes() {
        let all = nodes(3);
        let placements = place_table(&all, 8, 3).unwrap();
        let (primaries, replicas) = spread(&placements);
        assert!(max_minus_min(&primaries, &all) <= 1);
        assert!(replicas.values().all(|r| *r == 8));
    }

    #[test]
    fn too_few_nodes_is_refused_with_the_numbers() {
        let err = place_table(&nodes(2), 8, 3).unwrap_err();
        assert_eq!(
            err,
            PlacementError::NotEnoughNodes {
                replica_count: 3,
                alive: 2
            }
        );
        assert!(err
            .to_string()
            .contains("needs 3 alive replica servers, but 2 are alive"));
    }

    #[test]
    fn existing_load_steers_ties() {
        let mut all = nodes(4);
        let busy = *all.keys().next().unwrap();
        all.insert(
            busy,
            NodeLoad {
                primaries: 10,
                replicas: 30,
            },
        );
        let placements = place_table(&all, 1, 3).unwrap();
        assert_ne!(placements[0].primary, busy);
        assert!(!placements[0].secondaries.contains(&busy));
    }

    proptest! {
        #[test]
        fn shares_are_equal_within_one_and_members_distinct(
            node_count in 1u16..12,
            partition_exp in 0u32..7,
            replica_count in 1u32..4,
        ) {
            let all = nodes(node_count);
            let partition_count = 1 << partition_exp;
            match place_table(&all, partition_count, replica_count) {
                Err(_) => prop_assert!((node_count as u32) < replica_count),
                Ok(placements) => {
                    prop_assert_eq!(placements.len() as u32, partition_count);
                    for p in &placements {
                        prop_assert_eq!(p.secondaries.len() as u32, replica_count - 1);
                        let mut members: Vec<_> = std::iter::once(p.primary).chain(p.secondaries.iter().copied()).collect();
                        members.sort();
                        members.dedup();
                        prop_assert_eq!(members.len() as u32, replica_count);
                    }
                    let (primaries, replicas) = spread(&placements);
                    prop_assert!(max_minus_min(&primaries, &all) <= 1, "primaries {:?}", primaries);
                    prop_assert!(max_minus_min(&replicas, &all) <= 1, "replicas {:?}", replicas);
                }
            }
        }
    }
}
