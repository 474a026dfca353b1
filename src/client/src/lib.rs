//! The Aerie client library: talks to the meta servers for the cluster map and to each partition's
//! primary for data.
//!
//! A [`Table`] caches its partition configurations. Each call hashes the key to a partition, sends
//! the request to that partition's primary, and on an answer that means "not here any more" (not
//! primary, no such replica, unreachable) refreshes the configuration from the meta and retries with
//! exponential backoff until the call's timeout. Writes that are not idempotent (`incr`,
//! `check_and_set`) are not retried after an ambiguous failure (timeout, connection lost), since the
//! first attempt may have been applied.

mod meta;
mod table;

pub use meta::{Client, ClientOptions};
pub use table::Table;
