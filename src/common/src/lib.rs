//! Foundation types shared by every Aerie crate: identifiers (`Gpid`, `Ballot`, `Decree`, `NodeAddr`),
//! the wire error codes operators know from Pegasus (`ERR_OK`, `ERR_INVALID_VERSION`, ...), the clock
//! seam (monotonic time for leases and timeouts, wall time only for display and TTL), and the key hash
//! that maps a hash key to a partition, loopback ports for tests that start servers, and what the
//! fuzz tests share.
//!
//! This crate has no internal dependencies; everything else builds on it.

pub mod clock;
pub mod codec;
pub mod error;
pub mod fuzzing;
pub mod hash;
pub mod ids;
pub mod level;
pub mod ports;
pub mod time_fmt;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ErrorCode, WireError, WireResult};
pub use hash::{key_hash, partition_index};
pub use ids::{AppId, Ballot, Decree, Gpid, NodeAddr, ParseIdError};
pub use level::MetaLevel;
