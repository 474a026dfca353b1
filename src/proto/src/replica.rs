//! The replica service: client reads and writes, PacificA replication between a partition's primary
//! and its secondaries, configuration updates pushed by the meta, and inspection requests.

use crate::data::{ReadOp, ReadResult, WriteOp, WriteResult};
use crate::meta::{AppInfo, PartitionConfig};
use aerie_common::{Ballot, Decree, Gpid, NodeAddr, WireResult};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Who sent a write, so that a retry of it takes effect at most once.
///
/// `client` names one client session (chosen at random when the client starts); `seq` numbers its
/// writes; `acked_below` says every write of the session numbered below it has been answered (or
/// given up), so replicas may forget those answers. A retry carries the same `client` and `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClientRequest {
    pub client: u64,
    pub seq: u64,
    pub acked_below: u64,
}

impl ClientRequest {
    /// The identity of the request, without the session's acknowledged point.
    pub fn key(&self) -> (u64, u64) {
        (self.client, self.seq)
    }
}

/// A client write, sent to the partition's primary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientWrite {
    pub gpid: Gpid,
    pub partition_count: u32,
    pub op: WriteOp,
    /// Absent for writes that need no deduplication (tools, tests).
    pub request: Option<ClientRequest>,
}

/// One operation of a mutation, with the client request it carries out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationOp {
    pub request: Option<ClientRequest>,
    pub op: WriteOp,
}

impl MutationOp {
    /// An operation no client session asked for.
    pub fn plain(op: WriteOp) -> Self {
        MutationOp { request: None, op }
    }
}

/// A client read, sent to the partition's primary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRead {
    pub gpid: Gpid,
    pub partition_count: u32,
    pub op: ReadOp,
}

/// One replicated write: the unit of the mutation log and of 2PC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub decree: Decree,
    /// The primary's committed decree when it proposed this mutation: everything up to it is final.
    pub last_committed: Decree,
    /// Wall time chosen by the primary, so that every replica evaluates TTLs identically.
    pub timestamp_secs: u64,
    /// Empty for a no-op (a new primary fills holes of its prepare list with them).
    pub ops: Vec<MutationOp>,
}

/// Primary to secondary: log this mutation and acknowledge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepare {
    /// Shared with the primary's prepare list and the other secondaries' requests: sent without a
    /// copy (serialized as the mutation itself).
    pub mutation: Arc<Mutation>,
    pub primary: NodeAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareAck {
    pub decree: Decree,
    pub ballot: Ballot,
}

/// Primary to secondary: the committed point moved (sent when no prepare is going to carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCheck {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub last_committed: Decree,
    pub primary: NodeAddr,
}

/// Meta to replica server: serve this partition as the configuration says (or let it go).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub app: AppInfo,
    pub config: PartitionConfig,
    /// The meta's incarnation of the receiving server when it made this change: a server whose
    /// current lease belongs to another incarnation (it was declared dead meanwhile) ignores it.
    pub incarnation: u64,
}

/// Meta to a partition's primary: add `learner` as a secondary; it learns first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddLearner {
    pub app: AppInfo,
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub learner: NodeAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaStatus {
    Inactive,
    Primary,
    Secondary,
    /// Catching up from the primary before it becomes a secondary.
    Learner,
}

impl std::fmt::Display for ReplicaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReplicaStatus::Inactive => "inactive",
            ReplicaStatus::Primary => "primary",
            ReplicaStatus::Secondary => "secondary",
            ReplicaStatus::Learner => "learner",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub gpid: Gpid,
    pub app_name: String,
    /// The table as the replica knows it (what `recover` rebuilds tables from).
    pub app: AppInfo,
    /// The primary of the configuration the replica last applied, at its ballot.
    #[serde(default)]
    pub config_primary: Option<NodeAddr>,
    /// The secondaries of that configuration.
    #[serde(default)]
    pub config_secondaries: Vec<NodeAddr>,
    pub status: ReplicaStatus,
    pub ballot: Ballot,
    pub last_prepared: Decree,
    pub last_committed: Decree,
    pub last_applied: Decree,
    /// The committed decree the replica's log durably records: what a restart can apply at once.
    pub durable_committed: Decree,
    pub data_dir: String,
    /// Bytes of data (SST files and memtables).
    pub data_bytes: u64,
    /// SST files.
    #[serde(default)]
    pub file_count: u64,
    /// Client requests this replica served, by kind (`put`, `get`, ... as `WriteOp::kind` and
    /// `ReadOp::kind` name them), since it opened.
    #[serde(default)]
    pub op_counts: std::collections::BTreeMap<String, u64>,
    /// Bytes of keys and values the replica's answers to reads carried, since it opened.
    #[serde(default)]
    pub read_bytes: u64,
    /// Bytes of keys and values of the writes it served, since it opened.
    #[serde(default)]
    pub write_bytes: u64,
    /// Why the replica is out of service, if it is (storage failed, or it could not be opened).
    #[serde(default)]
    pub broken: Option<String>,
}

/// Lists every replica a replica server holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryReplicas {}

/// A checksum over a replica's whole data at its applied decree, to compare replicas of one partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaChecksum {
    pub gpid: Gpid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaChecksumResult {
    pub last_applied: Decree,
    pub record_count: u64,
    pub checksum: u64,
}

crate::rpc! { "replica";
    AddLearner => WireResult<()>,
    ClientWrite => WireResult<WriteResult>,
    ClientRead => WireResult<ReadResult>,
    Prepare => WireResult<PrepareAck>,
    GroupCheck => WireResult<()>,
    ConfigUpdate => WireResult<()>,
    QueryReplicas => WireResult<Vec<ReplicaInfo>>,
    ReplicaChecksum => WireResult<ReplicaChecksumResult>,
}
