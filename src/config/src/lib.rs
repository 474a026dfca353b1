//! Typed configuration of every role. Each section has an explicit `Default` (the values of SPEC.md
//! section 13), rejects unknown keys, and `validate()` checks cross-field rules such as
//! `fd_grace_seconds > fd_lease_seconds > 2 × fd_beacon_interval_seconds`.
//!
//! Sources, later ones winning: built-in defaults, the TOML file (`-c`), environment variables
//! (`AERIE_REPLICATION__FD_LEASE_SECONDS=8`), and `--set section.key=value` overrides. Every error
//! names the offending key.

mod load;
mod sections;

pub use load::{load, ConfigError, ConfigSource};
pub use sections::*;
