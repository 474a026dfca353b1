//! t44: nftables cuts the replica server holding the most primaries off from the other replica
//! servers, but not from the meta, so it keeps its lease. The primaries elsewhere cannot reach it
//! and ask the meta to remove it; their partitions go on with new secondaries. Its own primaries
//! cannot reach their secondaries either, remove one, and wait. When the links heal, everything
//! catches up. Every key's
//! history is linearizable and the replicas end identical.

use aerie_tests::nemesis::{Fault, FaultCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_from_its_peers_loses_its_replicas_and_nothing_else() {
    let mut faults = FaultCluster::with_replica_servers(4).await;
    let load = faults.load(6).await;
    load.wait_for_more(500, Duration::from_secs(60)).await;
    eprintln!("{}", faults.inject(Fault::CutFromPeers, &load).await);
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("the busiest replica server cut from its peers")
    );
}
