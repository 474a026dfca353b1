//! t42: three times over, the replica server holding the most primaries is stopped with SIGSTOP
//! for at least 8 s (lease 3 s, grace 5 s) while clients read, write and check-and-set, then
//! resumed. The meta hands its roles to others while it sleeps; clients that were idle wake while
//! it still sleeps, with routing that still names it, and their requests wait in its sockets. When
//! it wakes it must not serve a single one of them from its old role (before this issue, reads it
//! served right after SIGCONT returned values overwritten 2 s earlier through the new primary).
//! Every key's history is linearizable and the replicas end identical.

use aerie_tests::nemesis::{Fault, FaultCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_past_its_grace_period_serves_nothing_stale_when_it_resumes() {
    let mut faults = FaultCluster::with_replica_servers(4).await;
    let load = faults.load(6).await;
    for _ in 0..3 {
        load.wait_for_more(500, Duration::from_secs(60)).await;
        // The sleeping clients wake while it is stopped, with routing that still names it.
        eprintln!("{}", faults.inject(Fault::Stop, &load).await);
    }
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("SIGSTOP 8 s of the busiest replica server, three times")
    );
}
