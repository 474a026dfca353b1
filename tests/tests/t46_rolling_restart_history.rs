//! t46: every replica server in turn is stopped cleanly (SIGTERM: logs synced, memtables flushed)
//! and started again while clients read, write and check-and-set; the next one goes once the table
//! is fully healthy again. Every key's history is linearizable and the replicas end identical.

use aerie_tests::nemesis::{Fault, FaultCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_keeps_every_history_linearizable() {
    let mut faults = FaultCluster::with_replica_servers(3).await;
    let load = faults.load(6).await;
    load.wait_for_more(500, Duration::from_secs(60)).await;
    eprintln!("{}", faults.inject(Fault::RollingRestart, &load).await);
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("a rolling restart of every replica server")
    );
}
