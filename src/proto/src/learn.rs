//! Learning: how a new replica catches up from the partition's primary before it becomes a
//! secondary.
//!
//! ```text
//!  meta ─AddLearner─► primary ─StartLearning─► learner's replica server
//!  learner ─LearnRequest(applied)─► primary:  Mutations (from memory or the log files)  ─┐ repeat
//!                                             Checkpoint (files to fetch in chunks)     ─┤
//!                                             Joined (the last committed mutations;      │
//!                                                     every new prepare now goes to it)  ─┘
//!  learner ─LearnCompleted─► primary ─UpdatePartitionConfig(UpgradeLearner)─► meta (ballot + 1)
//! ```

use crate::meta::AppInfo;
use crate::replica::Mutation;
use aerie_common::{Ballot, Decree, Gpid, NodeAddr, WireResult};
use serde::{Deserialize, Serialize};

/// Primary → the learner's replica server: learn this partition from me.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartLearning {
    pub app: AppInfo,
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub primary: NodeAddr,
}

/// Learner → primary: what comes after `applied`?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnRequest {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub learner: NodeAddr,
    pub applied: Decree,
}

/// Where learned mutations came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LearnSource {
    /// Mutations the primary still holds in memory.
    Cache,
    /// The primary's mutation log files.
    LogFiles,
    /// A RocksDB checkpoint of the primary's data.
    Checkpoint,
}

impl LearnSource {
    pub fn name(self) -> &'static str {
        match self {
            LearnSource::Cache => "cache",
            LearnSource::LogFiles => "log",
            LearnSource::Checkpoint => "checkpoint",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LearnResponse {
    /// Committed mutations after the learner's applied decree, in order; ask again afterwards.
    Mutations {
        source: LearnSource,
        mutations: Vec<Mutation>,
    },
    /// Fetch these files of a checkpoint with `FetchCheckpointChunk`, open them, and ask again.
    Checkpoint {
        checkpoint_id: u64,
        files: Vec<CheckpointFile>,
    },
    /// Caught up: apply these, take `committed` as the committed decree; prepares follow.
    Joined {
        mutations: Vec<Mutation>,
        committed: Decree,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub name: String,
    pub size: u64,
}

/// Learner → primary: bytes `offset .. offset + len` of a checkpoint file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchCheckpointChunk {
    pub gpid: Gpid,
    pub checkpoint_id: u64,
    pub file: String,
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointChunk {
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Learner → primary: caught up, and everything learned is durable; make me a secondary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LearnCompleted {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub learner: NodeAddr,
}

crate::rpc! { "learn";
    StartLearning => WireResult<()>,
    LearnRequest => WireResult<LearnResponse>,
    FetchCheckpointChunk => WireResult<CheckpointChunk>,
    LearnCompleted => WireResult<()>,
}
