use super::*;
use proptest::prelude::*;

fn node(i: usize) -> NodeAddr {
    format!("127.0.0.1:{}", 34801 + i).parse().unwrap()
}

fn partition(app_id: AppId, pidx: u32, primary: usize, secondaries: &[usize]) -> PartitionConfig {
    PartitionConfig {
        gpid: Gpid::new(app_id, pidx),
        ballot: 3,
        primary: Some(node(primary)),
        secondaries: secondaries.iter().map(|s| node(*s)).collect(),
        max_replica_count: 1 + secondaries.len() as u32,
        last_drops: Vec::new(),
        last_committed_decree: 0,
    }
}

/// `count` partitions on nodes 0-2, each node primary of every third.
fn rotating_table(count: u32) -> TableView {
    TableView {
        app_id: 1,
        partitions: (0..count)
            .map(|p| {
                let first = (p % 3) as usize;
                partition(1, p, first, &[(first + 1) % 3, (first + 2) % 3])
            })
            .collect(),
    }
}

fn nodes(count: usize) -> BTreeSet<NodeAddr> {
    (0..count).map(node).collect()
}

fn run(tables: &[TableView], all: &BTreeSet<NodeAddr>, leaving: &BTreeSet<NodeAddr>) -> Vec<BalanceMove> {
    plan(PlanInput {
        tables,
        nodes: all,
        leaving,
        black_list: &BTreeSet::new(),
        locked: &BTreeSet::new(),
        options: BalanceOptions::default(),
    })
}

/// A balance plan (no node leaving, nothing black-listed or locked) with these options.
fn run_opts(tables: &[TableView], all: &BTreeSet<NodeAddr>, options: BalanceOptions) -> Vec<BalanceMove> {
    run_with(tables, all, options, &BTreeSet::new(), &BTreeSet::new())
}

/// A balance plan (no node leaving) with these options, black list and locked partitions.
fn run_with(
    tables: &[TableView],
    all: &BTreeSet<NodeAddr>,
    options: BalanceOptions,
    black_list: &BTreeSet<NodeAddr>,
    locked: &BTreeSet<Gpid>,
) -> Vec<BalanceMove> {
    plan(PlanInput {
        tables,
        nodes: all,
        leaving: &BTreeSet::new(),
        black_list,
        locked,
        options,
    })
}

/// Applies `moves` step by step, checking each is valid where it applies and that no step leaves a
/// partition with fewer replicas than it had.
fn apply_all(tables: &[TableView], moves: &[BalanceMove]) -> Result<Vec<TableView>, String> {
    let mut tables = tables.to_vec();
    for m in moves {
        let config = tables
            .iter_mut()
            .find(|t| t.app_id == m.gpid.app_id)
            .and_then(|t| t.partitions.get_mut(m.gpid.pidx as usize))
            .ok_or(format!("{m}: no such partition"))?;
        let before = config.replica_count();
        let secondary = |c: &PartitionConfig, n| c.secondaries.contains(&n);
        let valid = match m.kind {
            MoveKind::MovePri => config.primary == Some(m.from) && secondary(config, m.to),
            MoveKind::CopyPri => config.primary == Some(m.from) && !config.is_member(m.to),
            MoveKind::CopySec => secondary(config, m.from) && !config.is_member(m.to),
        };
        if !valid || m.from == m.to {
            return Err(format!("{m} does not apply to {config:?}"));
        }
        // The steps the executor takes; the first copy step adds the new replica.
        if m.kind.copies_data() {
            config.secondaries.push(m.to);
            if config.replica_count() < before {
                return Err(format!("{m} shrinks the partition"));
            }
        }
        match m.kind {
            MoveKind::MovePri | MoveKind::CopyPri => {
                config.secondaries.retain(|n| *n != m.to);
                config.primary = Some(m.to);
                config.secondaries.push(m.from);
            }
            MoveKind::CopySec => {}
        }
        if m.kind.copies_data() {
            config.secondaries.retain(|n| *n != m.from);
        }
        if config.replica_count() != before {
            return Err(format!("{m} changed the replica count"));
        }
    }
    Ok(tables)
}

