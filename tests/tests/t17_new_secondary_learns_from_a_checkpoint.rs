//! A secondary's server dies and stays down past the assign delay: a new secondary is created on a
//! fourth node. The primary's log no longer reaches back to the start (log GC ran) and its memory
//! holds only the latest mutations, so the new replica learns from a RocksDB checkpoint copied in
//! chunks, then from memory, while clients keep writing; it becomes a secondary, the table is fully
//! healthy, every acknowledged write is readable, and all replicas agree.

use aerie_tests::{
    assert_replicas_identical, fast_failure_detection, metrics, sample, wait_fully_healthy, wait_until, ProcessCluster,
    ProcessClusterOptions,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 2,000 bytes that do not compress (xorshift from the record's number).
fn value(i: u32) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (i as u64 + 1);
    (0..2_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn settings() -> Vec<String> {
    fast_failure_detection(&[
        // Small logs that are collected quickly, and a small memory of mutations.
        "replication.log_segment_size_mb=1",
        "replication.log_gc_threshold_mb=1",
        "replication.learn_cache_mutations=100",
        "meta_server.lb_interval_ms=500",
        "meta_server.replica_assign_delay_ms_for_dropouts=1000",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_secondary_learns_a_checkpoint_on_a_fourth_node_while_writes_go_on() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: settings(),
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("big", 1, 3).await.unwrap();
    let table = client.table("big").await.unwrap();

    // About 6 MB of incompressible values in one partition: several log segments, collected once
    // applied and flushed.
    for i in 0..3_000u32 {
        table
            .set(format!("k{i:05}").as_bytes(), b"s", &value(i), 0)
            .await
            .unwrap();
    }
    let app = client.query_config("big").await.unwrap();
    let partition = &app.partitions[0];
    let primary = partition.primary.unwrap();
    let primary_index = cluster.replica_addrs.iter().position(|a| *a == primary).unwrap();
    wait_until(
        "the primary to collect old log segments",
        Duration::from_secs(40),
        || async {
            if cluster.replicas[primary_index]
                .log_tail(400)
                .contains("removed mutation log segments")
            {
                Ok(())
            } else {
                Err("no log gc yet".to_string())
            }
        },
    )
    .await;

    // Writes go on while the replica is rebuilt.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (table, stop) = (table.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if table
                    .set(format!("w{i}").as_bytes(), b"s", i.to_string().as_bytes(), 0)
                    .await
                    .is_ok()
                {
                    acked.insert(i);
                }
                i += 1;
            }
            acked
        })
    };

    let victim = partition.secondaries[0];
    let victim_index = cluster.replica_addrs.iter().position(|a| *a == victim).unwrap();
    let fourth = *cluster
        .replica_addrs
        .iter()
        .find(|a| !partition.is_member(**a))
        .unwrap();
    cluster.replicas[victim_index].kill();

    wait_until(
        "the dead secondary to leave the configuration",
        Duration::from_secs(30),
        || async {
            let app = client.query_config("big").await.map_err(|e| e.to_string())?;
            if app.partitions[0].is_member(victim) {
                Err("still a member".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let healed = wait_fully_healthy(&client, "big", Duration::from_secs(90)).await;
    let members: BTreeSet<_> = healed.partitions[0].members().collect();
    assert!(members.contains(&fourth) && !members.contains(&victim), "{members:?}");
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(!acked.is_empty(), "writes went on during learning");

    let learned = metrics(fourth);
    let node = fourth.to_string();
    let rounds = sample(
        &learned,
        &format!("aerie_replica_learn_rounds_total{{node=\"{node}\",source=\"checkpoint\"}}"),
    );
    let bytes = sample(
        &learned,
        &format!("aerie_replica_learn_bytes_total{{node=\"{node}\",source=\"checkpoint\"}}"),
    );
    assert!(rounds >= 1.0, "the new replica learned from a checkpoint:\n{learned}");
    assert!(bytes > 1_000_000.0, "the checkpoint carried the data ({bytes} bytes)");

    for i in 0..3_000u32 {
        assert_eq!(
            table.get(format!("k{i:05}").as_bytes(), b"s").await.unwrap(),
            Some(value(i)),
            "k{i}"
        );
    }
    for i in &acked {
        assert_eq!(
            table.get(format!("w{i}").as_bytes(), b"s").await.unwrap(),
            Some(i.to_string().into_bytes())
        );
    }
    let records = assert_replicas_identical(&client, &healed).await;
    assert!(records >= 3_000 + acked.len() as u64);
}
