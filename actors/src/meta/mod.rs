//! The meta server: `ServerState` owns the cluster map and persists every change before applying it;
//! placement decides where a new table's replicas go; the guardian cures unhealthy partitions; the
//! balancer plans moves that even out primaries and replicas or empty leaving nodes; recovery rebuilds
//! the map from the replica servers when the store is empty.

pub mod balancer;
pub mod failure_detector;
pub mod guardian;
pub mod level;
pub mod offline;
pub mod persist;
pub mod placement;
pub mod primary_request;
pub mod recovery;
mod server_state;

pub use failure_detector::FailureDetector;
pub use persist::{LoadError, LoadedState, StoreLayout};
pub use server_state::{GetMetaHelpers, MetaCommand, MetaHelpers, MetaParams, ServerState, META_COMMANDS};
