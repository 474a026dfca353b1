//! The first steps of a rolling update, by hand, under a steady write load: `migrate_node` moves
//! every primary off a replica server by role swap and ends when the node leads nothing (by the
//! meta's map and by the node's own account); `downgrade_node` then takes it out of every
//! configuration. Not one write fails meanwhile, every acknowledged write stays readable, and
//! both commands refuse, with the reason, what they cannot do.

use aerie_common::NodeAddr;
use aerie_proto::meta::AppState;
use aerie_proto::replica::{QueryReplicas, ReplicaStatus};
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, wait_fully_healthy, wait_until, ProcessCluster,
    ProcessClusterOptions, WriteLoad,
};
use std::time::Duration;

async fn map(cluster: &ProcessCluster) -> AppState {
    cluster
        .client(Duration::from_secs(10))
        .query_config("drain")
        .await
        .unwrap()
}

async fn roles_on(cluster: &ProcessCluster, node: NodeAddr) -> Vec<ReplicaStatus> {
    let client = cluster.client(Duration::from_secs(10));
    let replicas = client.call_node(node, QueryReplicas {}).await.unwrap().unwrap();
    replicas.into_iter().map(|r| r.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gives_up_its_primaries_then_its_secondaries_without_a_failed_write() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 3,
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("drain", 8, 3).await.unwrap();
    wait_fully_healthy(&admin, "drain", Duration::from_secs(60)).await;
    let node = cluster.replica_addrs[0];
    let led_before = map(&cluster)
        .await
        .partitions
        .iter()
        .filter(|c| c.primary == Some(node))
        .count();
    assert!(led_before > 0, "the test needs {node} to lead something");

    // Refused, with the reason, while the balancer could move primaries back.
    assert!(cluster.shell_exec("set_meta_level lively").success);
    let out = cluster.shell_exec(&format!("migrate_node -n {node}"));
    assert!(!out.success, "{out:?}");
    assert!(out.stderr.contains("set_meta_level steady"), "{out:?}");
    assert!(cluster.shell_exec("set_meta_level steady").success);
    let out = cluster.shell_exec("migrate_node -n 127.0.0.1:1");
    assert!(!out.success && out.stderr.contains("not a replica server"), "{out:?}");

    let load = WriteLoad::start(cluster.client(Duration::from_secs(30)).table("drain").await.unwrap(), 4);
    load.wait_for_more("writes before the moves", 200, Duration::from_secs(60))
        .await;

    // The plan first, then the moves.
    let out = cluster.shell_exec(&format!("migrate_node -n {node} --dry_run"));
    assert!(out.success, "{out:?}");
    assert!(
        out.stdout.contains(&format!("would move {led_before} partition(s)")),
        "{out:?}"
    );
    let out = cluster.shell_exec(&format!("migrate_node -n {node} -p 3"));
    eprintln!("{}", out.stdout);
    assert!(out.success, "{out:?}\n{}", cluster.logs(30));
    assert!(
        out.stdout.contains(&format!("{led_before} partition(s) moved")),
        "{out:?}"
    );
    assert!(out.stdout.contains("leads nothing"), "{out:?}");
    let after = map(&cluster).await;
    assert!(after
        .partitions
        .iter()
        .all(|c| c.primary != Some(node) && c.primary.is_some()));
    assert!(
        after.partitions.iter().all(|c| c.secondaries.contains(&node)),
        "a role swap keeps it a secondary: {after:?}"
    );
    assert!(!roles_on(&cluster, node).await.contains(&ReplicaStatus::Primary));
    load.wait_for_more("writes after migrate_node", 200, Duration::from_secs(60))
        .await;

    let out = cluster.shell_exec(&format!("downgrade_node -n {node}"));
    eprintln!("{}", out.stdout);
    assert!(out.success, "{out:?}\n{}", cluster.logs(30));
    assert!(out.stdout.contains("8 partition(s) moved"), "{out:?}");
    let after = map(&cluster).await;
    assert!(after.partitions.iter().all(|c| !c.is_member(node)), "{after:?}");
    assert!(
        after.partitions.iter().all(|c| c.replica_count() == 2),
        "writes go on with two replicas: {after:?}"
    );
    let roles = roles_on(&cluster, node).await;
    assert!(
        roles.iter().all(|r| *r == ReplicaStatus::Inactive),
        "the node heard it left: {roles:?}"
    );
    load.wait_for_more("writes after downgrade_node", 200, Duration::from_secs(60))
        .await;

    // Nothing left to move: both end at once.
    let out = cluster.shell_exec(&format!("downgrade_node -n {node}"));
    assert!(out.success && out.stdout.contains("0 partition(s) moved"), "{out:?}");

    // The last step before a stop: its replicas close with memtables flushed and stay closed.
    let out = cluster.shell_exec(&format!("remote_command -l {node} replica.kill_partition"));
    assert!(
        out.success && out.stdout.contains("OK, 8 replica(s) closed with memtables flushed"),
        "{out:?}"
    );
    assert!(
        roles_on(&cluster, node).await.is_empty(),
        "a config sync does not reopen them"
    );
    // Even a SIGKILL now loses nothing and leaves nothing to replay.
    let log_before = cluster.replicas[0].log_tail(usize::MAX).lines().count();
    cluster.replicas[0].restart();
    let replayed = wait_until(
        "the restarted node to open its 8 replicas",
        Duration::from_secs(60),
        || async {
            let log = cluster.replicas[0].log_tail(usize::MAX);
            let opened: Vec<u64> = log
                .lines()
                .skip(log_before)
                .filter(|l| l.contains("replica opened"))
                .map(|l| field(l, "replayed"))
                .collect();
            if opened.len() == 8 {
                Ok(opened)
            } else {
                Err(format!("{} opened", opened.len()))
            }
        },
    )
    .await;
    eprintln!("mutations replayed per replica after kill_partition and SIGKILL: {replayed:?}");
    assert!(replayed.iter().all(|r| *r == 0), "{replayed:?}");
    load.wait_for_more("writes after the restart", 200, Duration::from_secs(60))
        .await;

    let failed = load.failed();
    let acked = load.stop().await;
    assert_eq!(failed, 0, "writes failed during the moves");
    let table = cluster.client(Duration::from_secs(30)).table("drain").await.unwrap();
    assert_acked_readable(&table, &acked).await;
    // The cure takes the restarted node back; its replicas end identical to the others.
    let app = wait_fully_healthy(&admin, "drain", Duration::from_secs(120)).await;
    assert!(app.partitions.iter().all(|c| c.is_member(node)), "{app:?}");
    assert_replicas_identical(&admin, &app).await;

    // A partition whose only replica is on the node cannot move: named, with the reason.
    admin.create_table("lonely", 1, 1).await.unwrap();
    let lonely = wait_fully_healthy(&admin, "lonely", Duration::from_secs(60)).await;
    let holder = lonely.partitions[0].primary.unwrap();
    let out = cluster.shell_exec(&format!("migrate_node -n {holder}"));
    assert!(
        !out.success
            && out.stderr.contains(&format!(
                "{}: it has no secondary to take over",
                lonely.partitions[0].gpid
            )),
        "{out:?}"
    );
    admin.drop_table("lonely").await.unwrap();
}

/// The number in `name=N` of a log line.
fn field(line: &str, name: &str) -> u64 {
    let start = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 1;
    line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}
