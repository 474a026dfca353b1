//! A write load for the fault and scale tests: writers put unique keys (`k<seq>` = `<seq>`) until
//! stopped and remember which writes were acknowledged, so that a test can check afterwards that
//! every acknowledged write is readable.

use crate::wait::wait_until;
use aerie_client::Table;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    writers: Vec<JoinHandle<BTreeSet<u64>>>,
}

async fn writer(
    table: Table,
    id: u64,
    count: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> BTreeSet<u64> {
    let mut mine = BTreeSet::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let seq = n * count + id;
        n += 1;
        let ok = table
            .set(format!("k{seq}").as_bytes(), b"s", seq.to_string().as_bytes(), 0)
            .await
            .is_ok();
        if ok {
            mine.insert(seq);
            acked.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    mine
}

impl WriteLoad {
    /// Starts `count` writers on `table`.
    pub fn start(table: Table, count: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let writers = (0..count)
            .map(|id| {
                let (stop, acked, failed) = (stop.clone(), acked.clone(), failed.clone());
                tokio::spawn(writer(table.clone(), id, count, stop, acked, failed))
            })
            .collect();
        WriteLoad {
            stop,
            acked,
            failed,
            writers,
        }
    }

    /// Writes that ended in an error (the client gave up after its retries) so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
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
