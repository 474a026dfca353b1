//! t45: three meta servers on a real ZooKeeper; the leader dies by SIGKILL while clients read,
//! write and check-and-set. Another meta takes over (a new incarnation for every replica server,
//! which resync), the killed one comes back as a follower. Every key's history is linearizable and
//! the replicas end identical.

use aerie_tests::nemesis::{fault_settings, FaultCluster};
use aerie_tests::{wait_until, zookeeper_settings, ProcessClusterOptions, TestZookeeper};
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
    let leader = faults
        .admin
        .cluster_info()
        .await
        .expect("cluster info")
        .primary_meta_server;
    let index = faults
        .cluster
        .meta_addrs
        .iter()
        .position(|m| *m == leader)
        .expect("the leader is one of the metas");
    faults.cluster.metas[index].kill();
    let admin = &faults.admin;
    wait_until("another meta to lead", Duration::from_secs(60), || async move {
        match admin.cluster_info().await {
            Ok(info) if info.primary_meta_server != leader => Ok(()),
            Ok(_) => Err("the dead leader is still named".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    load.wait_for_more(1_000, Duration::from_secs(90)).await;
    faults.cluster.metas[index].restart();
    load.wait_for_more(500, Duration::from_secs(90)).await;
    let report = faults.finish(load).await;
    eprintln!("{}", report.assert_linearizable("SIGKILL of the meta leader"));
}
