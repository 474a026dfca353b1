//! `app_stat [-a NAME]`: the client requests each partition's primary served (it serves every
//! read and write of its partition) since its replica opened, with its storage, per table or, for
//! one table, per partition, and a total row. A partition whose primary did not answer counts as
//! zero and is named under `unreached`.

use super::admin::emit;
use super::commands::OutputArgs;
use super::report::Report;
use super::Shell;
use aerie_common::{Gpid, NodeAddr};
use aerie_proto::meta::{AppState, NodeStatus};
use aerie_proto::replica::{QueryReplicas, ReplicaInfo};
use std::collections::BTreeMap;

/// Pegasus's columns, and the request kinds (`WriteOp::kind`, `ReadOp::kind`) each counts.
const COLUMNS: [(&str, &str); 9] = [
    ("GET", "get"),
    ("MULTI_GET", "multi_get"),
    ("PUT", "put"),
    ("MULTI_PUT", "multi_put"),
    ("DEL", "remove"),
    ("MULTI_DEL", "multi_remove"),
    ("INCR", "incr"),
    ("CAS", "check_and_set"),
    ("SCAN", "scan"),
];

/// One row: the request counts in [`COLUMNS`] order, then bytes and SST files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Stat {
    counts: [u64; 9],
    storage_bytes: u64,
    file_count: u64,
}

impl Stat {
    fn of(info: &ReplicaInfo) -> Stat {
        let mut stat = Stat {
            storage_bytes: info.data_bytes,
            file_count: info.file_count,
            ..Default::default()
        };
        for (i, (_, kind)) in COLUMNS.iter().enumerate() {
            stat.counts[i] = info.op_counts.get(*kind).copied().unwrap_or(0);
        }
        stat
    }

    fn add(&mut self, other: &Stat) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.storage_bytes += other.storage_bytes;
        self.file_count += other.file_count;
    }

    fn cells(&self, first: String) -> Vec<String> {
        let mut row = vec![first];
        row.extend(self.counts.iter().map(u64::to_string));
        row.push(format!("{:.2}", self.storage_bytes as f64 / (1024.0 * 1024.0)));
        row.push(self.file_count.to_string());
        row
    }
}

/// Per partition of `tables`, the stat of its primary's replica (None: the primary is unknown
/// or did not report it).
fn primary_stats(tables: &[AppState], reported: &BTreeMap<(NodeAddr, Gpid), ReplicaInfo>) -> Vec<(Gpid, Option<Stat>)> {
    tables
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|c| {
            let stat = c.primary.and_then(|p| reported.get(&(p, c.gpid))).map(Stat::of);
            (c.gpid, stat)
        })
        .collect()
}

/// The report: one row per table (or per partition of the one table asked for) and a total.
fn report(tables: &[AppState], stats: &[(Gpid, Option<Stat>)], per_partition: bool) -> Report {
    let mut rows = Vec::new();
    let mut total = Stat::default();
    let first_column = if per_partition { "pidx" } else { "app" };
    for table in tables {
        let mut sum = Stat::default();
        for (gpid, stat) in stats.iter().filter(|(g, _)| g.app_id == table.info.app_id) {
            let stat = stat.clone().unwrap_or_default();
            if per_partition {
                rows.push(stat.cells(gpid.pidx.to_string()));
            }
            sum.add(&stat);
        }
        if !per_partition {
            rows.push(sum.cells(table.info.app_name.clone()));
        }
        total.add(&sum);
    }
    rows.push(total.cells("(total)".to_string()));
    let mut columns = vec![first_column];
    columns.extend(COLUMNS.iter().map(|(name, _)| *name));
    columns.extend(["storage_mb", "file_count"]);
    let mut report = Report::default();
    report.table("app_stat", &columns, rows);
    let unreached: Vec<String> = stats
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(g, _)| g.to_string())
        .collect();
    if !unreached.is_empty() {
        report.pairs("unreached", vec![("partitions", unreached.join(","))]);
    }
    report
}

impl Shell {
    pub(super) fn app_stat(&mut self, name: Option<&str>, out: &OutputArgs) -> Result<String, String> {
        let mut tables = self.block(self.client.list_tables(false))?;
        if let Some(name) = name {
            tables.retain(|t| t.info.app_name == name);
            if tables.is_empty() {
                return Err(format!("table {name} does not exist"));
            }
        }
        let nodes: Vec<NodeAddr> = self
            .block(self.client.list_nodes())?
            .into_iter()
            .filter(|n| n.status == NodeStatus::Alive)
            .map(|n| n.address)
            .collect();
        let client = self.client.clone();
        let answers = self.runtime.block_on(futures::future::join_all(
            nodes.iter().map(|node| client.call_node(*node, QueryReplicas {})),
        ));
        let mut reported = BTreeMap::new();
        for (node, answer) in nodes.iter().zip(answers) {
            if let Ok(Ok(replicas)) = answer {
                reported.extend(replicas.into_iter().map(|r| ((*node, r.gpid), r)));
            }
        }
        let stats = primary_stats(&tables, &reported);
        emit(&report(&tables, &stats, name.is_some()), out)
    }
}

#[cfg(test)]
#[path = "stat_tests.rs"]
mod tests;
