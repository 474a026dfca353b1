//! `aerie rolling-update` restarts every process of a cluster (four replica servers, the metas, the
//! collector) through a local restart template while clients read and write every partition with a
//! 1 s timeout: not one request fails, every acknowledged write stays readable, every table ends
//! fully healthy with identical replicas, nothing is copied from a checkpoint (each restarted
//! server's replicas come back from its own disk and learn only the writes they missed), and the
//! meta level is restored. The Pegasus "simplified" procedure (a plain restart of each server, no
//! migration) is run on the same cluster for comparison, and its failed requests are recorded.
//!
//! On three metas over ZooKeeper, an interrupted roll resumes where it stopped, `--abort` undoes
//! one, and the leader is restarted last; then a node's maintenance survives a SIGKILL of the meta
//! leader, and once its bound has passed with the node still down, the cure replaces its replicas.

use aerie_common::{MetaLevel, NodeAddr};
use aerie_tests::{
    assert_acked_readable, assert_replicas_identical, learned_by_source, wait_fully_healthy, wait_until,
    zookeeper_settings, ProcessCluster, ProcessClusterOptions, RollOptions, RollOutcome, TestZookeeper, WriteLoad,
};
use std::time::{Duration, Instant};

const TABLE: &str = "roll";
const ROLL_TIMEOUT: Duration = Duration::from_secs(900);

fn options(settings: Vec<String>, meta_servers: usize) -> ProcessClusterOptions {
    let mut all = vec![
        "replication.fd_beacon_interval_seconds=1".to_string(),
        "replication.prepare_timeout_ms=1000".to_string(),
    ];
    all.extend(settings);
    ProcessClusterOptions {
        replica_servers: 4,
        meta_servers,
        settings: all,
        ..Default::default()
    }
}

async fn start(cluster: &ProcessCluster) {
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    admin.create_table(TABLE, 8, 3).await.unwrap();
    wait_fully_healthy(&admin, TABLE, Duration::from_secs(60)).await;
}

/// Runs the roll on a blocking section of the runtime, so that the client load goes on.
fn roll(cluster: &mut ProcessCluster, args: &[&str], interrupt_at_restart: Option<usize>) -> RollOutcome {
    let options = RollOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        interrupt_at_restart,
    };
    tokio::task::block_in_place(|| cluster.rolling_update(&options, ROLL_TIMEOUT))
}

/// Checkpoint bytes learned over the roll: read before each restart, plus what each server learned since.
fn checkpoint_bytes(cluster: &ProcessCluster, outcome: &RollOutcome) -> (f64, f64) {
    let (mut checkpoint, mut log) = (
        outcome.checkpoint_bytes_before_restart,
        outcome.log_bytes_before_restart,
    );
    for node in &cluster.replica_addrs {
        let (c, l) = learned_by_source(*node);
        checkpoint += c;
        log += l;
    }
    (checkpoint, log)
}

