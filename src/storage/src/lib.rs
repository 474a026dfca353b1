//! Storage of one replica: the record schema (hash key / sort key, TTL), the RocksDB engine that
//! applies mutations, and the mutation log that makes them durable before they are acknowledged.
//!
//! ```text
//!   prepare ──► MutationLog::append (CRC per record, one fsync per group commit)
//!   commit  ──► Engine::apply (one RocksDB write batch: the data + the last applied decree)
//!   restart ──► Engine::open → last applied decree d;  MutationLog::open(replay after d)
//! ```
//!
//! Invariants: the engine's last applied decree is written atomically with the data it covers; RocksDB
//! runs without its own WAL because the mutation log is the write-ahead log; a torn or corrupt record at
//! the log's tail is cut off and never applied, while corruption before the tail refuses to open.

pub mod apply;
mod engine;
mod error;
mod frames;
pub mod key;
mod log;
mod log_gc;
pub mod session;
pub mod shared_log;

pub use engine::{Engine, EngineOptions, EngineStats, ReplicaChecksum};
pub use error::StorageError;
pub use log::{encode_payload, EncodedRecord, LogItem, LogOptions, LogRecord, LogSnapshot, MutationLog, ReplayedLog};
pub use log_gc::collect_log_garbage;
pub use session::{Admission, SessionTable};
pub use shared_log::{ReplayedSharedLog, SharedItem, SharedLog};
