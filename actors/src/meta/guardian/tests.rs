use super::*;
use aerie_common::Gpid;

fn node(i: u16) -> NodeAddr {
    format!("127.0.0.1:{}", 34800 + i).parse().unwrap()
}

fn config(primary: Option<u16>, secondaries: &[u16]) -> PartitionConfig {
    PartitionConfig {
        gpid: Gpid::new(1, 0),
        ballot: 5,
        primary: primary.map(node),
        secondaries: secondaries.iter().copied().map(node).collect(),
        max_replica_count: 3,
        last_drops: Vec::new(),
        last_committed_decree: 0,
    }
}

/// A cluster view built field by field in each test.
struct World {
    alive: BTreeSet<NodeAddr>,
    total_load: BTreeMap<NodeAddr, NodeLoad>,
    table_load: BTreeMap<NodeAddr, NodeLoad>,
    dropped_at: BTreeMap<NodeAddr, u64>,
    alive_since: BTreeMap<NodeAddr, u64>,
    reports: BTreeMap<NodeAddr, ReplicaState>,
    adding: Option<NodeAddr>,
    adds_per_node: BTreeMap<NodeAddr, u32>,
    knobs: CureKnobs,
    maintenance: BTreeSet<NodeAddr>,
    now_ms: u64,
}

impl World {
    fn new(alive: &[u16]) -> Self {
        World {
            alive: alive.iter().copied().map(node).collect(),
            total_load: BTreeMap::new(),
            table_load: BTreeMap::new(),
            dropped_at: BTreeMap::new(),
            alive_since: BTreeMap::new(),
            reports: BTreeMap::new(),
            adding: None,
            adds_per_node: BTreeMap::new(),
            knobs: CureKnobs {
                assign_delay_ms: 300_000,
                black_list: BTreeSet::new(),
                flow_control: true,
                max_adds_per_node: 10,
            },
            maintenance: BTreeSet::new(),
            now_ms: 1_000_000,
        }
    }

    fn cure(&self, config: &PartitionConfig) -> CureOutcome {
        cure(
            config,
            &ClusterView {
                alive: &self.alive,
                total_load: &self.total_load,
                table_load: &self.table_load,
                dropped_at: &self.dropped_at,
                alive_since: &self.alive_since,
                rejoin_after_ms: 10_000,
                reports: &self.reports,
                adding: self.adding,
                adds_per_node: &self.adds_per_node,
                knobs: &self.knobs,
                maintenance: &self.maintenance,
                now_ms: self.now_ms,
            },
        )
    }

    fn load(&mut self, i: u16, primaries: u32, replicas: u32) {
        self.total_load.insert(node(i), NodeLoad { primaries, replicas });
    }

    fn report(&mut self, i: u16, ballot: Ballot, last_committed: Decree, last_prepared: Decree) {
        self.reports.insert(
            node(i),
            ReplicaState {
                ballot,
                last_committed,
                last_prepared,
            },
        );
    }
}

fn act(action: CureAction) -> CureOutcome {
    CureOutcome::Act(action)
}

fn waits(outcome: &CureOutcome, words: &str) -> bool {
    matches!(outcome, CureOutcome::Wait { reason, .. } if reason.contains(words))
}

fn wait_ends(outcome: &CureOutcome) -> Option<u64> {
    match outcome {
        CureOutcome::Wait { until_ms, .. } => *until_ms,
        other => panic!("expected a wait, got {other:?}"),
    }
}

#[test]
fn a_full_partition_is_healthy() {
    assert_eq!(
        World::new(&[1, 2, 3]).cure(&config(Some(1), &[2, 3])),
        CureOutcome::Healthy
    );
}

#[test]
fn dead_primary_promotes_the_secondary_with_fewest_primaries() {
    let mut world = World::new(&[2, 3]);
    world.load(2, 5, 9);
    world.load(3, 2, 9);
    assert_eq!(
        world.cure(&config(Some(1), &[2, 3])),
        act(CureAction::UpgradeToPrimary(node(3)))
    );
}

