//! The collector's service: what its availability probes found, and the table statistics it
//! gathered from the replica servers (what the shell's `app_stat` shows when it asks a collector).

use aerie_common::{Gpid, NodeAddr};
use serde::{Deserialize, Serialize};

/// The request kinds a table's statistics count, in Pegasus's column order: the name the shell
/// shows, and the kind the replica servers count under (`WriteOp::kind`, `ReadOp::kind`).
pub const REQUEST_KINDS: [(&str, &str); 9] = [
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

/// Indices in [`REQUEST_KINDS`] of the kinds that read (the rest write).
pub const READ_KINDS: [usize; 3] = [0, 1, 8];

/// The statistics the collector gathered last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryAppStat {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppStatReport {
    /// When the last gathering finished (ms since the epoch); 0 before the first one.
    pub gathered_at_ms: u64,
    /// Seconds between gatherings.
    pub interval_secs: u64,
    pub tables: Vec<TableStat>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableStat {
    pub app_id: aerie_common::AppId,
    pub name: String,
    pub partitions: Vec<PartitionStat>,
    /// Partitions whose read or write QPS stood out for enough rounds in a row.
    pub hot: Vec<HotPartition>,
}

/// One partition as its primary reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionStat {
    pub gpid: Gpid,
    /// The primary that reported; None when the partition has no primary or it did not answer.
    pub primary: Option<NodeAddr>,
    /// Requests served since the primary's replica opened, in [`REQUEST_KINDS`] order.
    pub counts: [u64; 9],
    /// Requests per second over the last interval, in [`REQUEST_KINDS`] order (0 when the
    /// previous sample was from another primary).
    pub qps: [f64; 9],
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    pub storage_bytes: u64,
    pub file_count: u64,
}

impl PartitionStat {
    pub fn read_qps(&self) -> f64 {
        READ_KINDS.iter().map(|&i| self.qps[i]).sum()
    }

    pub fn write_qps(&self) -> f64 {
        self.qps.iter().sum::<f64>() - self.read_qps()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HotKind {
    Read,
    Write,
}

impl HotKind {
    pub fn name(self) -> &'static str {
        match self {
            HotKind::Read => "read",
            HotKind::Write => "write",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotPartition {
    pub partition_index: u32,
    pub kind: HotKind,
    /// The last round's score: ceil((qps - mean) / stddev) over the table's partitions.
    pub score: u32,
    /// Rounds in a row the score reached the threshold.
    pub rounds: u32,
    pub qps: f64,
}

/// What the availability probes found, per partition of the probe table and overall.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryProbes {}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    pub table: String,
    /// Why probing is not under way, if it is not (the cluster unreachable, the table missing).
    pub waiting: Option<String>,
    pub rounds: u64,
    pub partitions: Vec<PartitionProbes>,
    /// Successful / total probes over the last minute, hour and day (None: no probe in the window).
    pub availability_1m: Option<f64>,
    pub availability_1h: Option<f64>,
    pub availability_1d: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionProbes {
    pub partition_index: u32,
    pub tries: u64,
    pub failures: u64,
    pub failures_in_a_row: u32,
    pub last_error: Option<String>,
    pub availability_1m: Option<f64>,
}

crate::rpc! { "collector";
    QueryAppStat => AppStatReport,
    QueryProbes => ProbeReport,
}
