//! The node log: one writer thread per data dir that owns the dir's shared log
//! (`aerie_storage::shared_log`), so that every replica on the dir shares one group-commit stream.
//!
//! A replica hands its batch (records encoded once) to the thread; the thread takes every batch
//! waiting at that moment, from any partition, writes each to its replica's private log (no sync)
//! and all of them to the shared log with one `fdatasync`, then answers each batch. While one fsync
//! runs, the next group forms by itself. Batches that carry only commit markers skip the shared log
//! (a lost marker only means a restart applies less and the primary commits it again).
//!
//! Durability of a private log is only needed before the shared log forgets its records: when the
//! shared log has rolled, the thread syncs the private logs of the partitions in its closed
//! segments and deletes those segments. A replica's private log is synced when it is dropped too,
//! so a closed replica holds nothing back. Partitions the thread never saw (replicas found on disk
//! but not opened yet) keep their records until they open or are known to be gone.
//!
//! Order: the channel is FIFO and the thread handles jobs in order, so a replica's batches reach
//! both logs in the order it sent them, and a reset is recorded after everything sent before it.

use crate::metrics::{LOG_GROUP_COMMITS, LOG_WRITTEN_BYTES};
use aerie_common::{Decree, Gpid};
use aerie_storage::{EncodedRecord, LogOptions, LogRecord, MutationLog, SharedItem, SharedLog, StorageError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, Weak};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Most batches taken into one group commit.
const MAX_GROUP: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Job {
    Append {
        gpid: Gpid,
        log: Arc<Mutex<MutationLog>>,
        records: Vec<EncodedRecord>,
        /// Must be durable before the answer (it holds mutations).
        durable: bool,
        reply: Reply<u64>,
    },
    /// Record that the partition's private log is being emptied.
    Reset { gpid: Gpid, reply: Reply<()> },
    /// These partitions have no replica here (any more).
    Forget(Vec<Gpid>),
    /// Answered once every job sent before it is done.
    Barrier(Reply<()>),
}

/// The handle replicas use; cheap to share. Dropping the last one ends the thread.
pub struct NodeLog {
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Per partition, what the shared log held at start-up (taken by the replica's open).
    replayed: Mutex<BTreeMap<Gpid, Vec<LogRecord>>>,
}

enum Seen {
    Open(Weak<Mutex<MutationLog>>),
    Gone,
}

struct Writer {
    shared: SharedLog,
    node: String,
    seen: HashMap<Gpid, Seen>,
    /// Segments the shared log had after the last collection.
    collected_at: usize,
}

struct Pending {
    gpid: Gpid,
    records: Vec<EncodedRecord>,
    bytes: u64,
    reply: Reply<u64>,
}

impl NodeLog {
    /// Opens the shared log under `data_dir` and starts its writer. `options.sync` is the
    /// durability of every replica on the dir (their private logs never sync on a write).
    pub fn open(data_dir: &Path, options: LogOptions, node: String) -> Result<Arc<NodeLog>, StorageError> {
        let dir = data_dir.join("shared_log");
        let replayed = SharedLog::open(&dir, options)?;
        if replayed.truncated_bytes > 0 {
            warn!(dir = %dir.display(), bytes = replayed.truncated_bytes, "cut a torn tail off the shared log");
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            collected_at: replayed.log.segment_count(),
            shared: replayed.log,
            node,
            seen: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("aerie-node-log".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StorageError::Io {
                path: dir.clone(),
                source,
            })?;
        Ok(Arc::new(NodeLog {
            jobs: Mutex::new(tx),
            replayed: Mutex::new(replayed.partitions),
        }))
    }

    fn send(&self, job: Job) -> Result<(), String> {
        let jobs = self.jobs.lock().map_err(|_| "node log lock poisoned".to_string())?;
        jobs.send(job).map_err(|_| "the node log writer stopped".to_string())
    }

    /// Appends `records` to the replica's private log and (if `durable`) to the shared log, as
    /// part of the next group commit; answers with the bytes written to the private log.
    pub async fn append(
        &self,
        gpid: Gpid,
        log: Arc<Mutex<MutationLog>>,
        records: Vec<EncodedRecord>,
        durable: bool,
    ) -> Result<u64, String> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Append {
            gpid,
            log,
            records,
            durable,
            reply,
        })?;
        answer.await.map_err(|_| "the node log writer stopped".to_string())?
    }

