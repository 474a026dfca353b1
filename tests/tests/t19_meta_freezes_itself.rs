//! With five replica servers and a freeze threshold of four live nodes, kill them one by one until
//! too few are alive: the meta freezes itself (cluster_info and get_meta_level say so), keeps
//! failing partitions over but stops adding replicas (though a live node could take them), and
//! when the nodes return it unfreezes and heals the table.

use aerie_common::{MetaLevel, NodeAddr};
use aerie_tests::{
    fast_failure_detection, metrics, sample, wait_fully_healthy, wait_healthy, wait_until, ProcessCluster,
    ProcessClusterOptions,
};
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&[
        "meta_server.lb_interval_ms=300",
        "meta_server.replica_assign_delay_ms_for_dropouts=1000",
        // Freeze below 4 live nodes (or below half of them).
        "meta_server.min_live_node_count_for_unfreeze=4",
        "meta_server.node_live_percentage_threshold_for_update=50",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_freezes_when_too_few_nodes_live_and_thaws_when_they_return() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 5,
        settings: settings(),
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("frz", 8, 3).await.unwrap();
    let table = client.table("frz").await.unwrap();
    for i in 0..200 {
        table.set(format!("k{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
    }
    let level = client.meta_level().await.unwrap();
    assert_eq!((level.stored, level.effective), (MetaLevel::Steady, MetaLevel::Steady));

    // One node down of five: four still live; the cure re-creates its replicas on the others.
    let first: NodeAddr = cluster.replica_addrs[0];
    cluster.replicas[0].kill();
    wait_until(
        "the table to heal without the first node",
        Duration::from_secs(60),
        || async {
            let app = client.query_config("frz").await.map_err(|e| e.to_string())?;
            let healthy = app
                .partitions
                .iter()
                .all(|p| p.replica_count() == 3 && !p.is_member(first));
            if healthy {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    assert_eq!(client.meta_level().await.unwrap().effective, MetaLevel::Steady);

    // A second one: 3 of 5 alive, below min_live_node_count_for_unfreeze = 4.
    let second: NodeAddr = cluster.replica_addrs[1];
    cluster.replicas[1].kill();
    let frozen = wait_until("the meta to freeze itself", Duration::from_secs(30), || async {
        let level = client.meta_level().await.map_err(|e| e.to_string())?;
        if level.effective == MetaLevel::Freezed {
            Ok(level)
        } else {
            Err(format!("{level:?}"))
        }
    })
    .await;
    assert_eq!(frozen.stored, MetaLevel::Steady, "the operator's level is unchanged");
    assert!(frozen.reason.unwrap().contains("min_live_node_count_for_unfreeze"));
    assert_eq!(client.cluster_info().await.unwrap().meta_function_level, "fl_freezed");
    let shell = cluster.shell_exec("get_meta_level");
    assert!(shell.stdout.contains("level in force is fl_freezed"), "{shell:?}");

    // Failover still happens: every partition has a live primary...
    wait_until("failover while frozen", Duration::from_secs(30), || async {
        let app = client.query_config("frz").await.map_err(|e| e.to_string())?;
        if app
            .partitions
            .iter()
            .all(|p| p.primary.is_some() && !p.is_member(second))
        {
            Ok(())
        } else {
            Err("the second node is still named".to_string())
        }
    })
    .await;
    // ...but the cure adds no replica: it says it held additions back, and the table stays short.
    wait_until("the cure to hold an addition back", Duration::from_secs(30), || async {
        let held = sample(
            &metrics(cluster.meta_addr),
            "aerie_meta_cure_actions_total{action=\"add_secondary\",outcome=\"held_back\"}",
        );
        if held > 0.0 {
            Ok(())
        } else {
            Err("nothing held back yet".to_string())
        }
    })
    .await;
    let short = client.query_config("frz").await.unwrap();
    assert!(
        short.partitions.iter().any(|p| p.replica_count() < 3),
        "no partition was re-replicated"
    );
    assert!(
        short
            .partitions
            .iter()
            .all(|p| p.members().all(|m| m != first && m != second)),
        "only live nodes serve"
    );
    for i in 0..200 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec())
        );
    }

    // Back: the meta thaws by itself and heals the table.
    cluster.replicas[0].restart();
    cluster.replicas[1].restart();
    wait_healthy(first, Duration::from_secs(30)).await;
    wait_healthy(second, Duration::from_secs(30)).await;
    wait_until("the meta to thaw", Duration::from_secs(30), || async {
        let level = client.meta_level().await.map_err(|e| e.to_string())?;
        if level.effective == MetaLevel::Steady {
            Ok(())
        } else {
            Err(format!("{level:?}"))
        }
    })
    .await;
    wait_fully_healthy(&client, "frz", Duration::from_secs(60)).await;
    for i in 0..200 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
}
