//! t43: nftables cuts the replica server holding the most primaries off from the meta, but not
//! from its peers, for longer than the grace period. Its lease runs out and it stops serving while
//! its peers still talk to it; the meta moves its roles; when the link heals it syncs and comes
//! back in whatever role the meta gives it. Every key's history is linearizable and the replicas
//! end identical.

use aerie_tests::nemesis::{Fault, FaultCluster};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_from_the_meta_stops_serving_and_comes_back_consistent() {
    let mut faults = FaultCluster::with_replica_servers(4).await;
    let load = faults.load(6).await;
    load.wait_for_more(500, Duration::from_secs(60)).await;
    eprintln!("{}", faults.inject(Fault::CutFromMeta, &load).await);
    let report = faults.finish(load).await;
    eprintln!(
        "{}",
        report.assert_linearizable("the busiest replica server cut from the meta")
    );
}
