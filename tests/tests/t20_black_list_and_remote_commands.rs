//! Remote commands as an operator uses them, and the black list: a black-listed node never receives
//! a new secondary, even when it is the least loaded node the cure could pick.

use aerie_common::NodeAddr;
use aerie_tests::{fast_failure_detection, wait_fully_healthy, wait_until, ProcessCluster, ProcessClusterOptions};
use std::collections::BTreeSet;
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&[
        "meta_server.lb_interval_ms=300",
        "meta_server.replica_assign_delay_ms_for_dropouts=60000",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knobs_black_list_propose_and_stats() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 5,
        settings: settings(),
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;

    // help, unknown commands, knobs.
    let help = cluster.shell_exec("remote_command -t meta-server help");
    for command in [
        "meta.lb.assign_delay_ms",
        "meta.lb.assign_secondary_black_list",
        "meta.lb.add_secondary_enable_flow_control",
        "meta.lb.add_secondary_max_count_for_one_node",
        "meta.live_percentage",
        "server-info",
        "server-stat",
        "config-dump",
    ] {
        assert!(
            help.stdout.contains(command),
            "meta help lacks {command}:\n{}",
            help.stdout
        );
    }
    let help = cluster.shell_exec("remote_command -t replica-server help");
    for command in ["replica.kill_partition", "flush-log", "server-stat", "config-dump"] {
        assert!(help.stdout.contains(command), "replica help lacks {command}");
    }
    assert!(
        help.stdout.contains("Succeed count: 5\nFailed count: 0"),
        "{}",
        help.stdout
    );
    let unknown = cluster.shell_exec("remote_command -t meta-server frobnicate");
    assert!(
        !unknown.success && unknown.stdout.contains("ERR: unknown command 'frobnicate'"),
        "{unknown:?}"
    );
    let set = cluster.shell_exec("remote_command -t meta-server meta.lb.assign_delay_ms 2000");
    assert!(set.stdout.contains("succeed: OK"), "{set:?}");
    let show = cluster.shell_exec("remote_command -t meta-server meta.lb.assign_delay_ms");
    assert!(show.stdout.contains("succeed: 2000"), "{show:?}");
    let bad = cluster.shell_exec("remote_command -t meta-server meta.lb.add_secondary_enable_flow_control maybe");
    assert!(
        !bad.success && bad.stdout.contains("ERR: 'maybe' is not true or false"),
        "{bad:?}"
    );
    let config = cluster.shell_exec("remote_command -t meta-server config-dump");
    assert!(config.stdout.contains("fd_grace_seconds = 4"), "{}", config.stdout);
    let info = cluster.shell_exec("server_info -t replica-server");
    assert!(info.stdout.contains("roles replica"), "{}", info.stdout);
    let flushed = cluster.shell_exec("remote_command -t replica-server flush-log");
    assert!(flushed.success, "{flushed:?}");

    client.create_table("bl", 8, 3).await.unwrap();
    let table = client.table("bl").await.unwrap();
    for i in 0..300 {
        table.set(format!("k{i}").as_bytes(), b"s", b"v", 0).await.unwrap();
    }

    // Black-list the node serving the fewest replicas: the cure would pick it first.
    let before = client.query_config("bl").await.unwrap();
    let load = |n: &NodeAddr| before.partitions.iter().filter(|p| p.is_member(*n)).count();
    let mut by_load = cluster.replica_addrs.clone();
    by_load.sort_by_key(load);
    let black: BTreeSet<NodeAddr> = by_load[..1].iter().copied().collect();
    let list = black.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
    let set = cluster.shell_exec(&format!(
        "remote_command -t meta-server meta.lb.assign_secondary_black_list {list}"
    ));
    assert!(set.stdout.contains("succeed: OK"), "{set:?}");
    let shown = cluster.shell_exec("remote_command -t meta-server meta.lb.assign_secondary_black_list");
    assert!(shown.stdout.contains(&list), "{}", shown.stdout);

    // Kill the busiest node that is not black-listed; after the delay its replicas go elsewhere.
    let victim = *by_load.iter().rev().find(|n| !black.contains(n)).unwrap();
    let victim_index = cluster.replica_addrs.iter().position(|a| *a == victim).unwrap();
    let served_before: BTreeSet<(NodeAddr, u32)> = before
        .partitions
        .iter()
        .flat_map(|p| p.members().map(move |m| (m, p.gpid.pidx)))
        .collect();
    cluster.replicas[victim_index].kill();
    wait_until(
        "the victim to leave every configuration",
        Duration::from_secs(30),
        || async {
            let app = client.query_config("bl").await.map_err(|e| e.to_string())?;
            if app.partitions.iter().any(|p| p.is_member(victim)) {
                Err("still a member".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let healed = wait_fully_healthy(&client, "bl", Duration::from_secs(60)).await;
    for partition in &healed.partitions {
        for node in partition.members().filter(|n| black.contains(n)) {
            assert!(
                served_before.contains(&(node, partition.gpid.pidx)),
                "black-listed {node} received a new secondary of {}",
                partition.gpid
            );
        }
    }

    // server_stat shows the learning the healing took.
    let stat = cluster.shell_exec("server_stat -t replica-server");
    assert!(stat.stdout.contains("learn_completed="), "{}", stat.stdout);
    let learned: u64 = stat
        .stdout
        .lines()
        .filter_map(|l| l.split("learn_completed=").nth(1))
        .filter_map(|v| v.split(',').next()?.trim().parse::<u64>().ok())
        .sum();
    assert!(learned >= 1, "some replica learned:\n{}", stat.stdout);

    // propose: move a primary onto one of its secondaries.
    let partition = &healed.partitions[0];
    let (primary, secondary) = (partition.primary.unwrap(), partition.secondaries[0]);
    let out = cluster.shell_exec(&format!(
        "propose -g {} -p UPGRADE_TO_PRIMARY -t {primary} -n {secondary}",
        partition.gpid
    ));
    assert!(
        out.success && out.stdout.contains("send proposal response: ERR_OK"),
        "{out:?}"
    );
    let moved = client.query_config("bl").await.unwrap();
    assert_eq!(moved.partitions[0].primary, Some(secondary));
    assert_eq!(moved.partitions[0].ballot, partition.ballot + 1);
    // The old primary is no longer the one to carry out proposals for this partition.
    let wrong = cluster.shell_exec(&format!(
        "propose -g {} -p UPGRADE_TO_PRIMARY -t {primary} -n {primary}",
        partition.gpid
    ));
    assert!(
        !wrong.success && wrong.stderr.contains("is not the primary"),
        "{wrong:?}"
    );
    let bad_type = cluster.shell_exec(&format!(
        "propose -g {} -p MOVE -t {primary} -n {primary}",
        partition.gpid
    ));
    assert!(
        !bad_type.success && bad_type.stderr.contains("unknown proposal 'MOVE'"),
        "{bad_type:?}"
    );
    for i in 0..300 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
    // kill_partition refuses to close replicas that still serve (t50 closes drained ones).
    let node = moved.partitions[0].primary.unwrap();
    let killed = cluster.shell_exec(&format!("remote_command -l {node} replica.kill_partition"));
    assert!(
        killed.stdout.contains("(primary)") && killed.stdout.contains("nothing closed"),
        "{killed:?}"
    );
    for i in 0..300 {
        assert_eq!(
            table.get(format!("k{i}").as_bytes(), b"s").await.unwrap(),
            Some(b"v".to_vec())
        );
    }
    let ddd = cluster.shell_exec("ddd_diagnose");
    assert!(ddd.stdout.contains("ddd_partition_count : 0"), "{}", ddd.stdout);
}
