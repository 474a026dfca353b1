//! A replica server in maintenance, as a rolling update uses it: new tables leave it out; after
//! it is drained and stopped its partitions wait for it with two replicas instead of copying a
//! third elsewhere, past the assign delay that the cure honours for every other partition (the
//! control); restarted, it takes its replicas back; `node_maintenance --off` ends it. No write
//! fails throughout, and the replicas end identical.

use aerie_common::Gpid;
use aerie_proto::meta::{AppState, NodeStatus};
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, fast_failure_detection, wait_fully_healthy, wait_until,
    ProcessCluster, ProcessClusterOptions, WriteLoad,
};
use std::time::Duration;

async fn map(cluster: &ProcessCluster, table: &str) -> AppState {
    cluster
        .client(Duration::from_secs(10))
        .query_config(table)
        .await
        .unwrap()
}

fn ok(cluster: &ProcessCluster, command: &str) -> String {
    let out = cluster.shell_exec(command);
    assert!(out.success, "{command}: {out:?}\n{}", cluster.logs(30));
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_in_maintenance_gets_its_replicas_back_instead_of_having_them_copied() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: fast_failure_detection(&[
            "meta_server.replica_assign_delay_ms_for_dropouts=1000",
            "meta_server.lb_interval_ms=500",
        ]),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("data", 8, 3).await.unwrap();
    wait_fully_healthy(&admin, "data", Duration::from_secs(60)).await;
    let node = cluster.replica_addrs[0];

    let out = ok(&cluster, &format!("node_maintenance -n {node} --on --seconds 600"));
    assert!(out.contains("is in maintenance for the next"), "{out}");
    let listed = ok(&cluster, "nodes -d");
    let row = listed.lines().find(|l| l.contains(&node.to_string())).unwrap();
    assert!(row.contains("left"), "nodes -d shows the maintenance: {listed}");
    let refused = cluster.shell_exec("node_maintenance -n 127.0.0.1:1 --on");
    assert!(
        !refused.success && refused.stderr.contains("not a replica server"),
        "{refused:?}"
    );

    // A new table leaves the node out.
    admin.create_table("control", 4, 3).await.unwrap();
    let control = wait_fully_healthy(&admin, "control", Duration::from_secs(60)).await;
    assert!(control.partitions.iter().all(|c| !c.is_member(node)), "{control:?}");

    let held: Vec<Gpid> = map(&cluster, "data")
        .await
        .partitions
        .iter()
        .filter(|c| c.is_member(node))
        .map(|c| c.gpid)
        .collect();
    assert!(!held.is_empty());
    let load = WriteLoad::start(cluster.client(Duration::from_secs(30)).table("data").await.unwrap(), 4);
    load.wait_for_more("writes before the drain", 200, Duration::from_secs(60))
        .await;
    ok(&cluster, &format!("migrate_node -n {node}"));
    ok(&cluster, &format!("downgrade_node -n {node}"));
    ok(&cluster, &format!("remote_command -l {node} replica.kill_partition"));
    cluster.replicas[0].kill();
    wait_until("the meta to see the node gone", Duration::from_secs(60), || async {
        let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
        match nodes.iter().find(|n| n.address == node) {
            Some(n) if n.status == NodeStatus::Unalive => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The control: a secondary of a partition the node is not in drops out; the cure puts it back
    // after the assign delay, which the node's partitions are past by then too.
    let partition = &control.partitions[0];
    let (primary, dropped) = (partition.primary.unwrap(), partition.secondaries[0]);
    ok(
        &cluster,
        &format!(
            "propose -g {} -p DOWNGRADE_TO_INACTIVE -t {primary} -n {dropped}",
            partition.gpid
        ),
    );
    wait_until("the control partition to be cured", Duration::from_secs(60), || async {
        let config = map(&cluster, "control").await.partitions[0].clone();
        if config.ballot > partition.ballot + 1 && config.replica_count() == 3 {
            Ok(())
        } else {
            Err(format!("{config:?}"))
        }
    })
    .await;
    let data = map(&cluster, "data").await;
    for config in data.partitions.iter().filter(|c| held.contains(&c.gpid)) {
        assert_eq!(
            config.replica_count(),
            2,
            "{} waits for the node in maintenance instead of copying a replica elsewhere: {config:?}",
            config.gpid
        );
    }

    // Restarted, it takes its replicas back.
    cluster.replicas[0].restart();
    let data = wait_fully_healthy(&admin, "data", Duration::from_secs(120)).await;
    for gpid in &held {
        let config = &data.partitions[gpid.pidx as usize];
        assert!(config.is_member(node), "{gpid} went back to {node}: {config:?}");
    }
    let out = ok(&cluster, &format!("node_maintenance -n {node} --off"));
    assert!(out.contains("out of maintenance"), "{out}");
    let listed = ok(&cluster, "nodes -d");
    let row = listed.lines().find(|l| l.contains(&node.to_string())).unwrap();
    assert!(!row.contains("left"), "{listed}");

    let failed = load.failed();
    let acked = load.stop().await;
    assert_eq!(failed, 0, "writes failed while the node was away");
    let table = cluster.client(Duration::from_secs(30)).table("data").await.unwrap();
    assert_acked_readable(&table, &acked).await;
    assert_replicas_identical(&admin, &data).await;
}
