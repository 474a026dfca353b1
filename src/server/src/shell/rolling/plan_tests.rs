use super::*;
use aerie_common::Gpid;
use aerie_proto::meta::{AppInfo, AppStatus, PartitionConfig};

fn addr(port: u16) -> NodeAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn replica(port: u16) -> Target {
    Target {
        role: Role::Replica,
        addr: addr(port),
    }
}

fn node(port: u16, status: NodeStatus) -> NodeInfo {
    NodeInfo {
        address: addr(port),
        status,
        primary_count: 0,
        secondary_count: 0,
        maintenance_until_secs: None,
    }
}

fn table(name: &str, replicas: u32, members: &[&[u16]]) -> AppState {
    AppState {
        info: AppInfo {
            app_id: 1,
            app_name: name.to_string(),
            status: AppStatus::Available,
            partition_count: members.len() as u32,
            max_replica_count: replicas,
            create_time_secs: 0,
            drop_time_secs: None,
            envs: Default::default(),
        },
        partitions: members
            .iter()
            .enumerate()
            .map(|(i, m)| PartitionConfig {
                primary: m.first().map(|p| addr(*p)),
                secondaries: m.iter().skip(1).map(|p| addr(*p)).collect(),
                ..PartitionConfig::empty(
                    Gpid {
                        app_id: 1,
                        pidx: i as u32,
                    },
                    replicas,
                )
            })
            .collect(),
    }
}

fn state<'a>(tables: &'a [AppState], nodes: &'a [NodeInfo]) -> ClusterState<'a> {
    ClusterState {
        tables,
        nodes,
        effective_level: MetaLevel::Steady,
        moves_in_progress: 0,
    }
}

#[test]
fn the_template_fills_in_host_port_address_and_role() {
    let target = replica(34801);
    assert_eq!(
        expand("ssh %h sudo systemctl restart aerie-%r@%p", target).unwrap(),
        "ssh 127.0.0.1 sudo systemctl restart aerie-replica@34801"
    );
    assert_eq!(
        expand("restart %a 100%%", target).unwrap(),
        "restart 127.0.0.1:34801 100%"
    );
    let err = expand("restart %x", target).unwrap_err();
    assert!(err.contains("unknown placeholder %x"), "{err}");
    assert!(expand("restart %", target).unwrap_err().contains("lone %"));
}

#[test]
fn replica_servers_go_first_then_the_standby_metas_then_the_leader_then_the_collector() {
    let order = order(
        &[addr(11), addr(12)],
        &[addr(1), addr(2), addr(3)],
        Some(addr(1)),
        Some(addr(9)),
    );
    let names: Vec<String> = order.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        names,
        [
            "replica 127.0.0.1:11",
            "replica 127.0.0.1:12",
            "meta 127.0.0.1:2",
            "meta 127.0.0.1:3",
            "meta 127.0.0.1:1",
            "collector 127.0.0.1:9"
        ]
    );
}

#[test]
fn progress_resumes_after_the_last_step_done_and_survives_its_file() {
    let mut progress = Progress {
        level_before: Some(MetaLevel::Lively),
        ..Default::default()
    };
    assert_eq!(progress.next_step(replica(11)), Some(Step::MaintenanceOn));
    progress.done.insert(replica(11), Step::Done);
    progress.done.insert(replica(12), Step::Closed);
    assert_eq!(progress.next_step(replica(11)), None);
    assert_eq!(progress.next_step(replica(12)), Some(Step::Restarted));
    assert_eq!(progress.unfinished(), vec![(replica(12), Step::Closed)]);
    let meta = Target {
        role: Role::Meta,
        addr: addr(1),
    };
    assert_eq!(progress.next_step(meta), Some(Step::Restarted));

    let read = Progress::parse(&progress.to_text()).unwrap();
    assert_eq!(read, progress);
    let err = Progress::parse("replica 127.0.0.1:11 rebooted\n").unwrap_err();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn a_healthy_cluster_passes_the_pre_flight() {
    let tables = [table("t", 3, &[&[1, 2, 3], &[2, 3, 4]])];
    let nodes: Vec<NodeInfo> = (1..=4).map(|p| node(p, NodeStatus::Alive)).collect();
    assert!(preflight(&state(&tables, &nodes), &[addr(1), addr(2)], None).is_empty());
}

#[test]
fn the_pre_flight_names_every_reason_to_refuse() {
    let tables = [table("t", 3, &[&[1, 2, 3], &[2, 3]]), table("one", 1, &[&[1]])];
    let mut nodes: Vec<NodeInfo> = (1..=3).map(|p| node(p, NodeStatus::Alive)).collect();
    nodes.push(node(4, NodeStatus::Unalive));
    nodes[1].maintenance_until_secs = Some(1);
    let mut cluster = state(&tables, &nodes);
    cluster.moves_in_progress = 2;
    cluster.effective_level = MetaLevel::Freezed;
    let problems = preflight(&cluster, &[addr(1), addr(5)], None).join("\n");
    for expected in [
        "127.0.0.1:5 is not a replica server",
        "127.0.0.1:4 is UNALIVE",
        "127.0.0.1:2 is in maintenance already",
        "table one keeps 1 replica(s) per partition",
        "table t: 1 of 2 partitions not fully healthy: 1.1 (2 of 3 replicas)",
        "meta level in force is fl_freezed",
        "2 move(s) under way",
    ] {
        assert!(problems.contains(expected), "missing {expected:?} in:\n{problems}");
    }
}

#[test]
fn the_node_an_interrupted_run_left_may_be_down_in_maintenance_and_missing_from_partitions() {
    let tables = [table("t", 3, &[&[2, 3], &[2, 3, 4]])];
    let mut nodes: Vec<NodeInfo> = (1..=4).map(|p| node(p, NodeStatus::Alive)).collect();
    nodes[0].status = NodeStatus::Unalive;
    nodes[0].maintenance_until_secs = Some(1);
    assert!(preflight(&state(&tables, &nodes), &[addr(1), addr(2)], Some(addr(1))).is_empty());
    // Without the exemption the same cluster is refused.
    assert_eq!(preflight(&state(&tables, &nodes), &[addr(1), addr(2)], None).len(), 3);
}
