//! Table statistics from what the replica servers report: each partition as its primary counted it
//! (requests by kind since its replica opened, bytes, storage), rates against the previous sample
//! of the same primary, and the growth since then that the collector adds to its counters.

use aerie_common::{Gpid, NodeAddr};
use aerie_proto::collector::{PartitionStat, TableStat, REQUEST_KINDS};
use aerie_proto::meta::AppState;
use aerie_proto::replica::ReplicaInfo;
use std::collections::{BTreeMap, HashMap};

/// What each replica server reported, by (server, partition).
pub type Reported = BTreeMap<(NodeAddr, Gpid), ReplicaInfo>;

/// What a table's primaries served since the previous sample.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Growth {
    pub counts: [u64; 9],
    pub read_bytes: u64,
    pub write_bytes: u64,
}

#[derive(Debug, Clone)]
struct Sample {
    primary: NodeAddr,
    counts: [u64; 9],
    read_bytes: u64,
    write_bytes: u64,
    at_ms: u64,
}

/// Remembers each partition's last sample, to turn counts into rates.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: HashMap<Gpid, Sample>,
}

fn counts_of(info: &ReplicaInfo) -> [u64; 9] {
    let mut counts = [0; 9];
    for (i, (_, kind)) in REQUEST_KINDS.iter().enumerate() {
        counts[i] = info.op_counts.get(*kind).copied().unwrap_or(0);
    }
    counts
}

impl Sampler {
    /// Every partition of `tables` as its primary reported it at `now_ms`, and each table's growth.
    /// A partition whose primary is unknown or did not report has `primary: None` and zeros; one
    /// whose previous sample came from another primary (or from before its replica reopened) has
    /// zero rates and no growth this time.
    pub fn sample(
        &mut self,
        tables: &[AppState],
        reported: &Reported,
        now_ms: u64,
    ) -> (Vec<TableStat>, BTreeMap<String, Growth>) {
        let mut stats = Vec::new();
        let mut growth = BTreeMap::new();
        let mut seen = HashMap::new();
        for table in tables {
            let table_growth: &mut Growth = growth.entry(table.info.app_name.clone()).or_default();
            let mut partitions = Vec::new();
            for config in &table.partitions {
                let info = config
                    .primary
                    .and_then(|p| reported.get(&(p, config.gpid)).map(|i| (p, i)));
                let mut stat = PartitionStat {
                    gpid: config.gpid,
                    primary: None,
                    counts: [0; 9],
                    qps: [0.0; 9],
                    read_bytes: 0,
                    write_bytes: 0,
                    read_bytes_per_sec: 0.0,
                    write_bytes_per_sec: 0.0,
                    storage_bytes: 0,
                    file_count: 0,
                };
                if let Some((primary, info)) = info {
                    let now = Sample {
                        primary,
                        counts: counts_of(info),
                        read_bytes: info.read_bytes,
                        write_bytes: info.write_bytes,
                        at_ms: now_ms,
                    };
                    stat.primary = Some(primary);
                    stat.counts = now.counts;
                    stat.read_bytes = now.read_bytes;
                    stat.write_bytes = now.write_bytes;
                    stat.storage_bytes = info.data_bytes;
                    stat.file_count = info.file_count;
                    if let Some(before) = self.previous.get(&config.gpid).filter(|b| continues(b, &now)) {
                        let secs = (now_ms - before.at_ms) as f64 / 1000.0;
                        for i in 0..9 {
                            let d = now.counts[i] - before.counts[i];
                            table_growth.counts[i] += d;
                            stat.qps[i] = d as f64 / secs;
                        }
                        let (r, w) = (now.read_bytes - before.read_bytes, now.write_bytes - before.write_bytes);
                        table_growth.read_bytes += r;
                        table_growth.write_bytes += w;
                        stat.read_bytes_per_sec = r as f64 / secs;
                        stat.write_bytes_per_sec = w as f64 / secs;
                    }
                    seen.insert(config.gpid, now);
                }
                partitions.push(stat);
            }
            stats.push(TableStat {
                app_id: table.info.app_id,
                name: table.info.app_name.clone(),
                partitions,
                hot: Vec::new(),
            });
        }
        self.previous = seen;
        (stats, growth)
    }
}

