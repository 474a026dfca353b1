//! The two disk pipelines of a replica:
//!
//! - the log pipeline hands every record queued since its last hand-over to the node log
//!   (`node_log.rs`), which group-commits it with the other partitions' batches. Up to
//!   `MAX_IN_FLIGHT` batches may be in flight: the node log writes them in order, and a batch is
//!   answered only once it and everything before it is durable;
//! - the apply pipeline applies every committed mutation queued while the actor handled its last
//!   events in one RocksDB write batch, on the actor's own thread: the write skips RocksDB's WAL
//!   (the mutation log is the WAL), so it is a memtable insert, cheaper than the two thread
//!   hand-overs a trip to the blocking pool costs (Pegasus applies on the replica's thread too).
//!   A RocksDB write stall therefore holds the actor's thread, as it would hold the writes anyway.
//!
//! While a log batch is on disk, new work queues up and goes out as the next batch: under load,
//! batches grow by themselves, and the actor thread never waits for an fsync.

use super::node_log::NodeLog;
use aerie_common::{Ballot, Decree, Gpid, WireResult};
use aerie_proto::data::WriteResult;
use aerie_proto::replica::Mutation;
use aerie_storage::{EncodedRecord, Engine, LogItem, MutationLog};
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Batches of one replica in the node log at once. More pipelining makes batches smaller and
/// costs a thread hand-over each; two keep the next batch ready while one is being synced.
const MAX_IN_FLIGHT: usize = 2;

pub struct LogWritten {
    pub written: Vec<(Decree, Ballot)>,
    /// The highest committed decree this batch records (in a marker or a mutation's header).
    pub committed: Decree,
    pub result: Result<u64, String>,
}

/// A record waiting for the next group commit.
enum Queued {
    Mutation(Arc<Mutation>),
    Committed(Decree),
}

pub struct LogPipeline {
    gpid: Gpid,
    log: Arc<Mutex<MutationLog>>,
    node_log: Arc<NodeLog>,
    queued: Vec<Queued>,
    in_flight: usize,
}

impl LogPipeline {
    pub fn new(gpid: Gpid, log: MutationLog, node_log: Arc<NodeLog>) -> Self {
        LogPipeline {
            gpid,
            log: Arc::new(Mutex::new(log)),
            node_log,
            queued: Vec::new(),
            in_flight: 0,
        }
    }

    pub fn node_log(&self) -> Arc<NodeLog> {
        self.node_log.clone()
    }

    pub fn log(&self) -> Arc<Mutex<MutationLog>> {
        self.log.clone()
    }

    pub fn enqueue(&mut self, mutation: Arc<Mutation>) {
        self.queued.push(Queued::Mutation(mutation));
    }

    /// Records that everything up to `decree` is committed.
    pub fn enqueue_commit_marker(&mut self, decree: Decree) {
        self.queued.push(Queued::Committed(decree));
    }

    /// Hands everything queued to the node log.
    pub fn start(&mut self) -> Option<impl Future<Output = LogWritten> + 'static> {
        if self.queued.is_empty() || self.in_flight >= MAX_IN_FLIGHT {
            return None;
        }
        self.in_flight += 1;
        let batch = std::mem::take(&mut self.queued);
        let (gpid, log, node_log) = (self.gpid, self.log.clone(), self.node_log.clone());
        Some(async move {
            let written: Vec<(Decree, Ballot)> = batch
                .iter()
                .filter_map(|q| match q {
                    Queued::Mutation(m) => Some((m.decree, m.ballot)),
                    Queued::Committed(_) => None,
                })
                .collect();
            let committed = batch
                .iter()
                .map(|q| match q {
                    Queued::Mutation(m) => m.last_committed,
                    Queued::Committed(d) => *d,
                })
                .max()
                .unwrap_or(0);
            let encoded: Result<Vec<EncodedRecord>, String> = batch
                .iter()
                .map(|q| match q {
                    Queued::Mutation(m) => LogItem::Mutation(m),
                    Queued::Committed(d) => LogItem::Committed(*d),
                })
                .map(|item| EncodedRecord::new(item).map_err(|e| e.to_string()))
                .collect();
            // Only mutations need the fsync; a batch of commit markers alone does not wait for one.
            let durable = !written.is_empty();
            let result = match encoded {
                Ok(records) => node_log.append(gpid, log, records, durable).await,
                Err(e) => Err(e),
            };
            LogWritten {
                written,
                committed,
                result,
            }
        })
    }

    /// A batch handed over by `start` was answered.
    pub fn finished(&mut self) {
        self.in_flight -= 1;
    }
}

pub struct Applied {
    pub mutations: Vec<Arc<Mutation>>,
    pub result: Result<Vec<Vec<WireResult<WriteResult>>>, String>,
}

pub struct ApplyPipeline {
    engine: Arc<Engine>,
    queued: Vec<Arc<Mutation>>,
}

impl ApplyPipeline {
    pub fn new(engine: Arc<Engine>) -> Self {
        ApplyPipeline {
            engine,
            queued: Vec::new(),
        }
    }

    pub fn enqueue(&mut self, mutations: impl IntoIterator<Item = Arc<Mutation>>) {
        self.queued.extend(mutations);
    }

    /// Applies everything queued, in one write batch.
    pub fn apply_queued(&mut self) -> Option<Applied> {
        if self.queued.is_empty() {
            return None;
        }
        let mutations = std::mem::take(&mut self.queued);
        let result = self.engine.apply(&mutations).map_err(|e| e.to_string());
        Some(Applied { mutations, result })
    }
}
