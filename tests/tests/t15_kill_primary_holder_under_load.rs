//! The replica server holding the most primaries dies by SIGKILL while clients write. Its partitions
//! fail over (secondaries promoted, it is removed where it was a secondary) and every partition takes
//! writes again while it is down; after the (test-shortened) assign delay new secondaries learn on
//! the other servers and the table is fully healthy again without it; every write a client saw
//! acknowledged is readable and the replicas agree.

use aerie_common::{partition_index, NodeAddr};
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, fast_failure_detection, wait_fully_healthy, ProcessCluster,
    ProcessClusterOptions, WriteLoad,
};
use std::time::Duration;

const WRITERS: u64 = 8;
const PARTITIONS: u32 = 8;

/// Short failure detection for the test: beacons every second, lease 3 s, grace 4 s.
fn settings() -> Vec<String> {
    fast_failure_detection(&[
        "meta_server.lb_interval_ms=500",
        "meta_server.replica_assign_delay_ms_for_dropouts=2000",
    ])
}

/// A hash key that lands in partition `pidx`.
fn key_in(pidx: u32) -> Vec<u8> {
    (0..)
        .map(|i| format!("probe{i}").into_bytes())
        .find(|k| partition_index(k, b"", PARTITIONS) == pidx)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_heals_itself_around_a_dead_primary_holder_and_loses_nothing() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: settings(),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("crash", PARTITIONS, 3).await.unwrap();

    let client = cluster.client(Duration::from_secs(2));
    let load = WriteLoad::start(client.table("crash").await.unwrap(), WRITERS);
    load.wait_for_more("writes before the crash", 500, Duration::from_secs(30))
        .await;

    // Kill the server that leads the most partitions.
    let app = admin.query_config("crash").await.unwrap();
    let victim_addr: NodeAddr = *cluster
        .replica_addrs
        .iter()
        .max_by_key(|n| app.partitions.iter().filter(|p| p.primary == Some(**n)).count())
        .unwrap();
    let victim = cluster.replica_addrs.iter().position(|a| *a == victim_addr).unwrap();
    cluster.replicas[victim].kill();

    // While it is down: writes go on, on every partition.
    load.wait_for_more(
        "writes to continue with a replica server down",
        1_000,
        Duration::from_secs(60),
    )
    .await;
    let probe = cluster.client(Duration::from_secs(20)).table("crash").await.unwrap();
    for pidx in 0..PARTITIONS {
        probe
            .set(&key_in(pidx), b"s", b"v", 0)
            .await
            .unwrap_or_else(|e| panic!("partition {pidx}: {e}"));
    }
    let during = admin.query_config("crash").await.unwrap();
    assert!(
        during
            .partitions
            .iter()
            .all(|p| p.primary.is_some() && p.primary != Some(victim_addr)),
        "every partition has a live primary: {:?}",
        during.partitions
    );

    // It stays down: the cure re-creates its replicas on the other servers, by learning.
    let healed = wait_fully_healthy(&admin, "crash", Duration::from_secs(90)).await;
    assert!(
        healed.partitions.iter().all(|p| !p.is_member(victim_addr)),
        "the dead server holds no replica any more"
    );
    load.wait_for_more("writes after healing", 200, Duration::from_secs(30))
        .await;
    let acked = load.stop().await;

    let reader = cluster.client(Duration::from_secs(20));
    let table = reader.table("crash").await.unwrap();
    assert_acked_readable(&table, &acked).await;

    let app = reader.query_config("crash").await.unwrap();
    let records = assert_replicas_identical(&reader, &app).await;
    assert!(
        records >= acked.len() as u64,
        "{records} records, {} acknowledged",
        acked.len()
    );
}