/// max - min over `over` of primaries and of replicas, per table.
fn spreads(tables: &[TableView], over: &BTreeSet<NodeAddr>) -> Vec<(i64, i64)> {
    tables
        .iter()
        .map(|t| {
            let mut counts: BTreeMap<NodeAddr, (i64, i64)> = over.iter().map(|n| (*n, (0, 0))).collect();
            for p in &t.partitions {
                for m in p.members() {
                    if let Some(c) = counts.get_mut(&m) {
                        c.0 += (p.primary == Some(m)) as i64;
                        c.1 += 1;
                    }
                }
            }
            let spread = |f: fn(&(i64, i64)) -> i64| {
                counts.values().map(f).max().unwrap_or(0) - counts.values().map(f).min().unwrap_or(0)
            };
            (spread(|c| c.0), spread(|c| c.1))
        })
        .collect()
}

/// The fewest copies that balance one table's replicas over `over`, by brute force: every way to
/// give `R mod N` nodes one replica more than `R div N`, and the replicas that must leave the nodes
/// above their share in it; the best of them.
fn fewest_copies_by_search(partitions: &[PartitionConfig], over: &BTreeSet<NodeAddr>) -> u64 {
    let counts: Vec<u64> = over
        .iter()
        .map(|n| partitions.iter().filter(|p| p.is_member(*n)).count() as u64)
        .collect();
    let (total, n) = (counts.iter().sum::<u64>(), counts.len() as u64);
    let (low, extra) = (total / n, (total % n) as u32);
    (0u32..1 << n)
        .filter(|mask| mask.count_ones() == extra)
        .map(|mask| {
            counts
                .iter()
                .enumerate()
                .map(|(i, c)| c.saturating_sub(low + ((mask >> i) & 1) as u64))
                .sum::<u64>()
        })
        .min()
        .expect("some assignment")
}

fn copies(moves: &[BalanceMove]) -> u64 {
    moves.iter().filter(|m| m.kind.copies_data()).count() as u64
}

/// A cluster of `node_count` nodes whose tables were placed on the first `occupied` nodes only
/// (the others joined later), members picked by the `picks`.
fn cluster(node_count: usize, occupied: usize, tables: &[TableSpec]) -> Vec<TableView> {
    tables
        .iter()
        .enumerate()
        .map(|(t, (replicas, partitions))| TableView {
            app_id: t as AppId + 1,
            partitions: partitions
                .iter()
                .enumerate()
                .map(|(pidx, picks)| {
                    let mut free: Vec<usize> = (0..occupied.max(*replicas as usize).min(node_count)).collect();
                    let members: Vec<usize> = picks.iter().map(|p| free.remove(p % free.len())).collect();
                    partition(t as AppId + 1, pidx as u32, members[0], &members[1..])
                })
                .collect(),
        })
        .collect()
}

/// Per table: its replica count, and per partition the picks that choose its members.
type TableSpec = (u32, Vec<Vec<usize>>);

fn cluster_strategy() -> impl Strategy<Value = (usize, usize, Vec<TableSpec>)> {
    (1usize..=7).prop_flat_map(|node_count| {
        let table = (1u32..=node_count.min(3) as u32).prop_flat_map(|replicas| {
            (
                Just(replicas),
                prop::collection::vec(prop::collection::vec(any::<usize>(), replicas as usize), 1..24),
            )
        });
        (Just(node_count), 1..=node_count, prop::collection::vec(table, 1..=3))
    })
}

#[test]
fn a_balanced_table_needs_no_moves() {
    // 3 nodes, 3 partitions, each node primary once and holding every partition.
    let tables = vec![TableView {
        app_id: 1,
        partitions: vec![
            partition(1, 0, 0, &[1, 2]),
            partition(1, 1, 1, &[2, 0]),
            partition(1, 2, 2, &[0, 1]),
        ],
    }];
    assert!(run(&tables, &nodes(3), &BTreeSet::new()).is_empty());
}