#[test]
fn dead_primary_without_live_secondary_is_dropped() {
    let world = World::new(&[4]);
    assert_eq!(
        world.cure(&config(Some(1), &[2])),
        act(CureAction::DropPrimary(node(1)))
    );
}

#[test]
fn no_primary_with_secondaries_alive_promotes_one() {
    let mut world = World::new(&[2, 3]);
    world.load(2, 1, 4);
    world.load(3, 0, 4);
    assert_eq!(
        world.cure(&config(None, &[2, 3])),
        act(CureAction::UpgradeToPrimary(node(3)))
    );
}

#[test]
fn dead_secondary_is_removed() {
    let world = World::new(&[1, 3]);
    assert_eq!(
        world.cure(&config(Some(1), &[2, 3])),
        act(CureAction::RemoveSecondary(node(2)))
    );
}

#[test]
fn a_new_partition_gets_a_primary_on_the_least_loaded_node() {
    let mut world = World::new(&[1, 2, 3]);
    world.load(1, 3, 3);
    world.load(2, 1, 5);
    world.load(3, 1, 2);
    let mut fresh = config(None, &[]);
    fresh.ballot = 0;
    assert_eq!(world.cure(&fresh), act(CureAction::AssignPrimary(node(3))));
}

#[test]
fn ddd_with_one_dropped_replica_waits_for_it_then_assigns_it() {
    let mut world = World::new(&[2, 3]);
    let mut dead = config(None, &[]);
    dead.last_drops = vec![node(1)];
    assert!(waits(
        &world.cure(&dead),
        "waiting for its last replica on 127.0.0.1:34801"
    ));
    world.alive.insert(node(1));
    assert!(waits(&world.cure(&dead), "waiting"), "alive but not reported yet");
    world.report(1, 5, 100, 101);
    assert_eq!(world.cure(&dead), act(CureAction::AssignPrimary(node(1))));
}

#[test]
fn ddd_with_several_dropped_replicas_picks_the_newest_of_the_last_two() {
    let mut world = World::new(&[]);
    let mut dead = config(None, &[]);
    dead.last_drops = vec![node(1), node(2), node(3)];
    world.alive.insert(node(3));
    world.report(3, 5, 90, 95);
    assert!(
        waits(&world.cure(&dead), "last two replicas"),
        "only one of the last two is back"
    );
    world.alive.insert(node(2));
    world.report(2, 5, 100, 100);
    assert_eq!(
        world.cure(&dead),
        act(CureAction::AssignPrimary(node(2))),
        "higher committed decree wins"
    );
    world.report(3, 6, 80, 80);
    assert_eq!(
        world.cure(&dead),
        act(CureAction::AssignPrimary(node(3))),
        "a higher ballot wins first"
    );
}

#[test]
fn ddd_without_history_waits_for_an_operator() {
    assert!(waits(&World::new(&[1, 2]).cure(&config(None, &[])), "ddd_diagnose"));
}

#[test]
fn missing_secondary_waits_for_the_dropped_node_during_the_delay() {
    let mut world = World::new(&[1, 2, 4]);
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.dropped_at.insert(node(3), world.now_ms - 60_000);
    let outcome = world.cure(&partition);
    assert!(waits(&outcome, "waiting 240000 ms more for 127.0.0.1:34803"));
    assert_eq!(
        wait_ends(&outcome),
        Some(world.now_ms + 240_000),
        "the cure looks again when the delay ends"
    );
}

#[test]
fn missing_secondary_goes_elsewhere_after_the_delay() {
    let mut world = World::new(&[1, 2, 4, 5]);
    world.table_load.insert(
        node(4),
        NodeLoad {
            primaries: 0,
            replicas: 3,
        },
    );
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.dropped_at.insert(node(3), world.now_ms - 300_000);
    assert_eq!(
        world.cure(&partition),
        act(CureAction::AddSecondary(node(5))),
        "fewest replicas of the table"
    );
}

