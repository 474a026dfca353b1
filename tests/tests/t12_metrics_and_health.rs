//! Every role answers `/metrics` (Prometheus text) and `/health` on its own port, and the metrics
//! move with the traffic.

use aerie_tests::{http_get, sample, wait_until, ProcessCluster, ProcessClusterOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_on_every_role() {
    let cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("m", 4, 3).await.unwrap();
    let table = client.table("m").await.unwrap();
    for i in 0..50 {
        table.set(format!("k{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
        assert!(table.get(format!("k{i}").as_bytes(), b"s").await.unwrap().is_some());
    }

    let (status, health) = http_get(cluster.meta_addr, "/health");
    assert_eq!((status, health.trim()), (200, "meta: serving"));
    let (_, meta) = http_get(cluster.meta_addr, "/metrics");
    assert_eq!(sample(&meta, "aerie_meta_tables "), 1.0, "{meta}");
    assert_eq!(sample(&meta, "aerie_meta_partitions "), 4.0);
    assert_eq!(sample(&meta, "aerie_meta_nodes{status=\"alive\"}"), 3.0);
    for node in &cluster.replica_addrs {
        assert_eq!(sample(&meta, &format!("aerie_meta_node_alive{{node=\"{node}\"}}")), 1.0);
    }
    assert_eq!(
        Some(sample(
            &meta,
            "aerie_meta_partitions_by_health{health=\"fully_healthy\",table=\"m\"}"
        )),
        Some(4.0)
    );

    let mut puts = 0.0;
    let mut gets = 0.0;
    let mut log_bytes = 0.0;
    let mut primaries = 0.0;
    let mut replicas = 0.0;
    for addr in &cluster.replica_addrs {
        wait_until(
            "the replica server to report healthy",
            Duration::from_secs(10),
            || async {
                let (status, body) = http_get(*addr, "/health");
                if status == 200 && body.contains("beacon acknowledged") {
                    Ok(())
                } else {
                    Err(format!("{status} {body}"))
                }
            },
        )
        .await;
        let (status, text) = http_get(*addr, "/metrics");
        assert_eq!(status, 200);
        let node = addr.to_string();
        puts += sample(
            &text,
            &format!("aerie_replica_requests_total{{node=\"{node}\",op=\"put\",outcome=\"ok\"}}"),
        );
        gets += sample(
            &text,
            &format!("aerie_replica_requests_total{{node=\"{node}\",op=\"get\",outcome=\"ok\"}}"),
        );
        log_bytes += sample(
            &text,
            &format!("aerie_replica_log_written_bytes_total{{node=\"{node}\"}}"),
        );
        primaries += sample(
            &text,
            &format!("aerie_replica_replicas{{node=\"{node}\",role=\"primary\"}}"),
        );
        replicas += sample(
            &text,
            &format!("aerie_replica_replicas{{node=\"{node}\",role=\"secondary\"}}"),
        );
        assert!(
            text.contains("aerie_replica_request_duration_seconds_bucket{op=\"put\",table=\"m\""),
            "{text}"
        );
    }
    assert_eq!(
        (puts, gets),
        (50.0, 50.0),
        "each request counted once, by the primary that served it"
    );
    assert_eq!((primaries, replicas), (4.0, 8.0));
    assert!(log_bytes > 0.0);

    let (status, _) = http_get(cluster.meta_addr, "/nothing");
    assert_eq!(status, 404);
}
