//! Scale out, as the runbook does it: two replica servers join a three-node cluster while clients
//! write. At level steady they show ALIVE with no replica and the balancer only counts; the dry run
//! shows its plan; at lively the cluster converges until, per table, primaries and replicas differ
//! by at most one between nodes, copying exactly as many replicas as balance needs. No acknowledged
//! write is lost, and the node with two data dirs keeps them within one replica of each other.

use aerie_client::Client;
use aerie_common::NodeAddr;
use aerie_proto::meta::{AppState, NodeStatus};
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, balance_moves, balance_moves_given_up, fast_failure_detection,
    wait_until, ProcessCluster, ProcessClusterOptions, WriteLoad,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 32;

fn settings() -> Vec<String> {
    fast_failure_detection(&["meta_server.lb_interval_ms=500"])
}

/// Primaries and replicas of the table per node (every alive node listed).
fn spread(app: &AppState, nodes: &[NodeAddr]) -> BTreeMap<NodeAddr, (u32, u32)> {
    let mut counts: BTreeMap<NodeAddr, (u32, u32)> = nodes.iter().map(|n| (*n, (0, 0))).collect();
    for p in &app.partitions {
        for m in p.members() {
            let c = counts.entry(m).or_default();
            c.0 += (p.primary == Some(m)) as u32;
            c.1 += 1;
        }
    }
    counts
}

fn apart(counts: &BTreeMap<NodeAddr, (u32, u32)>, pick: fn(&(u32, u32)) -> u32) -> u32 {
    counts.values().map(pick).max().unwrap() - counts.values().map(pick).min().unwrap()
}

/// `key : value` of the shell's pair sections.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

async fn balance_count(client: &Client) -> i64 {
    client.cluster_info().await.unwrap().balance_operation_count
}

fn moves_done(meta: NodeAddr, kind: &str) -> f64 {
    balance_moves(meta, kind, "done")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_new_nodes_receive_their_share_under_write_load() {
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 3,
        settings: settings(),
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    admin.create_table("grow", PARTITIONS, 3).await.unwrap();
    let load = WriteLoad::start(cluster.client(Duration::from_secs(5)).table("grow").await.unwrap(), 8);
    load.wait_for_more("writes before scaling out", 500, Duration::from_secs(30))
        .await;

    // Two servers join; one has two data dirs.
    let two_disks = cluster.add_replica(2);
    let one_disk = cluster.add_replica(1);
    cluster.wait_all_alive(&admin, Duration::from_secs(30)).await;
    // At steady the balancer counts what it would do, and does nothing.
    wait_until("the balancer to count", Duration::from_secs(30), || async {
        match balance_count(&admin).await {
            n if n > 0 => Ok(()),
            n => Err(format!("balance_operation_count {n}")),
        }
    })
    .await;
    let nodes = admin.list_nodes().await.unwrap();
    for new in [two_disks, one_disk] {
        let info = nodes.iter().find(|n| n.address == new).unwrap();
        assert_eq!(info.status, NodeStatus::Alive);
        assert_eq!(
            info.primary_count + info.secondary_count,
            0,
            "{new} got replicas at steady"
        );
    }
    let plan = cluster.shell_exec("balance_plan");
    assert!(plan.success, "{plan:?}");
    assert!(
        field(&plan.stdout, "would_act_now").contains("the meta level is fl_steady"),
        "{}",
        plan.stdout
    );
    let planned_copies: u64 = field(&plan.stdout, "copies").parse().unwrap();
    let lower_bound: u64 = field(&plan.stdout, "copies_lower_bound").parse().unwrap();
    assert_eq!(
        planned_copies, lower_bound,
        "the plan copies no more than it must:\n{}",
        plan.stdout
    );
    // 96 replicas over 5 nodes: the three old ones shed 96/5 = 19.2 -> 13 or 12 each.
    assert_eq!(lower_bound, 38, "{}", plan.stdout);

    // Lively: the balancer moves replicas until the table is balanced, under write load.
    let started = Instant::now();
    assert!(cluster.shell_exec("set_meta_level lively").success);
    let all = cluster.replica_addrs.clone();
    let app = wait_until("the cluster to converge", Duration::from_secs(240), || async {
        let app = admin.query_config("grow").await.map_err(|e| e.to_string())?;
        let counts = spread(&app, &all);
        let remaining = balance_count(&admin).await;
        let healthy = app
            .partitions
            .iter()
            .all(|p| p.replica_count() == 3 && p.primary.is_some());
        if remaining == 0 && healthy && apart(&counts, |c| c.0) <= 1 && apart(&counts, |c| c.1) <= 1 {
            Ok(app)
        } else {
            Err(format!("{remaining} operations left, counts {counts:?}"))
        }
    })
    .await;
    let converged = started.elapsed();
    assert!(cluster.shell_exec("set_meta_level steady").success);
    load.wait_for_more("writes after balancing", 200, Duration::from_secs(30))
        .await;
    let acked = load.stop().await;

    let copies = moves_done(cluster.meta_addr, "copy_pri") + moves_done(cluster.meta_addr, "copy_sec");
    let swaps = moves_done(cluster.meta_addr, "move_pri");
    println!(
        "scale out 3 -> 5, {PARTITIONS} partitions: converged in {:.1} s; {swaps} move_pri, {copies} copies (lower bound {lower_bound}); {} writes acknowledged meanwhile",
        converged.as_secs_f64(),
        acked.len()
    );
    assert_eq!(copies as u64, lower_bound, "copies made against the lower bound");
    assert_eq!(
        balance_moves_given_up(cluster.meta_addr),
        0.0,
        "no move was given up: nothing failed"
    );

    let reader = cluster.client(Duration::from_secs(20));
    let table = reader.table("grow").await.unwrap();
    assert_acked_readable(&table, &acked).await;
    let app = reader.query_config("grow").await.unwrap_or(app);
    assert_replicas_identical(&reader, &app).await;

    // The node with two data dirs put half of its replicas on each.
    let stat = cluster.shell_exec(&format!("server_stat -l {two_disks}"));
    let per_dir = stat
        .stdout
        .split("replicas_per_data_dir=")
        .nth(1)
        .and_then(|rest| rest.split([',', '\n']).next())
        .unwrap_or_else(|| panic!("no per-dir counts in {stat:?}"));
    let counts: Vec<i64> = per_dir.split('/').map(|c| c.trim().parse().unwrap()).collect();
    assert_eq!(counts.len(), 2, "{per_dir}");
    assert!((counts[0] - counts[1]).abs() <= 1, "data dirs uneven: {per_dir}");
    assert!(counts.iter().sum::<i64>() >= 19, "{per_dir}");
}