#[test]
fn the_dropped_node_is_taken_back_as_soon_as_it_returns() {
    let mut world = World::new(&[1, 2, 3, 4]);
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.dropped_at.insert(node(3), world.now_ms - 1_000);
    world.alive_since.insert(node(3), world.now_ms - 500);
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(3))));
}

#[test]
fn a_node_dropped_for_failing_is_not_taken_back_before_it_shows_it_is_alive() {
    // The primary dropped it; the failure detector has not declared it dead (yet).
    let mut world = World::new(&[1, 2, 3, 4]);
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.alive_since.insert(node(3), world.now_ms - 60_000);
    world.dropped_at.insert(node(3), world.now_ms - 1_000);
    let outcome = world.cure(&partition);
    assert!(waits(&outcome, "waiting"), "neither it nor another node yet");
    assert_eq!(
        wait_ends(&outcome),
        Some(world.now_ms + 9_000),
        "the cure looks again when it may be taken back, long before the delay ends"
    );
    world.dropped_at.insert(node(3), world.now_ms - 10_000);
    assert_eq!(
        world.cure(&partition),
        act(CureAction::AddSecondary(node(3))),
        "alive a whole grace period since"
    );
}

#[test]
fn waiting_for_nothing_in_particular_has_no_end() {
    let world = World::new(&[1, 2]);
    let outcome = world.cure(&config(Some(1), &[2]));
    assert!(waits(&outcome, "no node can take another secondary"));
    assert_eq!(wait_ends(&outcome), None, "only a node event can change it");
}

#[test]
fn a_dropped_node_that_is_the_only_candidate_is_awaited_until_it_has_shown_it_is_alive() {
    let mut world = World::new(&[1, 2, 3]);
    world.knobs.assign_delay_ms = 0;
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.alive_since.insert(node(3), world.now_ms - 60_000);
    world.dropped_at.insert(node(3), world.now_ms - 4_000);
    let outcome = world.cure(&partition);
    assert!(waits(&outcome, "no node can take another secondary"));
    assert_eq!(wait_ends(&outcome), Some(world.now_ms + 6_000));
}

#[test]
fn an_unwritable_partition_does_not_wait() {
    let mut world = World::new(&[1, 4]);
    let mut partition = config(Some(1), &[]);
    partition.last_drops = vec![node(2), node(3)];
    world.dropped_at.insert(node(3), world.now_ms);
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(4))));
}

#[test]
fn a_black_listed_node_never_receives_a_secondary() {
    let mut world = World::new(&[1, 2, 3, 4]);
    world.knobs.black_list.insert(node(3));
    world.knobs.black_list.insert(node(4));
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.dropped_at.insert(node(3), world.now_ms);
    // The dropped node is black-listed: no waiting, but no other node may take it either.
    assert!(waits(&world.cure(&partition), "no node can take another secondary"));
    world.alive.insert(node(5));
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(5))));
}

#[test]
fn too_many_secondaries_removes_the_busiest() {
    let mut world = World::new(&[1, 2, 3, 4]);
    world.load(3, 0, 20);
    world.load(2, 0, 5);
    world.load(4, 0, 5);
    assert_eq!(
        world.cure(&config(Some(1), &[2, 3, 4])),
        act(CureAction::RemoveSecondary(node(3)))
    );
}

#[test]
fn flow_control_limits_adds_per_receiving_node() {
    let mut world = World::new(&[1, 2, 4, 5]);
    world.knobs.max_adds_per_node = 1;
    world.adds_per_node.insert(node(4), 1);
    let partition = config(Some(1), &[2]);
    assert_eq!(
        world.cure(&partition),
        act(CureAction::AddSecondary(node(5))),
        "node 4 is busy"
    );
    world.adds_per_node.insert(node(5), 1);
    assert!(waits(&world.cure(&partition), "no node can take"));
    world.knobs.flow_control = false;
    assert!(matches!(
        world.cure(&partition),
        CureOutcome::Act(CureAction::AddSecondary(_))
    ));
    world.knobs.flow_control = true;
    world.knobs.max_adds_per_node = 0;
    assert!(waits(&world.cure(&partition), "stopped"));
}

