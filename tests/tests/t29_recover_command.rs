//! `recover` by hand, as after losing the ZooKeeper data: the meta is replaced by one on an empty
//! ZooKeeper with `recover_from_replica_server = true`. It waits and says so; a recovery naming a
//! node that does not answer fails with a clear report unless told to skip bad nodes; then it
//! rebuilds both tables (every partition's last configuration, at its ballot), serves them, and
//! refuses a second recovery. Every record is readable.

use aerie_tests::{
    fast_failure_detection, free_port, http_get, wait_fully_healthy, wait_until, zookeeper_settings, AerieProcess,
    ProcessCluster, ProcessClusterOptions, TestZookeeper,
};
use std::time::Duration;

const RECORDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_rebuilds_the_map_from_the_replica_servers() {
    let (old, new) = (TestZookeeper::start(), TestZookeeper::start());
    let mut settings = fast_failure_detection(&[]);
    settings.extend(zookeeper_settings(&old.hosts(), "/aerie/t29", 3000));
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        replica_servers: 3,
        settings,
        ..Default::default()
    });
    let admin = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
    for (name, partitions) in [("a", 4), ("b", 8)] {
        admin.create_table(name, partitions, 3).await.unwrap();
        wait_fully_healthy(&admin, name, Duration::from_secs(60)).await;
        let table = admin.table(name).await.unwrap();
        for i in 0..RECORDS {
            table
                .set(format!("k{i}").as_bytes(), b"", name.as_bytes(), 0)
                .await
                .unwrap();
        }
    }
    let before = admin.query_config("b").await.unwrap();

    // The meta and its ZooKeeper data are gone; the replica servers' leases run out.
    cluster.metas[0].kill();
    for node in cluster.replica_addrs.clone() {
        wait_until(
            "the replica server to lose its lease",
            Duration::from_secs(30),
            || async move {
                match http_get(node, "/health") {
                    (200, body) => Err(body),
                    _ => Ok(()),
                }
            },
        )
        .await;
    }
    let mut args = cluster.metas[0].args().to_vec();
    for setting in [
        format!("zookeeper.hosts_list={}", new.hosts()),
        "meta_server.recover_from_replica_server=true".to_string(),
    ] {
        args.extend(["--set".to_string(), setting]);
    }
    let _recovering = AerieProcess::start("meta-recovering", args, cluster.data_dir().join("meta-recovering.log"));

    let waiting = wait_until("the new meta to wait for recover", Duration::from_secs(30), || async {
        let ls = cluster.shell_exec("ls");
        if ls.stderr.contains("waits for `recover") {
            Ok(ls.stderr)
        } else {
            Err(format!("{}{}", ls.stdout, ls.stderr))
        }
    })
    .await;
    assert!(waiting.contains("recover_from_replica_server"), "{waiting}");

    let nodes: Vec<String> = cluster.replica_addrs.iter().map(|a| a.to_string()).collect();
    let dead = format!("127.0.0.1:{}", free_port());
    let with_dead = format!("{},{dead}", nodes.join(","));
    let refused = cluster.shell_exec(&format!("recover -s {with_dead}"));
    assert!(!refused.success);
    let report = format!("{}{}", refused.stdout, refused.stderr);
    assert!(report.contains("Recover result: ERR_NETWORK_FAILURE"), "{report}");
    assert!(
        report.contains(&dead) && report.contains("--skip_bad_nodes"),
        "{report}"
    );

    let node_file = cluster.data_dir().join("recover_node_list");
    std::fs::write(&node_file, format!("# replica servers\n{}\n{dead}\n", nodes.join("\n"))).unwrap();
    let recovered = cluster.shell_exec(&format!("recover -f {} --skip_bad_nodes", node_file.display()));
    assert!(recovered.success, "{}{}", recovered.stdout, recovered.stderr);
    assert!(
        recovered
            .stdout
            .contains("recovered 2 tables (a, b) with 12 partitions"),
        "{}",
        recovered.stdout
    );
    assert!(
        recovered.stdout.contains(&format!("{dead}: skipped")),
        "{}",
        recovered.stdout
    );
    assert!(
        recovered.stdout.trim_end().ends_with("Recover result: ERR_OK"),
        "{}",
        recovered.stdout
    );

    let again = cluster.shell_exec(&format!("recover -s {}", nodes.join(",")));
    assert!(!again.success);
    assert!(
        again.stderr.contains("already holds the cluster map"),
        "{}",
        again.stderr
    );

    let after = wait_fully_healthy(&admin, "b", Duration::from_secs(60)).await;
    for (was, now) in before.partitions.iter().zip(&after.partitions) {
        // Every replica answered: each partition's last configuration comes back as it was.
        assert_eq!(
            (now.ballot, now.primary, &now.secondaries),
            (was.ballot, was.primary, &was.secondaries),
            "{}",
            was.gpid
        );
    }
    wait_fully_healthy(&admin, "a", Duration::from_secs(60)).await;
    for name in ["a", "b"] {
        let table = admin.table(name).await.unwrap();
        for i in 0..RECORDS {
            let value = table.get(format!("k{i}").as_bytes(), b"").await.unwrap();
            assert_eq!(value.as_deref(), Some(name.as_bytes()), "{name} k{i}");
        }
    }
}
