//! The harness for Aerie's integration tests: real `aerie` processes on free loopback ports with
//! temporary data dirs, killed with SIGKILL and restarted, plus helpers to wait (always bounded) for
//! the cluster to reach a state.
//!
//! The binary under test is `$AERIE_TEST_BIN`, or `aerie` next to the test executable's directory
//! (`target/<profile>/aerie`), which `cargo test` builds along with the tests.

mod cluster;
mod firewall;
pub mod history;
mod http;
mod load;
pub mod nemesis;
mod process;
pub mod prometheus;
mod replicas;
mod rolling;
pub mod sim;
mod wait;

pub use aerie_metastore::zookeeper::test_server::{checkout_file, TestZookeeper};
pub use cluster::{fast_failure_detection, zookeeper_settings, ProcessCluster, ProcessClusterOptions, ShellOutput};
pub use firewall::Firewall;
pub use http::{
    balance_moves, balance_moves_given_up, http_get, learned_bytes, metrics, sample, try_http_get, wait_healthy,
};
pub use load::{assert_acked_readable, WriteLoad};
pub use process::{aerie_bin, free_port, AerieProcess};
pub use replicas::{assert_replicas_identical, converged_checksums, wait_commits_durable, wait_fully_healthy};
pub use rolling::{learned_by_source, RollOptions, RollOutcome};
pub use wait::wait_until;
