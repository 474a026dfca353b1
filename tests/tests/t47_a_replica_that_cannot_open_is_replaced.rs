//! t47: a replica whose mutation log is corrupt in the middle (valid records after the bad one:
//! not a torn tail) refuses to open when its server restarts. The server reports it to the meta
//! in its config sync, and the cure replaces it elsewhere instead of keeping a node that cannot
//! serve the partition (before this issue, the failure was only logged, and the meta kept sending
//! requests to a replica that was not there). Every acknowledged write stays readable.

use aerie_common::partition_index;
use aerie_tests::nemesis::fault_settings;
use aerie_tests::{assert_replicas_identical, wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions};
use std::time::Duration;

const PARTITIONS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_a_corrupt_log_is_reported_and_replaced() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: fault_settings(),
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(60)).await;
    client.create_table("t", PARTITIONS, 3).await.unwrap();
    wait_fully_healthy(&client, "t", Duration::from_secs(60)).await;
    let table = client.table("t").await.unwrap();
    let keys: Vec<String> = (0..2_000)
        .map(|i| format!("k{i}"))
        .filter(|k| partition_index(k.as_bytes(), b"s", PARTITIONS) == 0)
        .take(200)
        .collect();
    for key in &keys {
        table.set(key.as_bytes(), b"s", key.as_bytes(), 0).await.unwrap();
    }
    let app = client.query_config("t").await.unwrap();
    let victim_addr = app.partitions[0].secondaries[0];
    let victim = cluster.replica_addrs.iter().position(|a| *a == victim_addr).unwrap();

    // A bit flips in the middle of the replica's log while its server is down.
    cluster.replicas[victim]
        .terminate(Duration::from_secs(30))
        .expect("a clean stop");
    let segment = cluster
        .data_dir()
        .join(format!("replica{victim}/replica/1.0/plog/log.00000001"));
    let mut bytes = std::fs::read(&segment).expect("the log segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();
    cluster.replicas[victim].restart();

    // The meta takes it out of partition 1.0 and the cure adds a replica elsewhere.
    wait_until("the broken replica to be replaced", Duration::from_secs(90), || async {
        let app = client.query_config("t").await.map_err(|e| e.to_string())?;
        let p = &app.partitions[0];
        if !p.is_member(victim_addr) && p.secondaries.len() == 2 && p.primary.is_some() {
            Ok(())
        } else {
            Err(format!("partition 1.0 is {p:?}"))
        }
    })
    .await;
    let app = wait_fully_healthy(&client, "t", Duration::from_secs(90)).await;
    for key in &keys {
        assert_eq!(
            table.get(key.as_bytes(), b"s").await.unwrap(),
            Some(key.as_bytes().to_vec()),
            "{key}"
        );
    }
    assert_replicas_identical(&client, &app).await;
    let victim_log = cluster.replicas[victim].log_tail(400);
    assert!(
        victim_log.contains("not a torn tail") && victim_log.contains("the meta is told"),
        "{victim_log}"
    );
    let meta_log = cluster.metas[0].log_tail(400);
    assert!(meta_log.contains("replica out of service"), "{meta_log}");
    // The other partitions on the victim are unaffected.
    assert!(app.partitions[1..].iter().any(|p| p.is_member(victim_addr)));
}