#[test]
fn primaries_move_by_role_swap_before_anything_is_copied() {
    // Every primary on node 0; every node holds every partition: swaps alone balance it.
    let tables = vec![TableView {
        app_id: 1,
        partitions: (0..3).map(|p| partition(1, p, 0, &[1, 2])).collect(),
    }];
    let moves = run(&tables, &nodes(3), &BTreeSet::new());
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves.iter().all(|m| m.kind == MoveKind::MovePri && m.from == node(0)));
}

#[test]
fn swaps_go_along_a_chain_when_no_direct_swap_helps() {
    // Node 0 leads two partitions that node 2 does not serve; node 1 leads one that node 2 serves.
    let tables = vec![TableView {
        app_id: 1,
        partitions: vec![
            partition(1, 0, 0, &[1]),
            partition(1, 1, 0, &[1]),
            partition(1, 2, 1, &[2]),
        ],
    }];
    let all = nodes(3);
    let moves = run_opts(
        &tables,
        &all,
        BalanceOptions {
            only_primary: true,
            ..Default::default()
        },
    );
    let after = apply_all(&tables, &moves).unwrap();
    assert_eq!(spreads(&after, &all)[0].0, 0, "{moves:?}");
    assert_eq!(
        moves.len(),
        2,
        "node 1 passes one on to node 2 and takes one from node 0: {moves:?}"
    );
    assert!(moves.iter().all(|m| m.kind == MoveKind::MovePri), "{moves:?}");
}

#[test]
fn a_new_empty_node_receives_its_share_with_the_fewest_copies() {
    // 8 partitions x 3 replicas on nodes 0-2; nodes 3 and 4 just joined.
    let tables = vec![rotating_table(8)];
    let all = nodes(5);
    let moves = run(&tables, &all, &BTreeSet::new());
    let after = apply_all(&tables, &moves).unwrap();
    assert!(
        spreads(&after, &all).iter().all(|(p, r)| *p <= 1 && *r <= 1),
        "{moves:?}"
    );
    // 24 replicas over 5 nodes: 5,5,5,5,4; the old nodes shed 3 each: 9 copies at least.
    assert_eq!(copy_lower_bound(&tables[0].partitions, &all), 9);
    assert_eq!(copies(&moves), 9, "{moves:?}");
}

#[test]
fn options_limit_the_kinds_of_moves() {
    let tables = vec![TableView {
        app_id: 1,
        partitions: (0..6).map(|p| partition(1, p, 0, &[1, 2])).collect(),
    }];
    let all = nodes(4);
    let only_swaps = run_opts(
        &tables,
        &all,
        BalanceOptions {
            only_move_primary: true,
            only_primary: true,
            in_turn: false,
        },
    );
    assert!(!only_swaps.is_empty());
    assert!(only_swaps.iter().all(|m| m.kind == MoveKind::MovePri), "{only_swaps:?}");
    let primaries_only = run_opts(
        &tables,
        &all,
        BalanceOptions {
            only_primary: true,
            ..Default::default()
        },
    );
    assert!(
        primaries_only.iter().all(|m| m.kind != MoveKind::CopySec),
        "{primaries_only:?}"
    );
    let after = apply_all(&tables, &primaries_only).unwrap();
    assert!(spreads(&after, &all)[0].0 <= 1, "{primaries_only:?}");
}

#[test]
fn a_black_listed_node_receives_nothing_and_keeps_what_it_has() {
    // Node 3 joined empty but is black-listed: no move goes to it.
    let tables = vec![rotating_table(6)];
    let black_list: BTreeSet<NodeAddr> = [node(3)].into();
    let moves = run_with(
        &tables,
        &nodes(4),
        BalanceOptions::default(),
        &black_list,
        &BTreeSet::new(),
    );
    assert!(moves.is_empty(), "{moves:?}");
}

