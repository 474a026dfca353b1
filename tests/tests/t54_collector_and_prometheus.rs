//! The collector and the operator's view, against a real Prometheus. Two meta servers on a real
//! ZooKeeper, four replica servers and a collector run as separate processes; a Prometheus server
//! scrapes every one of them each second with `dashboards/alerts.yml` loaded. The test kills a
//! replica server (the collector's availability for its partitions drops, then recovers), counts
//! exact `app_stat` figures on a quiet table, makes a partition hot, then runs every query of every
//! dashboard panel and every metric of every alert rule against Prometheus, and checks every
//! role's `/metrics` with `promtool check metrics` and the rules with `promtool test rules`.
//! Last, the meta leader dies and the collector restarts: probing goes on.

use aerie_client::Client;
use aerie_common::{partition_index, NodeAddr};
use aerie_proto::collector::{AppStatReport, HotKind, ProbeReport, QueryAppStat, QueryProbes};
use aerie_tests::prometheus::{
    alert_rules, dashboard_queries, metric_names, promtool, promtool_check_metrics, substitute_variables,
    TestPrometheus,
};
use aerie_tests::{
    fast_failure_detection, metrics, wait_fully_healthy, wait_until, zookeeper_settings, ProcessCluster,
    ProcessClusterOptions, TestZookeeper, WriteLoad,
};
use std::time::Duration;

const PROBE_TABLE: &str = "__detect";

async fn probes(client: &Client, collector: NodeAddr) -> Result<ProbeReport, String> {
    client
        .call_node(collector, QueryProbes {})
        .await
        .map_err(|e| e.to_string())
}

async fn app_stat(client: &Client, collector: NodeAddr) -> Result<AppStatReport, String> {
    client
        .call_node(collector, QueryAppStat {})
        .await
        .map_err(|e| e.to_string())
}

