//! ZooKeeper goes down for a while under client load. The meta keeps answering beacons and queries
//! but changes nothing: `cluster_info` and the log say why, `create` is refused with a clear error,
//! and clients go on reading and writing. Then a replica server dies, still during the outage: the
//! meta sees it dead but cannot record a cure, so the configurations keep naming it (writes to its
//! partitions wait, as they need a new configuration). When ZooKeeper comes back, the meta carries
//! out the postponed cure and every acknowledged write is readable.

use aerie_proto::meta::{NodeStatus, PartitionHealth};
use aerie_tests::{
    assert_acked_readable, fast_failure_detection, wait_fully_healthy, wait_until, zookeeper_settings, ProcessCluster,
    ProcessClusterOptions, TestZookeeper, WriteLoad,
};
use std::time::Duration;

/// Long enough that the outage below does not make the leader give up (80% of it).
const SESSION_TIMEOUT_MS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_waits_out_a_zookeeper_outage_and_clients_go_on() {
    let zk = TestZookeeper::start();
    let mut settings = fast_failure_detection(&[
        "meta_server.lb_interval_ms=500",
        "meta_server.replica_assign_delay_ms_for_dropouts=1000",
    ]);
    settings.extend(zookeeper_settings(&zk.hosts(), "/aerie/t28", SESSION_TIMEOUT_MS));
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings,
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("outage", 8, 3).await.unwrap();
    let before = wait_fully_healthy(&admin, "outage", Duration::from_secs(60)).await;
    let client = cluster.client(Duration::from_secs(5));
    let load = WriteLoad::start(client.table("outage").await.unwrap(), 4);
    load.wait_for_more("writes before the outage", 200, Duration::from_secs(30))
        .await;

    zk.stop();
    let status = wait_until("cluster_info to report the outage", Duration::from_secs(10), || async {
        let info = admin.cluster_info().await.map_err(|e| e.to_string())?;
        if info.meta_store_status.contains("unreachable") {
            Ok(info.meta_store_status)
        } else {
            Err(format!("meta_store_status: {}", info.meta_store_status))
        }
    })
    .await;
    assert!(status.contains(&zk.hosts()), "{status}");
    let refused = admin.create_table("during", 4, 3).await.unwrap_err();
    assert!(refused.to_string().contains("ZooKeeper"), "{refused}");
    load.wait_for_more("writes during the outage", 300, Duration::from_secs(15))
        .await;
    let table = client.table("outage").await.unwrap();
    for i in 0..20u64 {
        table.get(format!("k{i}").as_bytes(), b"").await.unwrap();
    }

    let victim_index = 0;
    let victim = cluster.replica_addrs[victim_index];
    cluster.replicas[victim_index].kill();

    // The meta sees the node die but cannot record the cure: the configurations still name it.
    wait_until("the killed node to be UNALIVE", Duration::from_secs(15), || async {
        let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
        match nodes.iter().find(|n| n.address == victim) {
            Some(n) if n.status == NodeStatus::Unalive => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let during = admin.query_config("outage").await.unwrap();
    let named = |app: &aerie_proto::meta::AppState| {
        app.partitions
            .iter()
            .filter(|p| p.members().any(|m| m == victim))
            .count()
    };
    assert_eq!(
        named(&during),
        named(&before),
        "a configuration changed while ZooKeeper was down"
    );
    assert!(named(&during) > 0);
    let log = cluster.metas[0].log_tail(400);
    assert!(log.contains("ZooKeeper connection lost"), "{log}");
    assert!(log.contains("meta store write failed"), "{log}");

    zk.start_again();
    let after = wait_until("the cure to drop the dead node", Duration::from_secs(60), || async {
        let app = admin.query_config("outage").await.map_err(|e| e.to_string())?;
        let healthy = app
            .partitions
            .iter()
            .all(|p| p.health() == PartitionHealth::FullyHealthy);
        if named(&app) == 0 && healthy {
            Ok(app)
        } else {
            Err(format!(
                "{} partitions still name {victim}; all healthy: {healthy}",
                named(&app)
            ))
        }
    })
    .await;
    assert!(after.partitions.iter().all(|p| p.ballot > 0));
    let info = admin.cluster_info().await.unwrap();
    assert_eq!(info.meta_store_status, "ok");
    admin.create_table("after", 4, 3).await.unwrap();
    load.wait_for_more("writes after the outage", 200, Duration::from_secs(30))
        .await;
    let acked = load.stop().await;
    assert_acked_readable(&client.table("outage").await.unwrap(), &acked).await;
}