#[test]
fn locked_partitions_take_no_move() {
    let tables = vec![TableView {
        app_id: 1,
        partitions: (0..3).map(|p| partition(1, p, 0, &[1, 2])).collect(),
    }];
    let locked: BTreeSet<Gpid> = (0..3).map(|p| Gpid::new(1, p)).collect();
    let moves = run_with(&tables, &nodes(3), BalanceOptions::default(), &BTreeSet::new(), &locked);
    assert!(moves.is_empty(), "{moves:?}");
}

#[test]
fn evacuation_swaps_primaries_away_then_copies_every_replica_once() {
    let tables = vec![TableView {
        app_id: 1,
        partitions: (0..8)
            .map(|p| partition(1, p, (p % 3) as usize, &[((p + 1) % 3) as usize, 3]))
            .collect(),
    }];
    let all = nodes(5);
    let leaving: BTreeSet<NodeAddr> = [node(0), node(3)].into();
    let moves = run(&tables, &all, &leaving);
    let after = apply_all(&tables, &moves).unwrap();
    assert!(after[0]
        .partitions
        .iter()
        .all(|p| p.members().all(|m| !leaving.contains(&m))));
    let on_leaving = tables[0]
        .partitions
        .iter()
        .flat_map(|p| p.members())
        .filter(|m| leaving.contains(m))
        .count() as u64;
    assert_eq!(copies(&moves), on_leaving, "{moves:?}");
    assert!(
        moves.iter().all(|m| m.kind != MoveKind::CopyPri),
        "every partition had a staying secondary"
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        // Small clusters where no node can leave are skipped by the evacuation property.
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_plan_balances_every_table_with_the_fewest_copies_and_never_shrinks_a_partition(
        (node_count, occupied, spec) in cluster_strategy()
    ) {
        let tables = cluster(node_count, occupied, &spec);
        let all = nodes(node_count);
        let moves = run(&tables, &all, &BTreeSet::new());
        let after = apply_all(&tables, &moves).map_err(TestCaseError::fail)?;
        for (i, (primaries, replicas)) in spreads(&after, &all).into_iter().enumerate() {
            prop_assert!(primaries <= 1 && replicas <= 1, "table {i}: primary spread {primaries}, replica spread {replicas}; moves {moves:?}");
        }
        let lower_bound: u64 = tables.iter().map(|t| fewest_copies_by_search(&t.partitions, &all)).sum();
        prop_assert_eq!(copies(&moves), lower_bound, "moves {:?}", moves);
        let reported: u64 = tables.iter().map(|t| copy_lower_bound(&t.partitions, &all)).sum();
        prop_assert_eq!(reported, lower_bound, "copy_lower_bound, as balance_plan reports it");
        prop_assert!(run(&after, &all, &BTreeSet::new()).is_empty(), "a balanced cluster yields no moves");
    }

    #[test]
    fn evacuation_empties_the_leaving_nodes_copying_each_replica_once(
        (node_count, occupied, spec) in cluster_strategy(),
        leaving_mask in any::<u8>(),
    ) {
        let tables = cluster(node_count, occupied, &spec);
        let all = nodes(node_count);
        let needed = spec.iter().map(|(r, _)| *r as usize).max().unwrap_or(1);
        // Any non-empty set of nodes whose departure leaves enough for every table.
        let may_leave = node_count - needed;
        prop_assume!(may_leave > 0);
        let leaving: BTreeSet<NodeAddr> = (0..node_count)
            .filter(|i| leaving_mask & (1 << i) != 0)
            .take(may_leave)
            .chain([leaving_mask as usize % node_count])
            .take(may_leave)
            .map(node)
            .collect();
        let moves = run(&tables, &all, &leaving);
        let after = apply_all(&tables, &moves).map_err(TestCaseError::fail)?;
        for t in &after {
            for p in &t.partitions {
                prop_assert!(p.members().all(|m| !leaving.contains(&m)), "{p:?} still on a leaving node; moves {moves:?}");
            }
        }
        let on_leaving = tables.iter().flat_map(|t| &t.partitions).flat_map(|p| p.members()).filter(|m| leaving.contains(m)).count() as u64;
        prop_assert_eq!(copies(&moves), on_leaving);
    }
}
