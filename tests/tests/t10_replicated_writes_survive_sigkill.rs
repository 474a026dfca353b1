//! The first real cluster, as a newcomer would try it: one meta and three replica servers as separate
//! processes; a table of 8 partitions; 10,000 writes through the client, every one read back; every
//! secondary holds exactly its primary's data; then every process dies by SIGKILL, everything
//! restarts, and all 10,000 records are still there.

use aerie_client::Table;
use aerie_tests::{assert_replicas_identical, ProcessCluster, ProcessClusterOptions};
use futures::{stream, StreamExt, TryStreamExt};
use std::time::Duration;

const RECORDS: usize = 10_000;
const CONCURRENCY: usize = 32;

fn key(i: usize) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat(i % 97)).into_bytes()
}

async fn write_all(table: &Table) {
    stream::iter(0..RECORDS)
        .map(|i| async move {
            table
                .set(&key(i), b"s", &value(i), 0)
                .await
                .map_err(|e| format!("set {i}: {e}"))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

async fn read_all(table: &Table) {
    let missing: Vec<String> = stream::iter(0..RECORDS)
        .map(|i| async move {
            match table.get(&key(i), b"s").await {
                Ok(Some(v)) if v == value(i) => None,
                Ok(other) => Some(format!(
                    "key {i}: got {:?}",
                    other.map(|v| String::from_utf8_lossy(&v).to_string())
                )),
                Err(e) => Some(format!("key {i}: {e}")),
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} records wrong, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_writes_survive_sigkill_of_every_process() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;

    let created = client.create_table("t10", 8, 3).await.unwrap();
    assert_eq!(
        created.ready_partitions, 8,
        "every partition confirmed by its three replicas"
    );
    let table = client.table("t10").await.unwrap();

    write_all(&table).await;
    read_all(&table).await;

    let app = client.query_config("t10").await.unwrap();
    assert!(
        app.partitions.iter().all(|p| p.replica_count() == 3),
        "every partition has three replicas"
    );
    let records = assert_replicas_identical(&client, &app).await;
    assert_eq!(records, RECORDS as u64, "the primaries hold every record exactly once");

    cluster.kill_all();
    cluster.restart_all();
    let client = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    let table = client.table("t10").await.unwrap();
    read_all(&table).await;

    // The cluster map came back too: same table, same placement.
    let reloaded = client.query_config("t10").await.unwrap();
    assert_eq!(reloaded.partitions, app.partitions);
}