#[test]
fn one_add_at_a_time_per_partition() {
    let mut world = World::new(&[1, 2, 4]);
    world.adding = Some(node(4));
    assert!(waits(
        &world.cure(&config(Some(1), &[2])),
        "adding a secondary on 127.0.0.1:34804"
    ));
}

#[test]
fn every_change_raises_the_ballot_by_one_and_remembers_drops() {
    let before = config(Some(1), &[2, 3]);
    let promoted = apply_action(&before, CureAction::UpgradeToPrimary(node(2))).unwrap();
    assert_eq!((promoted.ballot, promoted.primary), (6, Some(node(2))));
    assert_eq!(promoted.secondaries, vec![node(3)]);
    assert_eq!(promoted.last_drops, vec![node(1)]);
    let removed = apply_action(&promoted, CureAction::RemoveSecondary(node(3))).unwrap();
    assert_eq!((removed.ballot, removed.secondaries.len()), (7, 0));
    assert_eq!(removed.last_drops, vec![node(1), node(3)]);
    let upgraded = upgrade_learner(&removed, node(3));
    assert_eq!((upgraded.ballot, upgraded.secondaries.clone()), (8, vec![node(3)]));
    assert_eq!(
        upgraded.last_drops,
        vec![node(1)],
        "a member is no longer a former replica"
    );
    assert_eq!(apply_action(&upgraded, CureAction::AddSecondary(node(4))), None);
}

#[test]
fn last_drops_stay_bounded() {
    let mut partition = config(Some(1), &[]);
    for i in 2..8 {
        partition.secondaries = vec![node(i)];
        partition = apply_action(&partition, CureAction::RemoveSecondary(node(i))).unwrap();
    }
    assert_eq!(partition.last_drops, vec![node(5), node(6), node(7)]);
}

#[test]
fn a_replica_dropped_by_a_node_in_maintenance_waits_for_it_past_the_delay() {
    let mut world = World::new(&[1, 2, 4]);
    world.knobs.assign_delay_ms = 0;
    world.maintenance.insert(node(3));
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(3)];
    world.alive_since.insert(node(3), world.now_ms - 950_000);
    world.dropped_at.insert(node(3), world.now_ms - 900_000);
    // Down (or not restarted yet): nothing is copied to node 4, however long ago it dropped.
    assert!(waits(&world.cure(&partition), "in maintenance"));
    world.alive.insert(node(3));
    assert!(
        waits(&world.cure(&partition), "in maintenance"),
        "alive but not restarted since it dropped (between downgrade_node and the restart)"
    );
    // Restarted: it takes its replica back.
    world.alive_since.insert(node(3), world.now_ms - 1_000);
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(3))));
}

#[test]
fn a_node_in_maintenance_receives_no_new_replica() {
    let mut world = World::new(&[1, 2, 3, 4]);
    world.knobs.assign_delay_ms = 0;
    world.maintenance.insert(node(3));
    let mut partition = config(Some(1), &[2]);
    partition.last_drops = vec![node(5)];
    world.dropped_at.insert(node(5), 0);
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(4))));
    world.alive.remove(&node(4));
    assert!(waits(&world.cure(&partition), "no node can take another secondary"));
}

#[test]
fn a_primary_left_alone_does_not_wait_for_a_node_in_maintenance() {
    let mut world = World::new(&[1, 4]);
    world.maintenance.insert(node(3));
    let mut partition = config(Some(1), &[]);
    partition.last_drops = vec![node(2), node(3)];
    world.dropped_at.insert(node(3), world.now_ms);
    assert_eq!(world.cure(&partition), act(CureAction::AddSecondary(node(4))));
}
