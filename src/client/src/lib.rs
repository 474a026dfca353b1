//! The Aerie client library: talks to the meta servers for the cluster map and to each partition's
//! primary for data.
//!
//! A [`Table`] caches its partition configurations. Each call hashes the key to a partition, sends
//! the request to that partition's primary, and on an answer that means "not here any more" (not
//! primary, no such replica, unreachable) refreshes the configuration from the meta and retries with
//! exponential backoff until the call's timeout, each attempt within a share of it.
//!
//! Every write carries the client's session (a random id and a sequence number), so a retry takes
//! effect at most once, across timeouts, lost connections and a new primary: `incr` and
//! `check_and_set` are retried like the rest. A write that gives up after an attempt that may
//! have been applied ends with `ERR_OUTCOME_UNKNOWN`, never with a code that says "not applied".

mod meta;
pub mod retry;
pub mod session;
mod table;

pub use meta::{Client, ClientOptions};
pub use table::Table;
