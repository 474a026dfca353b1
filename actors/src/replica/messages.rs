//! Messages a replica server sends to its `Replica` actors (besides the RPC requests it forwards).

use actix::Message;
use aerie_common::WireResult;
use aerie_proto::meta::{AppInfo, PartitionConfig};
use aerie_proto::replica::ReplicaInfo;

/// Serve the partition as this configuration says.
pub struct UpdateConfig {
    pub app: AppInfo,
    pub config: PartitionConfig,
    /// The meta incarnation of this server the configuration was made for (checked by the stub
    /// against the current lease); the replica serves only under that incarnation.
    pub incarnation: Option<u64>,
}

impl Message for UpdateConfig {
    type Result = WireResult<()>;
}

/// A snapshot of the replica's state.
pub struct GetInfo;

impl Message for GetInfo {
    type Result = ReplicaInfo;
}

/// The replica's RocksDB figures.
pub struct GetEngineStats;

impl Message for GetEngineStats {
    type Result = (aerie_common::Gpid, aerie_storage::EngineStats);
}

/// Stop serving, sync the log, flush memtables, and stop the actor.
pub struct Close;

impl Message for Close {
    type Result = ();
}

/// The replica server's lease ran out: stop serving now.
pub struct LeaseExpired;

impl Message for LeaseExpired {
    type Result = ();
}

/// Sync the mutation log to disk.
pub struct SyncLog;

impl Message for SyncLog {
    type Result = WireResult<()>;
}
