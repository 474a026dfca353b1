//! `app_stat [-a NAME] [-c COLLECTOR]`: the client requests each partition's primary served (it
//! serves every read and write of its partition) since its replica opened, with its storage, per
//! table or, for one table, per partition, and a total row. With `-c` the figures come from the
//! collector's last gathering and add rates (QPS and bytes per second over its interval) and, for
//! one table, its hot partitions; without, the shell asks the primaries itself. A partition whose
//! primary did not answer counts as zero and is named under `unreached`.

use super::admin::emit;
use super::commands::OutputArgs;
use super::report::Report;
use super::Shell;
use aerie_actors::collector::gather::gather;
use aerie_actors::collector::table_stats::Sampler;
use aerie_common::NodeAddr;
use aerie_proto::collector::{PartitionStat, QueryAppStat, TableStat, REQUEST_KINDS};

/// One row: the request counts in [`REQUEST_KINDS`] order, rates, bytes and SST files.
#[derive(Debug, Default, Clone, PartialEq)]
struct Row {
    counts: [u64; 9],
    read_qps: f64,
    write_qps: f64,
    read_bytes_per_sec: f64,
    write_bytes_per_sec: f64,
    storage_bytes: u64,
    file_count: u64,
}

impl Row {
    fn add(&mut self, p: &PartitionStat) {
        for (a, b) in self.counts.iter_mut().zip(p.counts) {
            *a += b;
        }
        self.read_qps += p.read_qps();
        self.write_qps += p.write_qps();
        self.read_bytes_per_sec += p.read_bytes_per_sec;
        self.write_bytes_per_sec += p.write_bytes_per_sec;
        self.storage_bytes += p.storage_bytes;
        self.file_count += p.file_count;
    }

    fn merge(&mut self, other: &Row) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.read_qps += other.read_qps;
        self.write_qps += other.write_qps;
        self.read_bytes_per_sec += other.read_bytes_per_sec;
        self.write_bytes_per_sec += other.write_bytes_per_sec;
        self.storage_bytes += other.storage_bytes;
        self.file_count += other.file_count;
    }

    fn cells(&self, first: String, rates: bool) -> Vec<String> {
        let mut row = vec![first];
        row.extend(self.counts.iter().map(u64::to_string));
        if rates {
            row.push(format!("{:.1}", self.read_qps));
            row.push(format!("{:.1}", self.write_qps));
            row.push(format!("{:.1}", self.read_bytes_per_sec / 1024.0));
            row.push(format!("{:.1}", self.write_bytes_per_sec / 1024.0));
        }
        row.push(format!("{:.2}", self.storage_bytes as f64 / (1024.0 * 1024.0)));
        row.push(self.file_count.to_string());
        row
    }
}

/// The report: one row per table (or per partition of the one table asked for) and a total;
/// `rates` adds the collector's rate columns and the hot partitions.
fn report(tables: &[TableStat], per_partition: bool, rates: bool) -> Report {
    let mut rows = Vec::new();
    let mut total = Row::default();
    for table in tables {
        let mut sum = Row::default();
        for p in &table.partitions {
            if per_partition {
                let mut row = Row::default();
                row.add(p);
                rows.push(row.cells(p.gpid.pidx.to_string(), rates));
            }
            sum.add(p);
        }
        if !per_partition {
            rows.push(sum.cells(table.name.clone(), rates));
        }
        total.merge(&sum);
    }
    rows.push(total.cells("(total)".to_string(), rates));
    let mut columns = vec![if per_partition { "pidx" } else { "app" }];
    columns.extend(REQUEST_KINDS.iter().map(|(name, _)| *name));
    if rates {
        columns.extend(["read_qps", "write_qps", "read_kb_s", "write_kb_s"]);
    }
    columns.extend(["storage_mb", "file_count"]);
    let mut report = Report::default();
    report.table("app_stat", &columns, rows);
    let unreached: Vec<String> = tables
        .iter()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.primary.is_none())
        .map(|p| p.gpid.to_string())
        .collect();
    if !unreached.is_empty() {
        report.pairs("unreached", vec![("partitions", unreached.join(","))]);
    }
    if per_partition && rates {
        let hot: Vec<Vec<String>> = tables
            .iter()
            .flat_map(|t| &t.hot)
            .map(|h| {
                vec![
                    h.partition_index.to_string(),
                    h.kind.name().to_string(),
                    format!("{:.1}", h.qps),
                    h.score.to_string(),
                    h.rounds.to_string(),
                ]
            })
            .collect();
        report.table("hot_partitions", &["pidx", "kind", "qps", "score", "rounds"], hot);
    }
    report
}

impl Shell {
    pub(super) fn app_stat(
        &mut self,
        name: Option<&str>,
        collector: Option<NodeAddr>,
        out: &OutputArgs,
    ) -> Result<String, String> {
        let mut tables = match collector {
            Some(addr) => {
                let asked = self.runtime.block_on(self.client.call_node(addr, QueryAppStat {}));
                let stat = asked.map_err(|e| format!("collector {addr}: {e}"))?;
                if stat.gathered_at_ms == 0 {
                    return Err(format!(
                        "collector {addr} has not gathered table statistics yet (it does every {} s)",
                        stat.interval_secs
                    ));
                }
                stat.tables
            }
            None => {
                let (tables, reported, _) = self.block(gather(&self.client))?;
                Sampler::default().sample(&tables, &reported, 0).0
            }
        };
        if let Some(name) = name {
            tables.retain(|t| t.name == name);
            if tables.is_empty() {
                return Err(format!("table {name} does not exist"));
            }
        }
        emit(&report(&tables, name.is_some(), collector.is_some()), out)
    }
}

#[cfg(test)]
#[path = "stat_tests.rs"]
mod tests;
