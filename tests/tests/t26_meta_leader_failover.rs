//! Three meta servers on a real ZooKeeper elect one leader; the others answer
//! `ERR_FORWARD_TO_OTHERS` naming it. The leader dies by SIGKILL while clients write: another meta
//! takes over once ZooKeeper expires the dead one's session, reloads the cluster map, and the replica
//! servers keep their roles: no partition changes, no byte is learned, no acknowledged write is
//! lost. The killed meta comes back as a follower.

use aerie_common::{ErrorCode, NodeAddr};
use aerie_proto::meta::{ListApps, PartitionConfig};
use aerie_tests::{
    aerie_bin, assert_acked_readable, http_get, learned_bytes, metrics, sample, wait_fully_healthy, wait_until,
    zookeeper_settings, ProcessCluster, ProcessClusterOptions, TestZookeeper, WriteLoad,
};
use std::time::{Duration, Instant};

const SESSION_TIMEOUT_MS: u64 = 3000;
const PARTITIONS: u32 = 8;

fn roles(partitions: &[PartitionConfig]) -> Vec<(Option<NodeAddr>, Vec<NodeAddr>)> {
    partitions
        .iter()
        .map(|p| {
            let mut secondaries = p.secondaries.clone();
            secondaries.sort();
            (p.primary, secondaries)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_without_moving_a_replica_or_losing_a_write() {
    let zk = TestZookeeper::start();
    let mut settings = zookeeper_settings(&zk.hosts(), "/aerie/t26", SESSION_TIMEOUT_MS);
    // Leases (8 s) outlast a failover (session timeout + election + reload), as with the defaults.
    settings.extend([
        "replication.fd_beacon_interval_seconds=1".to_string(),
        "replication.prepare_timeout_ms=1000".into(),
    ]);
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        meta_servers: 3,
        replica_servers: 3,
        settings,
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table("ha", PARTITIONS, 3).await.unwrap();
    let before = wait_fully_healthy(&admin, "ha", Duration::from_secs(60)).await;

    let info = admin.cluster_info().await.unwrap();
    let leader = info.primary_meta_server;
    assert_eq!(info.zookeeper_hosts, zk.hosts());
    assert_eq!(info.zookeeper_root, "/aerie/t26");
    assert_eq!(info.meta_store_status, "ok");

    // A follower refuses and names the leader; the shell, given every meta, follows it.
    let follower = *cluster.meta_addrs.iter().find(|m| **m != leader).unwrap();
    let refused = admin
        .call_node(follower, ListApps { include_dropped: false })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::ERR_FORWARD_TO_OTHERS, "{refused}");
    assert_eq!(refused.forward_target(), Some(leader), "{refused}");
    wait_until("the leader gauges", Duration::from_secs(10), || async {
        let gauges = (
            sample(&metrics(leader), "aerie_meta_leader "),
            sample(&metrics(follower), "aerie_meta_leader "),
            sample(&metrics(leader), "aerie_meta_store_available "),
        );
        if gauges == (1.0, 0.0, 1.0) {
            Ok(())
        } else {
            Err(format!("leader, follower, store: {gauges:?}"))
        }
    })
    .await;
    // Given only a follower, the shell still reaches the leader it names.
    let only_follower = std::process::Command::new(aerie_bin())
        .args(["shell", "--meta", &follower.to_string(), "-e", "cluster_info"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&only_follower.stdout);
    assert!(
        only_follower.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&only_follower.stderr)
    );
    assert!(text.contains(&leader.to_string()), "{text}");
    let (status, health) = http_get(follower, "/health");
    assert_eq!(status, 200, "{health}");
    assert!(health.contains(&format!("following the leader {leader}")), "{health}");

    let client = cluster.client(Duration::from_secs(10));
    let load = WriteLoad::start(client.table("ha").await.unwrap(), 4);
    load.wait_for_more("writes before the kill", 300, Duration::from_secs(30))
        .await;
    let learned_before: f64 = cluster.replica_addrs.iter().map(|n| learned_bytes(*n)).sum();

    let killed = cluster.meta_addrs.iter().position(|m| *m == leader).unwrap();
    cluster.metas[killed].kill();
    let killed_at = Instant::now();
    let new_leader = wait_until(
        "another meta server to lead",
        Duration::from_millis(SESSION_TIMEOUT_MS) + Duration::from_secs(15),
        || async {
            let info = admin.cluster_info().await.map_err(|e| e.to_string())?;
            if info.primary_meta_server != leader {
                Ok(info.primary_meta_server)
            } else {
                Err("the killed meta is still named".into())
            }
        },
    )
    .await;
    eprintln!(
        "new leader {new_leader} answered {:?} after the SIGKILL",
        killed_at.elapsed()
    );

    load.wait_for_more("writes after the takeover", 300, Duration::from_secs(30))
        .await;
    let acked = load.stop().await;
    let after = wait_fully_healthy(&admin, "ha", Duration::from_secs(30)).await;
    assert_eq!(
        roles(&after.partitions),
        roles(&before.partitions),
        "a replica changed role"
    );
    assert_eq!(
        after.partitions.iter().map(|p| p.ballot).collect::<Vec<_>>(),
        before.partitions.iter().map(|p| p.ballot).collect::<Vec<_>>(),
        "a partition changed configuration"
    );
    let learned_after: f64 = cluster.replica_addrs.iter().map(|n| learned_bytes(*n)).sum();
    assert_eq!(learned_after, learned_before, "bytes were copied during the failover");
    assert_acked_readable(&client.table("ha").await.unwrap(), &acked).await;

    // The shell finds the new leader through the list of metas, even with the dead one first.
    let shell = cluster.shell_exec("cluster_info");
    assert!(shell.success, "{}", shell.stderr);
    assert!(
        shell
            .stdout
            .lines()
            .any(|l| l.starts_with("primary_meta_server") && l.trim_end().ends_with(&format!(": {new_leader}"))),
        "{}",
        shell.stdout
    );
    assert!(shell.stdout.contains("/aerie/t26"), "{}", shell.stdout);

    // The old leader comes back and follows.
    cluster.metas[killed].restart();
    wait_until("the restarted meta to follow", Duration::from_secs(30), || async {
        let refused = admin
            .call_node(leader, ListApps { include_dropped: false })
            .await
            .map_err(|e| e.to_string())?;
        match refused {
            Err(e) if e.forward_target() == Some(new_leader) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}
