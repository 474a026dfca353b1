//! The two disk pipelines of a replica, each with at most one batch in flight on the blocking pool:
//!
//! - the log pipeline appends every mutation queued since the last write in one group commit;
//! - the apply pipeline applies every committed mutation queued since the last batch in one RocksDB
//!   write batch.
//!
//! While a batch is on disk, new work queues up and goes out as the next batch: under load, batches
//! grow by themselves, and the actor thread never waits for a disk.

use aerie_common::{Ballot, Decree, WireResult};
use aerie_proto::data::WriteResult;
use aerie_proto::replica::Mutation;
use aerie_storage::{Engine, MutationLog};
use std::future::Future;
use std::sync::{Arc, Mutex};

pub struct LogWritten {
    pub written: Vec<(Decree, Ballot)>,
    pub result: Result<u64, String>,
}

pub struct LogPipeline {
    log: Arc<Mutex<MutationLog>>,
    queued: Vec<Arc<Mutation>>,
    in_flight: bool,
}

impl LogPipeline {
    pub fn new(log: MutationLog) -> Self {
        LogPipeline {
            log: Arc::new(Mutex::new(log)),
            queued: Vec::new(),
            in_flight: false,
        }
    }

    pub fn log(&self) -> Arc<Mutex<MutationLog>> {
        self.log.clone()
    }

    pub fn enqueue(&mut self, mutation: Arc<Mutation>) {
        self.queued.push(mutation);
    }

    /// Starts writing everything queued, unless a write is already in flight.
    pub fn start(&mut self) -> Option<impl Future<Output = LogWritten> + 'static> {
        if self.in_flight || self.queued.is_empty() {
            return None;
        }
        self.in_flight = true;
        let batch = std::mem::take(&mut self.queued);
        let log = self.log.clone();
        Some(async move {
            let written = batch.iter().map(|m| (m.decree, m.ballot)).collect();
            let result = tokio::task::spawn_blocking(move || {
                let mut log = log.lock().map_err(|_| "mutation log lock poisoned".to_string())?;
                log.append(batch.iter().map(|m| m.as_ref())).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("log task failed: {e}")));
            LogWritten { written, result }
        })
    }

    pub fn finished(&mut self) {
        self.in_flight = false;
    }
}

pub struct Applied {
    pub mutations: Vec<Arc<Mutation>>,
    pub result: Result<Vec<Vec<WireResult<WriteResult>>>, String>,
}

pub struct ApplyPipeline {
    engine: Arc<Engine>,
    queued: Vec<Arc<Mutation>>,
    in_flight: bool,
}

impl ApplyPipeline {
    pub fn new(engine: Arc<Engine>) -> Self {
        ApplyPipeline {
            engine,
            queued: Vec::new(),
            in_flight: false,
        }
    }

    pub fn enqueue(&mut self, mutations: impl IntoIterator<Item = Arc<Mutation>>) {
        self.queued.extend(mutations);
    }

    pub fn start(&mut self) -> Option<impl Future<Output = Applied> + 'static> {
        if self.in_flight || self.queued.is_empty() {
            return None;
        }
        self.in_flight = true;
        let batch = std::mem::take(&mut self.queued);
        let engine = self.engine.clone();
        Some(async move {
            let for_engine = batch.clone();
            let result = tokio::task::spawn_blocking(move || engine.apply(&for_engine).map_err(|e| e.to_string()))
                .await
                .unwrap_or_else(|e| Err(format!("apply task failed: {e}")));
            Applied {
                mutations: batch,
                result,
            }
        })
    }

    pub fn finished(&mut self) {
        self.in_flight = false;
    }
}