    /// Records durably that `gpid`'s private log is about to be emptied (or begins anew), so that
    /// nothing the shared log holds of its old history comes back at a restart. Blocking: call it
    /// off the async threads, then reset the private log.
    pub fn record_reset(&self, gpid: Gpid) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Reset { gpid, reply })?;
        answer
            .blocking_recv()
            .map_err(|_| "the node log writer stopped".to_string())?
    }

    /// Returns once every batch handed over before the call is written and answered: a replica
    /// that closes waits for this, so that no write of its old life reaches its log after it
    /// was opened again.
    pub async fn barrier(&self) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Barrier(reply))?;
        answer.await.map_err(|_| "the node log writer stopped".to_string())?
    }

    /// What the shared log held for `gpid` at start-up, in write order (after its last reset).
    pub fn replayed(&self, gpid: Gpid) -> Vec<LogRecord> {
        self.replayed
            .lock()
            .map(|r| r.get(&gpid).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// `gpid` was opened and its private log holds (durably) what `replayed` returned.
    pub fn opened(&self, gpid: Gpid) {
        if let Ok(mut replayed) = self.replayed.lock() {
            replayed.remove(&gpid);
        }
    }

    /// Partitions that have no replica on this dir: their records need not be kept.
    pub fn forget_except(&self, present: &BTreeSet<Gpid>) {
        let gone: Vec<Gpid> = match self.replayed.lock() {
            Ok(mut replayed) => {
                let gone: Vec<Gpid> = replayed.keys().filter(|g| !present.contains(g)).copied().collect();
                for gpid in &gone {
                    replayed.remove(gpid);
                }
                gone
            }
            Err(_) => return,
        };
        if !gone.is_empty() {
            let _ = self.send(Job::Forget(gone));
        }
    }
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut group = Vec::new();
            let mut forgot = false;
            for job in std::iter::once(first).chain(std::iter::from_fn(|| jobs.try_recv().ok()).take(MAX_GROUP)) {
                match job {
                    Job::Append {
                        gpid,
                        log,
                        records,
                        durable,
                        reply,
                    } => {
                        self.seen.insert(gpid, Seen::Open(Arc::downgrade(&log)));
                        let written = log
                            .lock()
                            .map_err(|_| "mutation log lock poisoned".to_string())
                            .and_then(|mut log| log.append_encoded(&records).map_err(|e| e.to_string()));
                        match written {
                            Ok(bytes) if durable => group.push(Pending {
                                gpid,
                                records,
                                bytes,
                                reply,
                            }),
                            other => {
                                let _ = reply.send(other);
                            }
                        }
                    }
                    Job::Reset { gpid, reply } => {
                        self.commit(&mut group);
                        let written = self
                            .shared
                            .append(&[(gpid, SharedItem::Reset)])
                            .map(|_| ())
                            .map_err(|e| e.to_string());
                        let _ = reply.send(written);
                    }
                    Job::Barrier(reply) => {
                        self.commit(&mut group);
                        let _ = reply.send(Ok(()));
                    }
                    Job::Forget(gone) => {
                        for gpid in gone {
                            self.seen.insert(gpid, Seen::Gone);
                        }
                        forgot = true;
                    }
                }
            }
            self.commit(&mut group);
            if forgot || self.shared.segment_count() > self.collected_at {
                self.collect();
            }
        }
    }

    /// One shared-log append (one fdatasync) for every batch in `group`, then the answers.
    fn commit(&mut self, group: &mut Vec<Pending>) {
        if group.is_empty() {
            return;
        }
        let items: Vec<(Gpid, SharedItem<'_>)> = group
            .iter()
            .flat_map(|p| p.records.iter().map(|r| (p.gpid, SharedItem::Record(r))))
            .collect();
        let result = self.shared.append(&items).map_err(|e| e.to_string());
        if let Ok(bytes) = result {
            LOG_WRITTEN_BYTES.with_label_values(&[&self.node]).inc_by(bytes);
            LOG_GROUP_COMMITS.with_label_values(&[&self.node]).inc();
        }
        for pending in group.drain(..) {
            let answer = result.clone().map(|_| pending.bytes);
            let _ = pending.reply.send(answer);
        }
    }

    /// Makes the private logs of the partitions in closed shared segments durable, and deletes
    /// the segments that no longer hold anything that is not durable elsewhere.
    fn collect(&mut self) {
        let mut durable = BTreeSet::new();
        for gpid in self.shared.partitions_in_closed_segments().into_keys() {
            match self.seen.get(&gpid) {
                Some(Seen::Gone) => {
                    durable.insert(gpid);
                }
                Some(Seen::Open(log)) => match log.upgrade() {
                    // Dropped: a private log syncs when it is dropped.
                    None => {
                        durable.insert(gpid);
                    }
                    Some(log) => match log
                        .lock()
                        .map_err(|_| "lock poisoned".to_string())
                        .and_then(|mut l| l.sync().map_err(|e| e.to_string()))
                    {
                        Ok(()) => {
                            durable.insert(gpid);
                        }
                        Err(error) => {
                            warn!(%gpid, %error, "cannot sync a private log; the shared log keeps its records")
                        }
                    },
                },
                // Found on disk, not opened yet: keep.
                None => {}
            }
        }
        let not_durable: Decree = 0;
        match self.shared.gc(|gpid| (!durable.contains(&gpid)).then_some(not_durable)) {
            Ok(0) => {}
            Ok(removed) => info!(node = %self.node, removed, "removed shared log segments"),
            Err(error) => warn!(node = %self.node, %error, "shared log gc failed"),
        }
        self.collected_at = self.shared.segment_count();
    }
}
