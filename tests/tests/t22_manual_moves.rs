//! An operator moves replicas by hand at level steady with the shell's `balance`: a role swap
//! (move_pri), a secondary copied to a fourth node (copy_sec) and a primary copied there
//! (copy_pri). Each ends in the configuration asked for, one ballot per step, with every write
//! still readable and the replicas identical; invalid requests are refused with the reason.

use aerie_common::{Gpid, NodeAddr};
use aerie_proto::meta::{AppState, PartitionConfig};
use aerie_tests::{
    assert_replicas_identical, fast_failure_detection, wait_fully_healthy, wait_until, ProcessCluster,
    ProcessClusterOptions,
};
use std::time::Duration;

fn settings() -> Vec<String> {
    fast_failure_detection(&["meta_server.lb_interval_ms=500"])
}

async fn partition(cluster: &ProcessCluster, gpid: Gpid) -> PartitionConfig {
    let app: AppState = cluster
        .client(Duration::from_secs(10))
        .query_config("moves")
        .await
        .unwrap();
    app.partitions[gpid.pidx as usize].clone()
}

/// Waits until `gpid` is configured as `check` wants.
async fn wait_config(
    cluster: &ProcessCluster,
    gpid: Gpid,
    what: &str,
    check: impl Fn(&PartitionConfig) -> bool,
) -> PartitionConfig {
    wait_until(what, Duration::from_secs(60), || async {
        let config = partition(cluster, gpid).await;
        if check(&config) {
            Ok(config)
        } else {
            Err(format!("{config:?}"))
        }
    })
    .await
}

fn balance(cluster: &ProcessCluster, gpid: Gpid, kind: &str, from: NodeAddr, to: NodeAddr) -> aerie_tests::ShellOutput {
    cluster.shell_exec(&format!("balance -g {gpid} -p {kind} -f {from} -t {to}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_move_replicas_by_hand_at_steady() {
    let cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 4,
        settings: settings(),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("moves", 8, 3).await.unwrap();
    let table = admin.table("moves").await.unwrap();
    for i in 0..300 {
        table
            .set(format!("user{i}").as_bytes(), b"name", format!("v{i}").as_bytes(), 0)
            .await
            .unwrap();
    }

    // move_pri: the primary and a secondary swap roles, in two ballot steps.
    let gpid = Gpid::new(1, 0);
    let before = partition(&cluster, gpid).await;
    let (old_primary, new_primary) = (before.primary.unwrap(), before.secondaries[0]);
    let out = balance(&cluster, gpid, "move_pri", old_primary, new_primary);
    assert!(out.success, "{out:?}");
    assert!(out.stdout.contains("send balance proposal result: ERR_OK"), "{out:?}");
    let after = wait_config(&cluster, gpid, "move_pri to finish", |c| {
        c.primary == Some(new_primary) && c.secondaries.contains(&old_primary)
    })
    .await;
    assert_eq!(after.ballot, before.ballot + 2, "downgrade, then upgrade");

    // copy_sec: a secondary moves to the node that did not serve the partition.
    let fourth = *cluster.replica_addrs.iter().find(|n| !after.is_member(**n)).unwrap();
    let leaving = after.secondaries.iter().copied().find(|s| *s != old_primary).unwrap();
    let out = balance(&cluster, gpid, "copy_sec", leaving, fourth);
    assert!(out.success, "{out:?}");
    let copied = wait_config(&cluster, gpid, "copy_sec to finish", |c| {
        c.secondaries.contains(&fourth) && !c.is_member(leaving) && c.replica_count() == 3
    })
    .await;
    assert_eq!(copied.primary, Some(new_primary), "the primary stays");

    // copy_pri: the primary of another partition moves to a node that did not serve it.
    let other = Gpid::new(1, 1);
    let config = partition(&cluster, other).await;
    let from = config.primary.unwrap();
    let to = *cluster.replica_addrs.iter().find(|n| !config.is_member(**n)).unwrap();
    let out = balance(&cluster, other, "copy_pri", from, to);
    assert!(out.success, "{out:?}");
    wait_config(&cluster, other, "copy_pri to finish", |c| {
        c.primary == Some(to) && !c.is_member(from) && c.replica_count() == 3
    })
    .await;

    // Invalid requests are refused, with the reason.
    let config = partition(&cluster, other).await;
    let primary = config.primary.unwrap();
    let secondary = config.secondaries[0];
    let refused = [
        (
            format!("balance -g 1.99 -p move_pri -f {primary} -t {secondary}"),
            "ERR_OBJECT_NOT_FOUND",
        ),
        (
            format!("balance -g {other} -p move_pri -f {secondary} -t {primary}"),
            "is not the primary of 1.1",
        ),
        (
            format!("balance -g {other} -p copy_sec -f {secondary} -t 127.0.0.1:1"),
            "is not a replica server of this cluster",
        ),
        (
            format!("balance -g {other} -p copy_sec -f {secondary} -t {primary}"),
            "already serves 1.1",
        ),
        (
            format!("balance -g {other} -p swap -f {primary} -t {secondary}"),
            "unknown move 'swap'",
        ),
        (
            format!("balance -g one -p move_pri -f {primary} -t {secondary}"),
            "gpid",
        ),
    ];
    for (command, reason) in refused {
        let out = cluster.shell_exec(&command);
        assert!(!out.success, "{command} should fail: {out:?}");
        assert!(out.stderr.contains(reason), "{command}: expected '{reason}' in {out:?}");
    }
    assert!(cluster.shell_exec("set_meta_level lively").success);
    let out = balance(&cluster, other, "move_pri", primary, secondary);
    assert!(
        !out.success && out.stderr.contains("manual moves need fl_steady"),
        "{out:?}"
    );
    assert!(cluster.shell_exec("set_meta_level steady").success);

    // Everything written is still there, on every replica alike.
    let app = wait_fully_healthy(&admin, "moves", Duration::from_secs(60)).await;
    let reader = cluster.client(Duration::from_secs(20)).table("moves").await.unwrap();
    for i in 0..300 {
        let value = reader.get(format!("user{i}").as_bytes(), b"name").await.unwrap();
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_bytes()), "user{i}");
    }
    assert_replicas_identical(&admin, &app).await;
}