async fn in_maintenance(cluster: &ProcessCluster) -> Vec<NodeAddr> {
    let nodes = cluster.client(Duration::from_secs(10)).list_nodes().await.unwrap();
    nodes
        .into_iter()
        .filter(|n| n.maintenance_until_secs.is_some())
        .map(|n| n.address)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_fails_no_request_and_copies_nothing_where_a_plain_restart_fails_some() {
    let mut cluster = ProcessCluster::start(options(Vec::new(), 1));
    start(&cluster).await;
    let admin = cluster.client(Duration::from_secs(20));
    // The collector creates its probe table: once every replica server is alive, so that the table
    // is placed on all of them (created earlier, the balancer would copy replicas to the late ones,
    // and those copies would count as the roll's).
    let collector = cluster.start_collector();
    wait_fully_healthy(&admin, "__detect", Duration::from_secs(60)).await;
    admin.set_meta_level(MetaLevel::Lively).await.unwrap();
    let collector_arg = collector.to_string();

    // It refuses, with the reason, when the cluster is not ready.
    let busy = cluster.replica_addrs[2];
    assert!(cluster.shell_exec(&format!("node_maintenance -n {busy} --on")).success);
    let refused = roll(&mut cluster, &[], None);
    assert!(!refused.output.success, "{refused:?}");
    assert!(
        refused.output.stderr.contains("not ready for a rolling update")
            && refused
                .output
                .stderr
                .contains(&format!("{busy} is in maintenance already")),
        "{refused:?}"
    );
    assert!(refused.restarted.is_empty());
    assert!(cluster.shell_exec(&format!("node_maintenance -n {busy} --off")).success);

    // The plan, and nothing changes.
    let plan = roll(&mut cluster, &["--dry-run", "--collector", &collector_arg], None);
    assert!(plan.output.success, "{plan:?}");
    for expected in ["pre-flight: ok", " 6. collector", "fl_lively is set to steady"] {
        assert!(plan.output.stdout.contains(expected), "no {expected:?} in {plan:?}");
    }
    assert!(plan.restarted.is_empty());
    assert_eq!(admin.meta_level().await.unwrap().stored, MetaLevel::Lively);

    let client = cluster.client(Duration::from_secs(1));
    let load = WriteLoad::start_with_reads(client.table(TABLE).await.unwrap(), 4);
    load.wait_for_more("requests before the roll", 200, Duration::from_secs(60))
        .await;
    let began = Instant::now();
    let outcome = roll(&mut cluster, &["--collector", &collector_arg], None);
    let took = began.elapsed();
    assert!(outcome.output.success, "{outcome:?}\n{}", cluster.logs(30));
    let mut expected: Vec<NodeAddr> = cluster.replica_addrs.clone();
    expected.sort();
    expected.extend([cluster.meta_addr, collector]);
    assert_eq!(outcome.restarted, expected, "every process restarted once, in order");
    load.wait_for_more("requests after the roll", 200, Duration::from_secs(60))
        .await;
    let (failed, errors, reads) = (load.failed(), load.errors(), load.reads());
    let acked = load.stop().await;
    eprintln!(
        "rolling update: {} processes in {:.1} s; {} writes and {reads} reads acknowledged, {failed} failed",
        outcome.restarted.len(),
        took.as_secs_f64(),
        acked.len()
    );
    assert_eq!(failed, 0, "requests failed during the rolling update: {errors:?}");
    assert_acked_readable(
        &cluster.client(Duration::from_secs(30)).table(TABLE).await.unwrap(),
        &acked,
    )
    .await;
    let app = wait_fully_healthy(&admin, TABLE, Duration::from_secs(60)).await;
    assert_replicas_identical(&admin, &app).await;
    let (checkpoint, log) = checkpoint_bytes(&cluster, &outcome);
    eprintln!("learned over the roll: {checkpoint} bytes from checkpoints, {log} from logs and memory");
    assert_eq!(
        checkpoint, 0.0,
        "a restarted server's replicas were copied, not reopened"
    );
    assert_eq!(
        admin.meta_level().await.unwrap().stored,
        MetaLevel::Lively,
        "level restored"
    );
    assert!(in_maintenance(&cluster).await.is_empty());
    assert!(
        !cluster.roll_progress_file().exists(),
        "the progress file is removed at the end"
    );
    wait_fully_healthy(&admin, TABLE, Duration::from_secs(60)).await;

    // The simplified procedure on the same cluster: restart each replica server, wait for health.
    admin.set_meta_level(MetaLevel::Steady).await.unwrap();
    let load = WriteLoad::start_with_reads(client.table(TABLE).await.unwrap(), 4);
    load.wait_for_more("requests before the plain restarts", 200, Duration::from_secs(60))
        .await;
    for i in 0..cluster.replicas.len() {
        tokio::task::block_in_place(|| cluster.replicas[i].restart_clean(Duration::from_secs(60)));
        cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
        wait_fully_healthy(&admin, TABLE, Duration::from_secs(120)).await;
    }
    load.wait_for_more("requests after the plain restarts", 200, Duration::from_secs(60))
        .await;
    let (plain_failed, plain_errors) = (load.failed(), load.errors());
    let acked = load.stop().await;
    eprintln!(
        "simplified procedure: {plain_failed} requests failed (rolling update: {failed}); first errors: {:?}",
        &plain_errors[..plain_errors.len().min(3)]
    );
    assert_acked_readable(
        &cluster.client(Duration::from_secs(30)).table(TABLE).await.unwrap(),
        &acked,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_metas_an_interrupted_roll_resumes_or_is_aborted_and_the_leader_goes_last() {
    let zk = TestZookeeper::start();
    let mut settings = zookeeper_settings(&zk.hosts(), "/aerie/t53", 3000);
    settings.push("meta_server.replica_assign_delay_ms_for_dropouts=5000".to_string());
    let mut cluster = ProcessCluster::start(options(settings, 3));
    start(&cluster).await;
    let admin = cluster.client(Duration::from_secs(20));
    admin.set_meta_level(MetaLevel::Lively).await.unwrap();
    let leader = admin.cluster_info().await.unwrap().primary_meta_server;

    let client = cluster.client(Duration::from_secs(1));
    let load = WriteLoad::start_with_reads(client.table(TABLE).await.unwrap(), 4);
    load.wait_for_more("requests before the roll", 200, Duration::from_secs(60))
        .await;

    // Interrupted at the second server's restart: its replicas are closed, it is in maintenance.
    let first = roll(&mut cluster, &[], Some(2));
    assert!(!first.output.success, "{first:?}");
    assert_eq!(first.restarted.len(), 1);
    let progress = std::fs::read_to_string(cluster.roll_progress_file()).unwrap();
    let mut sorted = cluster.replica_addrs.clone();
    sorted.sort();
    assert!(progress.contains(&format!("replica {} done", sorted[0])), "{progress}");
    assert!(
        progress.contains(&format!("replica {} closed", sorted[1])),
        "{progress}"
    );
    assert!(progress.contains("level fl_lively"), "{progress}");
    assert_eq!(in_maintenance(&cluster).await, vec![sorted[1]]);

    // Run again: it resumes with the restart, and goes on to the end, the leader last.
    let resumed = roll(&mut cluster, &[], None);
    assert!(resumed.output.success, "{resumed:?}\n{}", cluster.logs(30));
    assert!(
        resumed.output.stdout.contains("resuming the roll") && resumed.output.stdout.contains("1 of 7 processes done"),
        "{resumed:?}"
    );
    assert_eq!(resumed.restarted.len(), 6, "{resumed:?}");
    assert_eq!(&resumed.restarted[..3], &sorted[1..]);
    assert_eq!(*resumed.restarted.last().unwrap(), leader, "the leader restarts last");
    load.wait_for_more("requests after the roll", 200, Duration::from_secs(60))
        .await;
    assert_eq!(admin.meta_level().await.unwrap().stored, MetaLevel::Lively);
    assert!(in_maintenance(&cluster).await.is_empty());

    // Interrupted again at its first restart, then undone: that server restarts, maintenance ends,
    // the level comes back, the progress file goes.
    let second = roll(&mut cluster, &["--skip-metas"], Some(1));
    assert!(!second.output.success);
    assert_eq!(admin.meta_level().await.unwrap().stored, MetaLevel::Steady);
    let aborted = roll(&mut cluster, &["--abort"], None);
    assert!(aborted.output.success, "{aborted:?}");
    assert_eq!(aborted.restarted, vec![sorted[0]], "the closed server is restarted");
    assert!(aborted.output.stdout.contains("rolling update aborted"), "{aborted:?}");
    assert_eq!(admin.meta_level().await.unwrap().stored, MetaLevel::Lively);
    assert!(in_maintenance(&cluster).await.is_empty());
    assert!(!cluster.roll_progress_file().exists());
    let again = roll(&mut cluster, &["--abort"], None);
    assert!(
        !again.output.success && again.output.stderr.contains("no rolling update to abort"),
        "{again:?}"
    );

    load.wait_for_more("requests after the abort", 200, Duration::from_secs(60))
        .await;
    let (failed, errors) = (load.failed(), load.errors());
    let acked = load.stop().await;
    assert_eq!(failed, 0, "requests failed: {errors:?}");
    assert_acked_readable(
        &cluster.client(Duration::from_secs(30)).table(TABLE).await.unwrap(),
        &acked,
    )
    .await;
    let app = wait_fully_healthy(&admin, TABLE, Duration::from_secs(120)).await;
    assert_replicas_identical(&admin, &app).await;

    // A maintenance outlives the meta leader (it is in the meta store)...
    let node = sorted[3];
    assert!(
        cluster
            .shell_exec(&format!("node_maintenance -n {node} --on --seconds 20"))
            .success
    );
    let leader = admin.cluster_info().await.unwrap().primary_meta_server;
    cluster.process_at(leader).unwrap().kill();
    wait_until("another meta to lead", Duration::from_secs(60), || async {
        match admin.cluster_info().await {
            Ok(info) if info.primary_meta_server != leader => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let until = wait_until(
        "the new leader to list the maintenance",
        Duration::from_secs(30),
        || async {
            let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
            nodes
                .iter()
                .find(|n| n.address == node)
                .and_then(|n| n.maintenance_until_secs)
                .ok_or_else(|| format!("{nodes:?}"))
        },
    )
    .await;
    // ...and ends at its bound: with the node down, its replicas are then copied elsewhere.
    cluster.process_at(node).unwrap().kill();
    let app = wait_until(
        "the cure to replace the replicas of the stopped node",
        Duration::from_secs(180),
        || async {
            let app = admin.query_config(TABLE).await.map_err(|e| e.to_string())?;
            let healthy = app
                .partitions
                .iter()
                .all(|c| c.replica_count() == 3 && !c.is_member(node));
            if healthy {
                Ok(app)
            } else {
                Err(format!("{:?}", app.partitions))
            }
        },
    )
    .await;
    let now = aerie_common::clock::wall_secs_now();
    assert!(
        now >= until,
        "replaced at {now}, before the maintenance ended at {until}"
    );
    assert!(in_maintenance(&cluster).await.is_empty());
    assert_replicas_identical(&admin, &app).await;
}
