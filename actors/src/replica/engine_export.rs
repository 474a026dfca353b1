//! RocksDB's figures and the data dirs' disk space, exported per replica server: sizes summed over
//! its replicas, tickers (write stalls, block cache hits and misses) turned into counters that only
//! grow however replicas open and close, and capacity and free bytes of each data dir's file system.

use crate::metrics::{
    DISK_BYTES, ROCKSDB_BLOCK_CACHE, ROCKSDB_BLOCK_CACHE_USAGE, ROCKSDB_BYTES, ROCKSDB_STALL_SECONDS,
    ROCKSDB_WRITE_STOPPED,
};
use aerie_common::Gpid;
use aerie_storage::EngineStats;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(super) struct EngineExport {
    node: String,
    dirs: Vec<PathBuf>,
    /// Each replica's tickers at the last export.
    last: HashMap<Gpid, EngineStats>,
}

impl EngineExport {
    pub fn new(node: String, dirs: Vec<PathBuf>) -> Self {
        for kind in ["memtable", "sst", "pending_compaction"] {
            ROCKSDB_BYTES.with_label_values(&[&node, kind]).set(0);
        }
        for outcome in ["hit", "miss"] {
            ROCKSDB_BLOCK_CACHE.with_label_values(&[&node, outcome]);
        }
        ROCKSDB_STALL_SECONDS.with_label_values(&[&node]);
        ROCKSDB_WRITE_STOPPED.with_label_values(&[&node]).set(0);
        EngineExport {
            node,
            dirs,
            last: HashMap::new(),
        }
    }

    pub fn export(&mut self, stats: &[(Gpid, EngineStats)], block_cache_usage: usize) {
        let node = self.node.as_str();
        let sum = |f: fn(&EngineStats) -> u64| stats.iter().map(|(_, s)| f(s)).sum::<u64>() as i64;
        ROCKSDB_BYTES
            .with_label_values(&[node, "memtable"])
            .set(sum(|s| s.memtable_bytes));
        ROCKSDB_BYTES
            .with_label_values(&[node, "sst"])
            .set(sum(|s| s.sst_bytes));
        ROCKSDB_BYTES
            .with_label_values(&[node, "pending_compaction"])
            .set(sum(|s| s.pending_compaction_bytes));
        ROCKSDB_WRITE_STOPPED
            .with_label_values(&[node])
            .set(sum(|s| u64::from(s.write_stopped || s.delayed_write_rate > 0)));
        ROCKSDB_BLOCK_CACHE_USAGE
            .with_label_values(&[node])
            .set(block_cache_usage as i64);
        let mut grown = EngineStats::default();
        for (gpid, now) in stats {
            let before = self.last.get(gpid).copied().unwrap_or_default();
            // A ticker below the last one means the replica reopened: it counts from zero again.
            let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
            grown.stall_micros += delta(now.stall_micros, before.stall_micros);
            grown.block_cache_hits += delta(now.block_cache_hits, before.block_cache_hits);
            grown.block_cache_misses += delta(now.block_cache_misses, before.block_cache_misses);
        }
        self.last = stats.iter().copied().collect();
        ROCKSDB_STALL_SECONDS
            .with_label_values(&[node])
            .inc_by(grown.stall_micros as f64 / 1e6);
        ROCKSDB_BLOCK_CACHE
            .with_label_values(&[node, "hit"])
            .inc_by(grown.block_cache_hits);
        ROCKSDB_BLOCK_CACHE
            .with_label_values(&[node, "miss"])
            .inc_by(grown.block_cache_misses);
        for dir in &self.dirs {
            if let Some((capacity, available)) = disk_space(dir) {
                let dir = dir.display().to_string();
                DISK_BYTES
                    .with_label_values(&[node, &dir, "capacity"])
                    .set(capacity as i64);
                DISK_BYTES
                    .with_label_values(&[node, &dir, "available"])
                    .set(available as i64);
            }
        }
    }
}

/// (capacity, bytes available to unprivileged users) of the file system holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a properly sized, writable statvfs struct.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let block = st.f_frsize as u64;
    Some((st.f_blocks as u64 * block, st.f_bavail as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (capacity, available) = disk_space(dir.path()).expect("statvfs works on a temp dir");
        assert!(capacity > 0 && available <= capacity, "{capacity} {available}");
        assert_eq!(disk_space(Path::new("/no/such/dir")), None);
    }
}
