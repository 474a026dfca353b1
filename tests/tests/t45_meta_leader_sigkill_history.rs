//! t45: three meta servers on a real ZooKeeper; the leader dies by SIGKILL while clients read,
//! write and check-and-set. Another meta takes over (a new incarnation for every replica server,
//! which resync), the killed one comes back as a follower. Every key's history is linearizable and
//! the replicas end identical.

use aerie_tests::nemesis::{fault_settings, Fault, FaultCluster};
use aerie_tests::{zookeeper_settings, ProcessClusterOptions, TestZookeeper};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_leader_failover_keeps_every_history_linearizable() {
    let zk = TestZookeeper::start();
    let mut settings = fault_settings();
    settings.extend(zookeeper_settings(&zk.hosts(), "/aerie/t45", 3_000));
    // Leases outlast a failover (session timeout + election + reload).
    settings.extend([
        "replication.fd_lease_seconds=6".to_string(),
        "replication.fd_grace_seconds=8".to_string(),
    ]);
    let mut faults = FaultCluster::start(
        ProcessClusterOptions {
            meta_servers: 3,
            replica_servers: 3,
            settings,
            ..Default::default()
        },
        8,
    )
    .await;
    let load = faults.load(6).await;
    load.wait_for_more(500, Duration::from_secs(60)).await;
    eprintln!("{}", faults.inject(Fault::MetaLeaderKill, &load).await);
    let report = faults.finish(load).await;
    eprintln!("{}", report.assert_linearizable("SIGKILL of the meta leader"));
}
