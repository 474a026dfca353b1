//! Log GC: deleting the mutation log segments that flushed data covers.
//!
//! RocksDB runs without its own WAL, so a decree that is applied but not flushed exists only in
//! the memtable and in the mutation log. The applied decree is therefore read *before* the flush:
//! once the flush returns, everything up to it is in SST files, while decrees applied during or
//! after the flush keep their log records. (Read after the flush, it could name a decree applied
//! after the flush began; a crash would then lose that decree with its log records deleted, and
//! the replica would refuse to open for a committed decree missing.)
//!
//! ```text
//!   log > threshold ─► durable = last applied ─► flush ─► delete segments wholly ≤ durable
//! ```

use crate::{Engine, MutationLog, StorageError};
use std::sync::Mutex;

/// One round of log GC for a replica: when its log holds more than `threshold_bytes`, flushes
/// the engine and deletes the segments the flushed data covers. Returns how many it deleted.
/// Applies may go on meanwhile; the log is locked only to measure it and to delete segments.
pub fn collect_log_garbage(
    engine: &Engine,
    log: &Mutex<MutationLog>,
    threshold_bytes: u64,
) -> Result<usize, StorageError> {
    collect_with_flush(engine, log, threshold_bytes, Engine::flush)
}

fn collect_with_flush(
    engine: &Engine,
    log: &Mutex<MutationLog>,
    threshold_bytes: u64,
    flush: impl FnOnce(&Engine) -> Result<(), StorageError>,
) -> Result<usize, StorageError> {
    let lock = || log.lock().map_err(|_| StorageError::LockPoisoned("mutation log"));
    if lock()?.total_bytes() <= threshold_bytes {
        return Ok(0);
    }
    let durable = engine.last_applied_decree()?;
    flush(engine)?;
    lock()?.gc(durable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::mutation;
    use crate::{EngineOptions, LogOptions};
    use aerie_common::Decree;

    const SMALL: LogOptions = LogOptions {
        segment_bytes: 200,
        sync: false,
    };

    fn open(dir: &std::path::Path) -> (Engine, Mutex<MutationLog>) {
        let options = EngineOptions::new(8 << 20, 64 << 20, 4 << 20);
        let engine = Engine::open(&dir.join("data"), &options).unwrap();
        let log = MutationLog::open(&dir.join("log"), SMALL, 0).unwrap().log;
        (engine, Mutex::new(log))
    }

    /// Logs and applies `decrees`, as a replica does for each committed decree.
    fn commit(engine: &Engine, log: &Mutex<MutationLog>, decrees: std::ops::RangeInclusive<Decree>) {
        for decree in decrees {
            let m = mutation(decree);
            log.lock().unwrap().append(std::slice::from_ref(&m)).unwrap();
            engine.apply(&[m]).unwrap();
        }
    }

    #[test]
    fn decrees_applied_during_the_flush_keep_their_log_records() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, log) = open(dir.path());
        commit(&engine, &log, 1..=6);
        // Decrees 7-12 are applied while the flush runs: in the memtable only, after it.
        let removed = collect_with_flush(&engine, &log, 0, |engine| {
            engine.flush()?;
            commit(engine, &log, 7..=12);
            Ok(())
        })
        .unwrap();
        assert!(removed >= 1, "segments of decrees 1-6 are covered");
        drop(log);
        let replayed = MutationLog::open(&dir.path().join("log"), SMALL, 0).unwrap();
        let kept: Vec<Decree> = replayed.mutations.iter().map(|m| m.decree).collect();
        for decree in 7..=12 {
            assert!(
                kept.contains(&decree),
                "decree {decree} is only in the memtable: {kept:?}"
            );
        }
    }

    #[test]
    fn a_log_under_the_threshold_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, log) = open(dir.path());
        commit(&engine, &log, 1..=6);
        let segments = log.lock().unwrap().segment_count();
        assert_eq!(collect_log_garbage(&engine, &log, u64::MAX).unwrap(), 0);
        assert_eq!(log.lock().unwrap().segment_count(), segments);
        let removed = collect_log_garbage(&engine, &log, 0).unwrap();
        assert!(removed >= 1, "every decree is applied: closed segments are covered");
        assert_eq!(log.lock().unwrap().segment_count(), segments - removed);
    }
}