/// Waits until the collector has probed `more` rounds past `after` and the last one succeeded on
/// every partition; returns the report.
async fn wait_probing(client: &Client, collector: NodeAddr, after: u64, more: u64, what: &str) -> ProbeReport {
    wait_until(what, Duration::from_secs(90), || async {
        let report = probes(client, collector).await?;
        let failing: Vec<u32> = report
            .partitions
            .iter()
            .filter(|p| p.failures_in_a_row > 0)
            .map(|p| p.partition_index)
            .collect();
        match (
            report.waiting.as_deref(),
            report.rounds >= after + more,
            failing.is_empty(),
        ) {
            (None, true, true) => Ok(report),
            _ => Err(format!(
                "waiting {:?}, rounds {}, failing partitions {failing:?}",
                report.waiting, report.rounds
            )),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_probes_gathers_and_every_dashboard_and_alert_reads_real_metrics() {
    let zk = TestZookeeper::start();
    let mut settings = zookeeper_settings(&zk.hosts(), "/aerie/t54", 3000);
    settings.extend(fast_failure_detection(&[
        "collector.available_detect_interval_seconds=1",
        "collector.available_detect_timeout_ms=1000",
        "collector.available_detect_alert_fail_count=2",
        "collector.app_stat_interval_seconds=1",
        "collector.available_detect_partition_count=8",
    ]));
    let mut cluster = ProcessCluster::start(ProcessClusterOptions {
        meta_servers: 2,
        replica_servers: 4,
        settings,
        ..Default::default()
    });
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(60)).await;
    let collector = cluster.start_collector();
    let prometheus = TestPrometheus::start(&[
        ("aerie-meta", cluster.meta_addrs.clone()),
        ("aerie-replica", cluster.replica_addrs.clone()),
        ("aerie-collector", vec![collector]),
    ]);

    // The collector creates the probe table and starts probing once every partition answers.
    let started = wait_probing(&client, collector, 0, 3, "the collector to probe every partition").await;
    assert_eq!(started.partitions.len(), 8);
    let detect = wait_fully_healthy(&client, PROBE_TABLE, Duration::from_secs(60)).await;
    client.create_table("t54", 8, 3).await.unwrap();
    wait_fully_healthy(&client, "t54", Duration::from_secs(60)).await;
    let load = WriteLoad::start_with_reads(client.table("t54").await.unwrap(), 4);
    load.wait_for_more("writes under way", 100, Duration::from_secs(30))
        .await;

    // Kill the replica server that is primary of the most probe partitions.
    let victim = cluster
        .replica_addrs
        .iter()
        .copied()
        .max_by_key(|a| detect.partitions.iter().filter(|p| p.primary == Some(*a)).count())
        .unwrap();
    let victim_partitions: Vec<u32> = detect
        .partitions
        .iter()
        .filter(|p| p.primary == Some(victim))
        .map(|p| p.gpid.pidx)
        .collect();
    assert!(!victim_partitions.is_empty());
    let before = probes(&client, collector).await.unwrap();
    cluster.process_at(victim).unwrap().kill();
    let dropped = wait_until(
        "the collector to see the victim's partitions fail",
        Duration::from_secs(60),
        || async {
            let report = probes(&client, collector).await?;
            let failed: Vec<u32> = report
                .partitions
                .iter()
                .filter(|p| p.failures > before.partitions[p.partition_index as usize].failures)
                .map(|p| p.partition_index)
                .collect();
            match victim_partitions.iter().all(|p| failed.contains(p)) {
                true => Ok(report),
                false => Err(format!("failed so far {failed:?}, victim's {victim_partitions:?}")),
            }
        },
    )
    .await;
    assert!(dropped.availability_1m.unwrap() < 1.0, "{dropped:?}");
    let victim_failed = dropped
        .partitions
        .iter()
        .find(|p| victim_partitions.contains(&p.partition_index))
        .unwrap();
    assert!(
        victim_failed.last_error.is_some() && victim_failed.availability_1m.unwrap() < 1.0,
        "{victim_failed:?}"
    );
    let recovered = wait_probing(
        &client,
        collector,
        dropped.rounds,
        3,
        "probes to succeed again after the cure",
    )
    .await;
    assert!(
        recovered.availability_1m.unwrap() < 1.0,
        "the failures stay in the minute's window"
    );
    assert!(
        cluster
            .process_at(collector)
            .unwrap()
            .log_tail(200)
            .contains("availability probes of a partition keep failing"),
        "a partition failing available_detect_alert_fail_count probes in a row is logged at warn"
    );
    // The dead server returns and learns back (learning and cure metrics move).
    cluster.process_at(victim).unwrap().restart();
    cluster.wait_all_alive(&client, Duration::from_secs(60)).await;
    wait_fully_healthy(&client, "t54", Duration::from_secs(120)).await;
    let acked = load.stop().await;
    assert!(!acked.is_empty());

    // Exact counts on a quiet table, through the collector and through the shell asking it.
    client.create_table("quiet", 4, 3).await.unwrap();
    wait_fully_healthy(&client, "quiet", Duration::from_secs(60)).await;
    let quiet = client.table("quiet").await.unwrap();
    for i in 0..7 {
        quiet.set(format!("q{i}").as_bytes(), b"s", b"value", 0).await.unwrap();
    }
    for i in 0..5 {
        assert!(quiet.get(format!("q{i}").as_bytes(), b"s").await.unwrap().is_some());
    }
    for i in 0..2 {
        quiet.del(format!("q{i}").as_bytes(), b"s").await.unwrap();
    }
    quiet.incr(b"counter", b"n", 3, Default::default()).await.unwrap();
    let quiet_stat = wait_until(
        "the collector's counts of the quiet table",
        Duration::from_secs(30),
        || async {
            let report = app_stat(&client, collector).await?;
            let table = report
                .tables
                .iter()
                .find(|t| t.name == "quiet")
                .ok_or("no quiet table yet")?;
            let mut counts = [0u64; 9];
            for p in &table.partitions {
                for (c, n) in counts.iter_mut().zip(p.counts) {
                    *c += n;
                }
            }
            // GET, MULTI_GET, PUT, MULTI_PUT, DEL, MULTI_DEL, INCR, CAS, SCAN
            match counts == [5, 0, 7, 0, 2, 0, 1, 0, 0] {
                true => Ok(table.clone()),
                false => Err(format!("counts {counts:?}")),
            }
        },
    )
    .await;
    assert!(quiet_stat.partitions.iter().all(|p| p.primary.is_some()));
    assert!(quiet_stat.partitions.iter().map(|p| p.write_bytes).sum::<u64>() >= 7 * 8);
    let shell = cluster.shell_exec(&format!("app_stat -c {collector} -a quiet"));
    assert!(shell.success, "{} {}", shell.stdout, shell.stderr);
    let total: Vec<&str> = shell
        .stdout
        .lines()
        .find(|l| l.starts_with("(total)"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        total[1..10],
        ["5", "0", "7", "0", "2", "0", "1", "0", "0"],
        "{}",
        shell.stdout
    );
    assert!(shell.stdout.contains("[hot_partitions]"), "{}", shell.stdout);

    // A hot partition: every write of a table of 8 partitions goes to one hash key.
    client.create_table("hot", 8, 3).await.unwrap();
    wait_fully_healthy(&client, "hot", Duration::from_secs(60)).await;
    let hot = client.table("hot").await.unwrap();
    let hot_pidx = partition_index(b"the-hot-key", b"", 8);
    let writer = tokio::spawn(async move {
        for i in 0u64.. {
            if hot.set(b"the-hot-key", &i.to_be_bytes(), b"v", 0).await.is_err() {
                continue;
            }
        }
    });
    let found = wait_until(
        "the collector to report the hot partition",
        Duration::from_secs(60),
        || async {
            let report = app_stat(&client, collector).await?;
            let table = report
                .tables
                .iter()
                .find(|t| t.name == "hot")
                .ok_or("no hot table yet")?;
            match table
                .hot
                .iter()
                .find(|h| h.partition_index == hot_pidx && h.kind == HotKind::Write)
            {
                Some(h) => Ok(h.clone()),
                None => Err(format!("hot so far: {:?}", table.hot)),
            }
        },
    )
    .await;
    assert!(found.score >= 3 && found.rounds >= 3, "{found:?}");
    wait_until(
        "Prometheus to see the hot partition",
        Duration::from_secs(30),
        || async {
            let result = prometheus.query(r#"aerie_table_hot_partitions{table="hot",kind="write"} == 1"#)?;
            match result.is_empty() {
                false => Ok(()),
                true => Err("not yet".to_string()),
            }
        },
    )
    .await;
    let shell = cluster.shell_exec(&format!("app_stat -c {collector} -a hot"));
    let hot_section = shell
        .stdout
        .split("[hot_partitions]")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        hot_section.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq([hot_pidx.to_string().as_str(), "write"])),
        "{}",
        shell.stdout
    );
    writer.abort();

    // Every panel query returns data, and every metric an alert rule reads exists.
    wait_until(
        "Prometheus to scrape every process",
        Duration::from_secs(60),
        || async {
            let targets = prometheus.targets()?;
            let down: Vec<&(String, String)> = targets.iter().filter(|(_, health)| health != "up").collect();
            match targets.len() == 7 && down.is_empty() {
                true => Ok(()),
                false => Err(format!("targets {targets:?}")),
            }
        },
    )
    .await;
    let queries = dashboard_queries();
    assert!(queries.len() >= 50, "{} panel queries", queries.len());
    for (board, title, expr) in &queries {
        let expr = substitute_variables(expr);
        wait_until(
            &format!("{board} / {title}: {expr}"),
            Duration::from_secs(60),
            || async {
                let result = prometheus.query(&expr)?;
                match result.is_empty() {
                    false => Ok(()),
                    true => Err("no data".to_string()),
                }
            },
        )
        .await;
    }
    let rules = alert_rules();
    assert_eq!(rules.len(), 12);
    assert_eq!(prometheus.rules_loaded().unwrap(), 12, "{}", prometheus.log());
    for (alert, expr) in &rules {
        prometheus.query(expr).unwrap_or_else(|e| panic!("{alert}: {e}"));
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{alert} reads no metric: {expr}");
        for name in names {
            wait_until(
                &format!("{alert}: series of {name}"),
                Duration::from_secs(30),
                || async {
                    match prometheus.query(&format!("count({name})"))?.is_empty() {
                        false => Ok(()),
                        true => Err("no series".to_string()),
                    }
                },
            )
            .await;
        }
    }
    // The dead replica server fired nothing that still holds: no node is dead now.
    assert!(prometheus
        .query("(aerie_meta_node_alive == 0) and on(instance) (aerie_meta_leader == 1)")
        .unwrap()
        .is_empty());

    // /metrics is clean for Prometheus on every role; the rules and their unit tests pass.
    for addr in cluster
        .meta_addrs
        .iter()
        .chain(&cluster.replica_addrs)
        .chain([&collector])
    {
        let text = metrics(*addr);
        assert!(
            text.contains("process_resident_memory_bytes"),
            "{addr} exports process metrics"
        );
        let complaints = promtool_check_metrics(&text);
        assert!(complaints.trim().is_empty(), "{addr}: {complaints}");
    }
    let replica_text = metrics(cluster.replica_addrs[0]);
    for series in [
        "aerie_rocksdb_size_bytes{kind=\"sst\"",
        "aerie_rocksdb_size_bytes{kind=\"pending_compaction\"",
        "aerie_rocksdb_write_stall_seconds_total",
        "aerie_rocksdb_block_cache_lookups_total",
        "aerie_replica_disk_bytes",
    ] {
        assert!(replica_text.contains(series), "{series} missing");
    }
    assert!(promtool(&["check", "rules", "alerts.yml"]).contains("SUCCESS: 12 rules found"));
    promtool(&["test", "rules", "alerts_test.yml"]);

    // The meta leader dies: the collector follows the new leader and goes on probing.
    let leader = client.cluster_info().await.unwrap().primary_meta_server;
    let at_kill = probes(&client, collector).await.unwrap();
    cluster.process_at(leader).unwrap().kill();
    wait_until("another meta to lead", Duration::from_secs(60), || async {
        match client.cluster_info().await {
            Ok(info) if info.primary_meta_server != leader => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_probing(
        &client,
        collector,
        at_kill.rounds,
        5,
        "probing after the meta leader's death",
    )
    .await;

    // The collector restarts: it finds its probe table (not a new one) and probes again.
    let app_id = client.query_config(PROBE_TABLE).await.unwrap().info.app_id;
    cluster.process_at(collector).unwrap().kill();
    cluster.process_at(collector).unwrap().restart();
    let again = wait_probing(&client, collector, 0, 3, "probing after the collector's restart").await;
    assert_eq!(again.partitions.len(), 8);
    assert_eq!(client.query_config(PROBE_TABLE).await.unwrap().info.app_id, app_id);
    let tables = client.list_tables(false).await.unwrap();
    assert_eq!(tables.iter().filter(|t| t.info.app_name == PROBE_TABLE).count(), 1);
    let stat = cluster.shell_exec(&format!("server_stat -l {collector}"));
    assert!(
        stat.success
            && stat.stdout.contains("probe table __detect")
            && stat.stdout.contains("availability 1m 100.000%"),
        "{} {}",
        stat.stdout,
        stat.stderr
    );
}
