//! Every process SIGKILLed in the middle of group commits that carry many partitions' writes: one
//! meta and three replica servers, a table of 32 partitions (each server holds a replica of all 32,
//! all sharing its data dir's group-commit stream), 64 writers of unique keys. After the restart every
//! acknowledged write is readable, and every partition's replicas hold identical data. The writers'
//! calls end within their timeout while the cluster is down.

use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, wait_fully_healthy, ProcessCluster, ProcessClusterOptions,
    WriteLoad,
};
use std::time::Duration;

const PARTITIONS: u32 = 32;
const WRITERS: u64 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_sigkill_mid_group_commit() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    let created = client.create_table("t48", PARTITIONS, 3).await.unwrap();
    assert_eq!(created.ready_partitions, PARTITIONS);

    // A short client timeout, so that the writers notice the crash and stop soon after it.
    let writers = cluster.client(Duration::from_secs(2));
    let load = WriteLoad::start(writers.table("t48").await.unwrap(), WRITERS);
    load.wait_for_more("writes on every partition", 3_000, Duration::from_secs(120))
        .await;
    // The writers are still writing: the kill lands in the middle of group commits.
    cluster.kill_all();
    // Each write ends within its 2 s timeout even with every server dead, routing refresh
    // included (it once queued every writer behind one another's 10 s meta timeouts: minutes).
    let acked = tokio::time::timeout(Duration::from_secs(60), load.stop())
        .await
        .expect("writers against a dead cluster end within their call timeout");
    assert!(acked.len() >= 3_000, "{} writes acknowledged", acked.len());

    cluster.restart_all();
    let client = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&client, Duration::from_secs(60)).await;
    let app = wait_fully_healthy(&client, "t48", Duration::from_secs(120)).await;
    let table = client.table("t48").await.unwrap();
    assert_acked_readable(&table, &acked).await;
    let records = assert_replicas_identical(&client, &app).await;
    assert!(
        records >= acked.len() as u64,
        "{records} records for {} acknowledged writes",
        acked.len()
    );
}
