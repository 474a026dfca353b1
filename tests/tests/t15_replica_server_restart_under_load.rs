//! A replica server dies by SIGKILL while clients write, and comes back. Without failure detection
//! (a later step) writes to its partitions wait for it; once it is back every partition takes
//! writes again, every write a client saw acknowledged is readable, and the replicas agree.

use aerie_client::Table;
use aerie_tests::{assert_replicas_identical, wait_until, ProcessCluster, ProcessClusterOptions};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WRITERS: u64 = 8;

/// Writes unique keys until told to stop; returns the ones acknowledged.
async fn writer(table: Table, id: u64, stop: Arc<AtomicBool>, acked_count: Arc<AtomicU64>) -> BTreeSet<u64> {
    let mut acked = BTreeSet::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let seq = n * WRITERS + id;
        n += 1;
        if table
            .set(format!("k{seq}").as_bytes(), b"s", seq.to_string().as_bytes(), 0)
            .await
            .is_ok()
        {
            acked.insert(seq);
            acked_count.fetch_add(1, Ordering::Relaxed);
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_replica_server_crash() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("crash", 8, 3).await.unwrap();

    // Short per-call timeouts, so writers notice the outage and keep trying new keys.
    let client = cluster.client(Duration::from_secs(2));
    let table = client.table("crash").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(table.clone(), id, stop.clone(), acked_count.clone())))
        .collect();

    let progress = |min: u64| {
        let acked_count = acked_count.clone();
        async move {
            let now = acked_count.load(Ordering::Relaxed);
            if now >= min {
                Ok(now)
            } else {
                Err(format!("{now} writes acknowledged"))
            }
        }
    };
    let before = wait_until("writes before the crash", Duration::from_secs(30), || progress(500)).await;

    cluster.replicas[0].kill();
    let at_kill = acked_count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = acked_count.load(Ordering::Relaxed);
    // Every partition has a replica on the dead server, and a write needs all of its replicas:
    // at most the writes already in flight when it died can still be acknowledged.
    assert!(
        during - at_kill <= WRITERS,
        "{} writes acknowledged while a replica was down",
        during - at_kill
    );
    cluster.replicas[0].restart();

    // Every partition takes writes again once the server is back.
    let target = during + 1_000;
    wait_until("writes to resume after the restart", Duration::from_secs(60), || {
        progress(target)
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    for handle in writers {
        acked.extend(handle.await.unwrap());
    }
    assert!(acked.len() as u64 > before, "writes went on after the restart");

    let reader = cluster.client(Duration::from_secs(20));
    let table = reader.table("crash").await.unwrap();
    let mut lost = Vec::new();
    for seq in &acked {
        match table.get(format!("k{seq}").as_bytes(), b"s").await {
            Ok(Some(value)) if value == seq.to_string().as_bytes() => {}
            other => lost.push(format!("k{seq}: {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );

    let app = reader.query_config("crash").await.unwrap();
    let records = assert_replicas_identical(&reader, &app).await;
    assert!(
        records >= acked.len() as u64,
        "{records} records, {} acknowledged",
        acked.len()
    );
}
