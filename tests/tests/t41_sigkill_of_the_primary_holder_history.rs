//! t41: twice over, the replica server holding the most primaries dies by SIGKILL while clients
//! (half with a 1 s timeout, half with the default 10 s) read, write and check-and-set; it comes
//! back after its partitions have failed over. Writes that timed out while their primary died were
//! committed by the promoted secondaries: their retries must not apply them again (before this
//! issue, an overwritten value came back, and a check-and-set reported "not applied" for its own
//! write). Every key's history is linearizable and the replicas end identical.

use aerie_tests::nemesis::{fault_settings, Fault, FaultCluster};
use aerie_tests::ProcessClusterOptions;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_across_a_dead_primary_take_effect_once() {
    let mut faults = FaultCluster::start(
        ProcessClusterOptions {
            replica_servers: 4,
            // Log GC runs all the time (tiny segments, no threshold), racing with the applies: a
            // replica killed in between must still reopen (before this issue, GC could delete log
            // records of decrees only in the memtable, and the replica refused to open).
            settings: fault_settings()
                .into_iter()
                .chain([
                    "replication.log_segment_size_mb=1".to_string(),
                    "replication.log_gc_threshold_mb=0".to_string(),
                    "replication.log_gc_interval_ms=100".to_string(),
                ])
                .collect(),
            ..Default::default()
        },
        8,
    )
    .await;
    let load = faults.load(6).await;
    // Large values on other keys fill the logs, so that segments roll and GC deletes them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut filling = Vec::new();
    for task in 0..4u64 {
        let filler = faults.admin.table(&faults.table).await.unwrap();
        let stop = stop.clone();
        filling.push(tokio::spawn(async move {
            let value = vec![b'x'; 128 * 1024];
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("filler{task}-{}", n % 128);
                let _ = filler.set(key.as_bytes(), b"f", &value, 0).await;
            }
            n
        }));
    }
    for _ in 0..2 {
        load.wait_for_more(500, Duration::from_secs(60)).await;
        eprintln!("{}", faults.inject(Fault::Kill, &load).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut filled = 0;
    for task in filling {
        filled += task.await.unwrap();
    }
    assert!(filled > 100, "only {filled} large writes");
    let gc_runs: usize = faults
        .cluster
        .replicas
        .iter()
        .map(|r| r.log_tail(100_000).matches("removed mutation log segments").count())
        .sum();
    assert!(gc_runs > 0, "log GC never removed a segment");
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("SIGKILL of the busiest replica server, twice")
    );
}
