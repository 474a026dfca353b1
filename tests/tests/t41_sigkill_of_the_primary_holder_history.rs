//! t41: twice over, the replica server holding the most primaries dies by SIGKILL while clients
//! (half with a 1 s timeout, half with the default 10 s) read, write and check-and-set; it comes
//! back after its partitions have failed over. Writes that timed out while their primary died were
//! committed by the promoted secondaries: their retries must not apply them again (before this
//! issue, an overwritten value came back, and a check-and-set reported "not applied" for its own
//! write). Every key's history is linearizable and the replicas end identical.

use aerie_tests::nemesis::{fault_settings, FaultCluster};
use aerie_tests::{wait_fully_healthy, ProcessClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_across_a_dead_primary_take_effect_once() {
    let mut faults = FaultCluster::start(
        ProcessClusterOptions {
            replica_servers: 4,
            settings: fault_settings(),
            ..Default::default()
        },
        8,
    )
    .await;
    let load = faults.load(6).await;
    for _ in 0..2 {
        load.wait_for_more(500, Duration::from_secs(60)).await;
        let busiest = faults.busiest_replica().await;
        load.sleep();
        faults.cluster.replicas[busiest].kill();
        faults.wait_primaries_moved_off(busiest, Duration::from_secs(60)).await;
        load.wake();
        load.wait_for_more(1_000, Duration::from_secs(90)).await;
        faults.cluster.replicas[busiest].restart();
        wait_fully_healthy(&faults.admin, &faults.table, Duration::from_secs(120)).await;
    }
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("SIGKILL of the busiest replica server, twice")
    );
}
