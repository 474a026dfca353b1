use super::*;
use aerie_common::Gpid;
use aerie_proto::meta::{AppInfo, AppState, AppStatus, PartitionConfig};
use aerie_proto::replica::{ReplicaInfo, ReplicaStatus};
use std::collections::BTreeMap;

fn addr(port: u16) -> NodeAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn table(app_id: u32, name: &str, primaries: &[u16]) -> AppState {
    AppState {
        info: AppInfo {
            app_id,
            app_name: name.to_string(),
            status: AppStatus::Available,
            partition_count: primaries.len() as u32,
            max_replica_count: 3,
            create_time_secs: 0,
            drop_time_secs: None,
            envs: Default::default(),
        },
        partitions: primaries
            .iter()
            .enumerate()
            .map(|(pidx, p)| PartitionConfig {
                primary: Some(addr(*p)),
                ..PartitionConfig::empty(
                    Gpid {
                        app_id,
                        pidx: pidx as u32,
                    },
                    3,
                )
            })
            .collect(),
    }
}

fn info(app: &AppState, pidx: u32, puts: u64, gets: u64, bytes: u64) -> ReplicaInfo {
    ReplicaInfo {
        gpid: Gpid {
            app_id: app.info.app_id,
            pidx,
        },
        app_name: app.info.app_name.clone(),
        app: app.info.clone(),
        config_primary: None,
        config_secondaries: Vec::new(),
        status: ReplicaStatus::Primary,
        ballot: 1,
        last_prepared: 0,
        last_committed: 0,
        last_applied: 0,
        durable_committed: 0,
        data_dir: "default".into(),
        data_bytes: bytes,
        file_count: 2,
        op_counts: [("put".to_string(), puts), ("get".to_string(), gets)]
            .into_iter()
            .collect(),
        read_bytes: 0,
        write_bytes: 0,
        broken: None,
    }
}

#[test]
fn each_partition_counts_what_its_primary_served_and_tables_add_up() {
    let a = table(1, "a", &[1, 2]);
    let b = table(2, "b", &[2]);
    let mut reported = BTreeMap::new();
    reported.insert((addr(1), Gpid { app_id: 1, pidx: 0 }), info(&a, 0, 10, 5, 1024 * 1024));
    reported.insert((addr(2), Gpid { app_id: 1, pidx: 1 }), info(&a, 1, 3, 1, 1024 * 1024));
    // A secondary's replica of the same partition does not count.
    reported.insert((addr(2), Gpid { app_id: 1, pidx: 0 }), info(&a, 0, 99, 99, 0));
    let tables = [a, b];
    let stats = Sampler::default().sample(&tables, &reported, 0).0;
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].partitions[0].counts[2], 10, "PUT of 1.0 from its primary");
    assert!(
        stats[1].partitions[0].primary.is_none(),
        "2.0's primary reported nothing"
    );

    let text = report(&stats, false, false).render_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[1].starts_with("app") && lines[1].contains("MULTI_DEL") && lines[1].contains("storage_mb"));
    let row = |name: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap();
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("a")[1..4], ["6", "0", "13"], "GET, MULTI_GET, PUT of table a");
    assert_eq!(row("a")[10..], ["2.00", "4"]);
    assert_eq!(row("(total)")[3], "13");
    assert!(text.contains("2.0"), "the unreached partition is named: {text}");

    let text = report(&stats[..1], true, false).render_text();
    assert!(
        !text.contains("hot_partitions"),
        "hot partitions come from a collector: {text}"
    );
    assert!(text.contains("pidx"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with('0') || l.starts_with('1'))
            .count(),
        2,
        "{text}"
    );
}

#[test]
fn a_collector_report_adds_rates_and_hot_partitions() {
    use aerie_proto::collector::{HotKind, HotPartition};
    let a = table(1, "a", &[1, 2]);
    let mut stats = Sampler::default().sample(&[a], &BTreeMap::new(), 0).0;
    stats[0].partitions[1].qps[2] = 120.0;
    stats[0].partitions[1].qps[0] = 30.0;
    stats[0].hot.push(HotPartition {
        partition_index: 1,
        kind: HotKind::Write,
        score: 3,
        rounds: 4,
        qps: 120.0,
    });
    let text = report(&stats, true, true).render_text();
    assert!(
        text.contains("write_qps") && text.contains("[hot_partitions]"),
        "{text}"
    );
    let hot_line = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(
        hot_line.split_whitespace().collect::<Vec<_>>(),
        ["1", "write", "120.0", "3", "4"]
    );
    let total: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("(total)"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(total[10..12], ["30.0", "120.0"], "read and write QPS: {text}");
}
