//! Scale in the way the Pegasus runbook does it, by hand and with `scripts/offline_node_list.sh`,
//! under write load. By hand: black-list the leaving node, set `meta.lb.assign_delay_ms` to 10,
//! stop it, wait until every table is fully healthy again, and forget it with `remove_node`
//! (where Pegasus restarts the meta). With the script: meta list, node list and a stop-command
//! template; it checks, empties the node, stops it and forgets it. No acknowledged write is lost.

use aerie_common::NodeAddr;
use aerie_proto::meta::NodeStatus;
use aerie_tests::{
    aerie_bin, assert_acked_readable, assert_replicas_identical, checkout_file, fast_failure_detection,
    wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions, WriteLoad,
};
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&["meta_server.lb_interval_ms=500"])
}

async fn listed(cluster: &ProcessCluster) -> Vec<NodeAddr> {
    let client = cluster.client(Duration::from_secs(10));
    client.list_nodes().await.unwrap().iter().map(|n| n.address).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pegasus_procedure_and_the_script_take_nodes_out_without_losing_writes() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 5,
        settings: settings(),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("runbook", 16, 3).await.unwrap();
    let load = WriteLoad::start(
        cluster.client(Duration::from_secs(5)).table("runbook").await.unwrap(),
        8,
    );
    load.wait_for_more("writes before scaling in", 500, Duration::from_secs(30))
        .await;

    // By hand, as the runbook says.
    let leaving = cluster.replica_addrs[4];
    for command in [
        "set_meta_level steady".to_string(),
        format!("remote_command -t meta-server meta.lb.assign_secondary_black_list {leaving}"),
        "remote_command -t meta-server meta.lb.assign_delay_ms 10".to_string(),
    ] {
        let out = cluster.shell_exec(&command);
        assert!(out.success, "{command}: {out:?}");
    }
    cluster.replicas[4].kill();
    // `ls -d` until every partition is fully healthy again, without the stopped node.
    wait_until(
        "fully healthy without the stopped node",
        Duration::from_secs(60),
        || async {
            let app = admin.query_config("runbook").await.map_err(|e| e.to_string())?;
            let waiting = app
                .partitions
                .iter()
                .filter(|p| p.is_member(leaving) || p.health() != aerie_proto::meta::PartitionHealth::FullyHealthy)
                .count();
            if waiting == 0 {
                Ok(())
            } else {
                Err(format!("{waiting} partitions still on {leaving} or unhealthy"))
            }
        },
    )
    .await;
    wait_until("the stopped node to be UNALIVE", Duration::from_secs(30), || async {
        let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
        match nodes.iter().find(|n| n.address == leaving) {
            Some(n) if n.status == NodeStatus::Unalive => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let forget = cluster.shell_exec(&format!("remove_node -n {leaving}"));
    assert!(forget.success, "{forget:?}");
    assert!(!listed(&cluster).await.contains(&leaving));
    assert!(
        cluster
            .shell_exec("remote_command -t meta-server meta.lb.assign_delay_ms DEFAULT")
            .success
    );
    load.wait_for_more("writes after the first node left", 300, Duration::from_secs(30))
        .await;

    // With the script: the stop command is the test's own (SIGKILL of that process).
    let scripted = cluster.replica_addrs[3];
    let pid = cluster.replicas[3].pid().expect("running");
    let script = checkout_file("scripts/offline_node_list.sh");
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new(script)
            .env("AERIE_BIN", aerie_bin())
            .args(["-m", &cluster.meta_addr.to_string(), "-n", &scripted.to_string()])
            .args(["-s", &format!("kill -9 {pid}"), "-w", "60"])
            .output()
            .expect("the script runs")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("remove node {scripted} succeed")), "{stdout}");
    println!("offline_node_list.sh printed:\n{stdout}");
    assert!(!cluster.replicas[3].is_running(), "the stop command ran");
    let nodes = listed(&cluster).await;
    assert_eq!(nodes.len(), 3, "{nodes:?}");

    // Its pre-flight check refuses what would leave too few nodes, and changes nothing.
    let refused = std::process::Command::new(checkout_file("scripts/offline_node_list.sh"))
        .env("AERIE_BIN", aerie_bin())
        .args([
            "-m",
            &cluster.meta_addr.to_string(),
            "-n",
            &nodes[0].to_string(),
            "--check",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only 2 alive node(s) would stay"),
        "{refused:?}"
    );

    load.wait_for_more("writes after the second node left", 300, Duration::from_secs(30))
        .await;
    let acked = load.stop().await;
    let reader = cluster.client(Duration::from_secs(20));
    assert_acked_readable(&reader.table("runbook").await.unwrap(), &acked).await;
    let app = wait_fully_healthy(&reader, "runbook", Duration::from_secs(30)).await;
    assert_replicas_identical(&reader, &app).await;
}
