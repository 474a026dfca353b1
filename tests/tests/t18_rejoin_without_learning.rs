//! A secondary's server restarts. Back before the meta noticed, it resumes its roles at the same
//! ballots with nothing learned. Back after the meta declared it dead but within the assign delay,
//! it is the one taken back (the partition waited for it rather than copying to another node), and
//! as nothing was written meanwhile it learns nothing.

use aerie_common::NodeAddr;
use aerie_proto::meta::{AppState, NodeStatus};
use aerie_tests::{
    fast_failure_detection, learned_bytes, wait_commits_durable, wait_fully_healthy, wait_healthy, wait_until,
    ProcessCluster, ProcessClusterOptions,
};
use std::collections::BTreeSet;
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&[
        "meta_server.lb_interval_ms=500",
        // Long enough that the cure waits for the node instead of copying elsewhere.
        "meta_server.replica_assign_delay_ms_for_dropouts=120000",
    ])
}

fn partitions_of(app: &AppState, node: NodeAddr) -> BTreeSet<u32> {
    app.partitions
        .iter()
        .filter(|p| p.is_member(node))
        .map(|p| p.gpid.pidx)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_secondary_rejoins_without_copying_data() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: settings(),
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("rejoin", 8, 3).await.unwrap();
    let table = client.table("rejoin").await.unwrap();
    for i in 0..400 {
        table.set(format!("k{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
    }
    let before = client.query_config("rejoin").await.unwrap();
    // Every replica's log records that everything written is committed before it goes down.
    wait_commits_durable(&client, &before, Duration::from_secs(30)).await;
    // A node that is a secondary somewhere and primary nowhere.
    let victim = *cluster
        .replica_addrs
        .iter()
        .find(|n| {
            before.partitions.iter().all(|p| p.primary != Some(**n))
                && before.partitions.iter().any(|p| p.is_member(**n))
        })
        .or_else(|| {
            cluster
                .replica_addrs
                .iter()
                .min_by_key(|n| before.partitions.iter().filter(|p| p.primary == Some(**n)).count())
        })
        .unwrap();
    let index = cluster.replica_addrs.iter().position(|a| *a == victim).unwrap();
    let had = partitions_of(&before, victim);

    // 1. Back at once: nothing changes, nothing is learned.
    cluster.replicas[index].restart();
    wait_healthy(victim, Duration::from_secs(30)).await;
    let after_quick = wait_fully_healthy(&client, "rejoin", Duration::from_secs(30)).await;
    let ballots = |app: &AppState| app.partitions.iter().map(|p| p.ballot).collect::<Vec<_>>();
    if ballots(&after_quick) == ballots(&before) {
        assert_eq!(learned_bytes(victim), 0.0);
    }

    // 2. Back after the meta declared it dead, within the assign delay.
    cluster.replicas[index].kill();
    wait_until("the meta to declare the node dead", Duration::from_secs(30), || async {
        let nodes = client.list_nodes().await.map_err(|e| e.to_string())?;
        match nodes.iter().find(|n| n.address == victim) {
            Some(n) if n.status == NodeStatus::Unalive => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_until(
        "its replicas to be removed from the configuration",
        Duration::from_secs(30),
        || async {
            let app = client.query_config("rejoin").await.map_err(|e| e.to_string())?;
            let still = partitions_of(&app, victim);
            if still.is_empty() {
                Ok(())
            } else {
                Err(format!("still in {still:?}"))
            }
        },
    )
    .await;
    cluster.replicas[index].restart();
    wait_healthy(victim, Duration::from_secs(30)).await;
    let healed = wait_fully_healthy(&client, "rejoin", Duration::from_secs(60)).await;
    assert_eq!(partitions_of(&healed, victim), had, "it got its own partitions back");
    assert_eq!(
        learned_bytes(victim),
        0.0,
        "nothing was written meanwhile, so nothing was copied"
    );
    for i in 0..400 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
}
