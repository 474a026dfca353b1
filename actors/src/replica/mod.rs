//! The replica server: `ReplicaStub` owns the node's replicas, beacons the meta and syncs
//! configurations; each `Replica` actor runs one partition's PacificA state machine.

mod actor;
mod commands;
pub mod core;
mod engine_export;
pub mod learn_plan;
mod learn_primary;
mod learner;
mod lease_keeper;
pub mod messages;
pub use learner::BeginLearning;
mod meta_locator;
pub mod node_log;
mod pipelines;
pub mod prepare_list;
mod reconfigure;
mod served;
pub mod storage;
mod stub;
pub mod validate;
mod write_path;

pub use actor::{Replica, ReplicaOptions, MAX_BATCH_BYTES, MAX_PROPOSALS_IN_FLIGHT};
pub use commands::{ReplicaCommand, REPLICA_COMMANDS};
pub use meta_locator::MetaLocator;
pub use stub::{ReplicaStub, ReplicaStubParams, Shutdown};
