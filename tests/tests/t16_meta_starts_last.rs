//! Replica servers that start before their meta server (a whole-cluster restart in the wrong order)
//! serve again as soon as the meta is back, not a whole config-sync interval later: the first
//! acknowledged beacon grants the lease, and with it comes a config sync.

use aerie_tests::{wait_until, ProcessCluster, ProcessClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_resume_when_the_meta_arrives_after_them() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        // So long that only the retry of a failed sync can bring the replicas back in time.
        settings: vec!["replication.config_sync_interval_ms=600000".into()],
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(30));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("late", 4, 3).await.unwrap();
    let table = client.table("late").await.unwrap();
    for i in 0..100 {
        table.set(format!("k{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
    }

    cluster.kill_all();
    for replica in &mut cluster.replicas {
        replica.restart();
    }
    for replica in &cluster.replicas {
        wait_until(
            "the replica server to find no meta",
            Duration::from_secs(20),
            || async {
                if replica.log_tail(50).contains("beacon failed") {
                    Ok(())
                } else {
                    Err("no failed beacon logged yet".to_string())
                }
            },
        )
        .await;
    }
    cluster.metas[0].restart();

    let client = cluster.client(Duration::from_secs(30));
    let table = client.table("late").await.unwrap();
    for i in 0..100 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec()),
            "k{i}"
        );
    }
}
