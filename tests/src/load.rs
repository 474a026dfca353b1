//! A write load for the fault and scale tests: writers put unique keys (`k<seq>` = `<seq>`) until
//! stopped and remember which writes were acknowledged, so that a test can check afterwards that
//! every acknowledged write is readable. With reads, each writer also reads back what it wrote, as an
//! application would, and a read that fails or returns another value counts as failed.

use crate::wait::wait_until;
use aerie_client::Table;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    writers: Vec<JoinHandle<BTreeSet<u64>>>,
}

/// The first errors are kept for the failure report.
const ERRORS_KEPT: usize = 20;

struct Counters {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Counters {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < ERRORS_KEPT {
            errors.push(what);
        }
    }
}

async fn writer(table: Table, id: u64, count: u64, read_back: bool, counters: Counters) -> BTreeSet<u64> {
    let mut mine = BTreeSet::new();
    let mut n = 0u64;
    while !counters.stop.load(Ordering::Relaxed) {
        let seq = n * count + id;
        n += 1;
        let key = format!("k{seq}");
        let value = seq.to_string();
        match table.set(key.as_bytes(), b"s", value.as_bytes(), 0).await {
            Ok(()) => {
                mine.insert(seq);
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counters.fail(format!("set {key}: {e}"));
                continue;
            }
        }
        if read_back {
            match table.get(key.as_bytes(), b"s").await {
                Ok(Some(read)) if read == value.as_bytes() => {
                    counters.reads.fetch_add(1, Ordering::Relaxed);
                }
                other => counters.fail(format!("get {key} after its write: {other:?}")),
            }
        }
    }
    mine
}

impl WriteLoad {
    /// Starts `count` writers on `table`.
    pub fn start(table: Table, count: u64) -> Self {
        Self::start_with(table, count, false)
    }

    /// Starts `count` writers on `table` that read back each write they made.
    pub fn start_with_reads(table: Table, count: u64) -> Self {
        Self::start_with(table, count, true)
    }

    fn start_with(table: Table, count: u64, read_back: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let writers = (0..count)
            .map(|id| {
                let counters = Counters {
                    stop: stop.clone(),
                    acked: acked.clone(),
                    failed: failed.clone(),
                    reads: reads.clone(),
                    errors: errors.clone(),
                };
                tokio::spawn(writer(table.clone(), id, count, read_back, counters))
            })
            .collect();
        WriteLoad {
            stop,
            acked,
            failed,
            reads,
            errors,
            writers,
        }
    }

    /// Requests that ended in an error (the client gave up after its retries) so far, or reads
    /// that returned another value.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Reads that returned what was written, so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The first errors, for a failure report.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Writes acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Waits until `more` writes beyond the ones acknowledged now have been acknowledged.
    pub async fn wait_for_more(&self, what: &str, more: u64, timeout: Duration) {
        let target = self.acked() + more;
        let acked = self.acked.clone();
        wait_until(what, timeout, || {
            let now = acked.load(Ordering::Relaxed);
            async move {
                if now >= target {
                    Ok(())
                } else {
                    Err(format!("{now} of {target} writes acknowledged"))
                }
            }
        })
        .await
    }

    /// Stops the writers; returns the sequence numbers of every acknowledged write.
    pub async fn stop(self) -> BTreeSet<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = BTreeSet::new();
        for writer in self.writers {
            acked.extend(writer.await.expect("writer task"));
        }
        acked
    }
}

/// Panics unless every write in `acked` reads back with its value.
pub async fn assert_acked_readable(table: &Table, acked: &BTreeSet<u64>) {
    let mut lost = Vec::new();
    for seq in acked {
        match table.get(format!("k{seq}").as_bytes(), b"s").await {
            Ok(Some(value)) if value == seq.to_string().as_bytes() => {}
            other => lost.push(format!("k{seq}: {other:?}")),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}
