//! A partition with a single replica loses it (DDD): the meta records which node held it last,
//! `ddd_diagnose` says it waits for that node, and when the node returns it becomes primary again
//! with all its data.

use aerie_common::partition_index;
use aerie_tests::{wait_fully_healthy, wait_healthy, wait_until, ProcessCluster, ProcessClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_partition_waits_for_its_last_replica_and_takes_it_back() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 3,
        settings: vec![
            "replication.fd_beacon_interval_seconds=1".into(),
            "replication.fd_lease_seconds=3".into(),
            "replication.fd_grace_seconds=4".into(),
            "replication.mutation_2pc_min_replica_count=1".into(),
            "meta_server.lb_interval_ms=300".into(),
        ],
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("one", 2, 1).await.unwrap();
    let table = client.table("one").await.unwrap();
    let keys: Vec<String> = (0..200)
        .map(|i| format!("k{i}"))
        .filter(|k| partition_index(k.as_bytes(), b"", 2) == 0)
        .collect();
    for key in &keys {
        table.set(key.as_bytes(), b"s", b"v", 0).await.unwrap();
    }
    let app = client.query_config("one").await.unwrap();
    let holder = app.partitions[0].primary.unwrap();
    let index = cluster.replica_addrs.iter().position(|a| *a == holder).unwrap();

    cluster.replicas[index].kill();
    let ddd = wait_until("partition 0 to be dead", Duration::from_secs(30), || async {
        let dead = client.ddd_diagnose(None).await.map_err(|e| e.to_string())?;
        if dead.iter().any(|p| p.gpid.pidx == 0) {
            Ok(dead)
        } else {
            Err("not dead yet".to_string())
        }
    })
    .await;
    let dead = ddd.iter().find(|p| p.gpid.pidx == 0).unwrap();
    assert_eq!(dead.dropped.len(), 1);
    assert_eq!((dead.dropped[0].node, dead.dropped[0].alive), (holder, false));
    assert!(dead.state.contains("waiting for its last replica"), "{}", dead.state);
    let shell = cluster.shell_exec("ddd_diagnose");
    assert!(shell.stdout.contains("ddd_partition_count : 1"), "{}", shell.stdout);

    cluster.replicas[index].restart();
    wait_healthy(holder, Duration::from_secs(30)).await;
    let back = wait_fully_healthy(&client, "one", Duration::from_secs(30)).await;
    assert_eq!(
        back.partitions[0].primary,
        Some(holder),
        "the last replica is primary again"
    );
    for key in &keys {
        assert_eq!(
            table.get(key.as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec()),
            "{key}"
        );
    }
}