/// Whether `now` counts on from `before`: the same primary, later, and no count went back.
fn continues(before: &Sample, now: &Sample) -> bool {
    before.primary == now.primary
        && now.at_ms > before.at_ms
        && now.read_bytes >= before.read_bytes
        && now.write_bytes >= before.write_bytes
        && before.counts.iter().zip(&now.counts).all(|(b, n)| n >= b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_proto::meta::{AppInfo, AppStatus, PartitionConfig};
    use aerie_proto::replica::ReplicaStatus;

    fn app() -> AppInfo {
        AppInfo {
            app_id: 1,
            app_name: "t".into(),
            status: AppStatus::Available,
            partition_count: 2,
            max_replica_count: 3,
            create_time_secs: 0,
            drop_time_secs: None,
            envs: Default::default(),
        }
    }

    fn table(primaries: &[NodeAddr]) -> AppState {
        AppState {
            info: app(),
            partitions: primaries
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionConfig {
                    primary: Some(*p),
                    ..PartitionConfig::empty(Gpid::new(1, i as u32), 3)
                })
                .collect(),
        }
    }

    fn info(gpid: Gpid, puts: u64, write_bytes: u64) -> ReplicaInfo {
        ReplicaInfo {
            gpid,
            app_name: "t".into(),
            app: app(),
            config_primary: None,
            config_secondaries: Vec::new(),
            status: ReplicaStatus::Primary,
            ballot: 1,
            last_prepared: 0,
            last_committed: 0,
            last_applied: 0,
            durable_committed: 0,
            data_dir: "default".into(),
            data_bytes: 4096,
            file_count: 1,
            op_counts: [("put".to_string(), puts)].into_iter().collect(),
            read_bytes: 0,
            write_bytes,
            broken: None,
        }
    }

    #[test]
    fn rates_and_growth_come_from_the_same_primary_only() {
        let (a, b) = (
            NodeAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 1))),
            NodeAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 2))),
        );
        let mut sampler = Sampler::default();
        let tables = [table(&[a, b])];
        let mut reported = Reported::new();
        reported.insert((a, Gpid::new(1, 0)), info(Gpid::new(1, 0), 10, 100));
        reported.insert((b, Gpid::new(1, 1)), info(Gpid::new(1, 1), 5, 50));
        let (stats, growth) = sampler.sample(&tables, &reported, 1_000);
        assert_eq!(stats[0].partitions[0].counts[2], 10);
        assert_eq!(stats[0].partitions[0].qps[2], 0.0, "no rate from a first sample");
        assert_eq!(growth["t"], Growth::default());

        reported.insert((a, Gpid::new(1, 0)), info(Gpid::new(1, 0), 30, 300));
        reported.insert((b, Gpid::new(1, 1)), info(Gpid::new(1, 1), 2, 20)); // reopened: counts went back
        let (stats, growth) = sampler.sample(&tables, &reported, 11_000);
        assert_eq!(stats[0].partitions[0].qps[2], 2.0);
        assert_eq!(stats[0].partitions[0].write_bytes_per_sec, 20.0);
        assert_eq!(stats[0].partitions[1].qps[2], 0.0);
        assert_eq!(growth["t"].counts[2], 20);
        assert_eq!(growth["t"].write_bytes, 200);
        assert_eq!(stats[0].partitions[1].storage_bytes, 4096);
    }

    #[test]
    fn a_partition_without_a_reporting_primary_is_zero() {
        let a = NodeAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 1)));
        let (stats, _) = Sampler::default().sample(&[table(&[a])], &Reported::new(), 5);
        assert_eq!(stats[0].partitions[0].primary, None);
        assert_eq!(stats[0].partitions[0].counts, [0; 9]);
    }
}
