//! The replica server: `ReplicaStub` owns the node's replicas, beacons the meta and syncs
//! configurations; each `Replica` actor runs one partition's PacificA state machine.

mod actor;
pub mod messages;
mod pipelines;
pub mod prepare_list;
pub mod storage;
mod stub;
pub mod validate;
mod write_path;

pub use actor::{Replica, ReplicaOptions};
pub use stub::{ReplicaStub, ReplicaStubParams, Shutdown};
