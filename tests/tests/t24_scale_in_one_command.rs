//! Scale in, the Aerie way: one shell command empties two of five replica servers while clients
//! write. It refuses first what would be unsafe (too few nodes left), then checks, black-lists the
//! nodes, moves their primaries away, copies their replicas elsewhere and reports progress until
//! they are empty. They are stopped, `remove_node` forgets them without a meta restart, every
//! table is fully healthy, no acknowledged write is lost, and the meta never froze itself.

use aerie_common::NodeAddr;
use aerie_proto::meta::NodeStatus;
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, balance_moves_given_up, fast_failure_detection, metrics, sample,
    wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions, WriteLoad,
};
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&["meta_server.lb_interval_ms=500"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_node_empties_two_of_five_nodes_under_write_load() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 5,
        settings: settings(),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("shrink", 16, 3).await.unwrap();
    admin.create_table("small", 4, 3).await.unwrap();
    let load = WriteLoad::start(cluster.client(Duration::from_secs(5)).table("shrink").await.unwrap(), 8);
    load.wait_for_more("writes before scaling in", 500, Duration::from_secs(30))
        .await;
    let leaving: Vec<NodeAddr> = cluster.replica_addrs[3..].to_vec();
    let staying: Vec<NodeAddr> = cluster.replica_addrs[..3].to_vec();

    // Unsafe: three of five leaving would leave two nodes for three replicas. Nothing changes.
    let three = cluster.shell_exec(&format!(
        "offline_node -n {} -n {} -n {}",
        cluster.replica_addrs[2], leaving[0], leaving[1]
    ));
    assert!(!three.success, "{three:?}");
    assert!(three.stderr.contains("only 2 alive node(s) would stay"), "{three:?}");
    let black_list = cluster.shell_exec("remote_command -t meta-server meta.lb.assign_secondary_black_list");
    assert!(!black_list.stdout.contains(&leaving[0].to_string()), "{black_list:?}");

    // The one command, while the clients write. (The meta counts itself frozen at start, until
    // three nodes live; what counts is that the operation adds no freeze.)
    let freezes = || sample(&metrics(cluster.meta_addr), "aerie_meta_self_freezes_total");
    let freezes_before = freezes();
    let command = format!("offline_node -n {} -n {}", leaving[0], leaving[1]);
    let shell = tokio::task::block_in_place(|| cluster.shell(&["-e", &command], ""));
    assert!(shell.success, "{shell:?}");
    assert!(shell.stdout.contains("pre-flight checks passed"), "{}", shell.stdout);
    assert!(
        shell.stdout.contains("replicas remaining:"),
        "progress is shown: {}",
        shell.stdout
    );
    assert!(
        shell.stdout.contains("no replica left, every partition fully healthy"),
        "{}",
        shell.stdout
    );
    println!("offline_node printed:\n{}", shell.stdout);

    for table in ["shrink", "small"] {
        let app = wait_fully_healthy(&admin, table, Duration::from_secs(30)).await;
        for p in &app.partitions {
            assert!(p.members().all(|m| staying.contains(&m)), "{table} {p:?}");
        }
    }
    assert_eq!(
        balance_moves_given_up(cluster.meta_addr),
        0.0,
        "no move was given up: nothing failed"
    );
    let nodes = admin.list_nodes().await.unwrap();
    for node in &leaving {
        let info = nodes.iter().find(|n| n.address == *node).unwrap();
        assert_eq!(info.primary_count + info.secondary_count, 0, "{node} is empty");
    }

    // Stop them; the tables stay fully healthy and writes go on.
    for i in 3..5 {
        cluster.replicas[i].kill();
    }
    wait_until("the stopped nodes to be UNALIVE", Duration::from_secs(30), || async {
        let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
        let dead = nodes
            .iter()
            .filter(|n| leaving.contains(&n.address) && n.status == NodeStatus::Unalive)
            .count();
        if dead == leaving.len() {
            Ok(())
        } else {
            Err(format!("{dead} unalive"))
        }
    })
    .await;
    load.wait_for_more("writes after the stop", 300, Duration::from_secs(30))
        .await;

    // Forget them: no meta restart.
    let forget = cluster.shell_exec(&format!("remove_node -n {},{}", leaving[0], leaving[1]));
    assert!(forget.success, "{forget:?}");
    let mut listed: Vec<NodeAddr> = admin.list_nodes().await.unwrap().iter().map(|n| n.address).collect();
    let mut expected = staying.clone();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "nodes lists the three that stay");
    let refused = cluster.shell_exec(&format!("remove_node -n {}", staying[0]));
    assert!(
        !refused.success && refused.stderr.contains("is alive: stop it first"),
        "{refused:?}"
    );

    let acked = load.stop().await;
    assert_eq!(freezes(), freezes_before, "the meta never froze itself");
    let reader = cluster.client(Duration::from_secs(20));
    let table = reader.table("shrink").await.unwrap();
    assert_acked_readable(&table, &acked).await;
    for name in ["shrink", "small"] {
        let app = wait_fully_healthy(&reader, name, Duration::from_secs(30)).await;
        assert_replicas_identical(&reader, &app).await;
    }
}
