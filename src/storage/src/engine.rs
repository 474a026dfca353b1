//! The RocksDB engine of one replica. Mutations are applied in decree order, a batch of them in one
//! RocksDB write batch that also records the last applied decree, so data and decree never disagree.
//! Writes skip RocksDB's WAL (the mutation log is the WAL); `flush` makes applied data durable, after
//! which the log below the applied decree may be dropped.
//!
//! Every operation is deterministic given the mutation: TTLs are evaluated against the timestamp the
//! primary put in the mutation, never against the replica's own clock. What each operation does is
//! in `apply.rs` (shared with the simulator); the client sessions that make retries take effect once
//! are kept in memory and written in the same batch as the data they describe.

use crate::apply::{apply_mutations, BaseRead};
use crate::error::StorageError;
use crate::key::{
    decode_key, decode_value, encode_key, hash_key_range, is_expired, session_key, LAST_APPLIED_DECREE_KEY,
    META_PREFIX, SESSION_PREFIX, SESSION_SWEEP_KEY,
};
use crate::session::{Admission, Session, SessionTable};
use aerie_common::{Decree, WireResult};
use aerie_proto::data::{ReadOp, ReadResult, Record, SortKeyRange, WriteResult};
use aerie_proto::replica::{ClientRequest, Mutation};
use crc::{Crc, CRC_64_XZ};
use rocksdb::{
    BlockBasedOptions, Cache, CompactionDecision, DBCompressionType, Options, ReadOptions, WriteBatch,
    WriteBufferManager, WriteOptions, DB,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Resources shared by every replica of a process.
#[derive(Clone)]
pub struct EngineOptions {
    pub block_cache: Cache,
    pub write_buffer_manager: WriteBufferManager,
    pub write_buffer_bytes: usize,
    /// The most files one replica's RocksDB keeps open (what the process's open-file limit must
    /// cover, times the replicas it holds).
    pub max_open_files: i32,
}

/// RocksDB's open files per replica unless configured (`replication.rocksdb_max_open_files`).
pub const DEFAULT_MAX_OPEN_FILES: i32 = 256;

impl EngineOptions {
    pub fn new(block_cache_bytes: usize, memtable_budget_bytes: usize, write_buffer_bytes: usize) -> Self {
        EngineOptions {
            block_cache: Cache::new_lru_cache(block_cache_bytes),
            write_buffer_manager: WriteBufferManager::new_write_buffer_manager(memtable_budget_bytes, false),
            write_buffer_bytes,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
        }
    }

    pub fn with_max_open_files(mut self, max_open_files: i32) -> Self {
        self.max_open_files = max_open_files;
        self
    }
}

pub struct Engine {
    db: DB,
    /// The options the DB opened with: they hold its statistics (tickers).
    opts: Options,
    path: PathBuf,
    /// The client sessions as of the last applied decree (see `session.rs`).
    sessions: Mutex<SessionTable>,
    /// Dropped after `db` (fields drop in order): the path is free once RocksDB is closed.
    _open: OpenPath,
}

/// How long opening a path waits for this process's previous engine on it to close.
const REOPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The RocksDB paths this process has open. RocksDB refuses a second open of a locked path
/// ("lock hold by current process"), and the previous engine of a replica may still be closing
/// (its last holders finishing a read or an apply): opening waits for it instead of failing.
static OPEN_PATHS: std::sync::LazyLock<(Mutex<std::collections::HashSet<PathBuf>>, std::sync::Condvar)> =
    std::sync::LazyLock::new(Default::default);

struct OpenPath(PathBuf);

impl OpenPath {
    fn claim(path: &Path) -> Result<OpenPath, StorageError> {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let (open, closed) = &*OPEN_PATHS;
        let guard = open.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, waited) = closed
            .wait_timeout_while(guard, REOPEN_WAIT, |open| open.contains(&path))
            .unwrap_or_else(|p| p.into_inner());
        if waited.timed_out() {
            return Err(StorageError::StillOpen {
                path,
                waited_secs: REOPEN_WAIT.as_secs(),
            });
        }
        guard.insert(path.clone());
        Ok(OpenPath(path))
    }
}

impl Drop for OpenPath {
    fn drop(&mut self) {
        let (open, closed) = &*OPEN_PATHS;
        open.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
        closed.notify_all();
    }
}

/// What RocksDB reports of one replica's DB: sizes now, and tickers counted since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub memtable_bytes: u64,
    pub sst_bytes: u64,
    pub pending_compaction_bytes: u64,
    /// Writes are stopped (too many L0 files, memtables or pending compaction bytes).
    pub write_stopped: bool,
    /// The rate writes are slowed to (bytes/s), 0 when they are not.
    pub delayed_write_rate: u64,
    /// Time writes spent stalled.
    pub stall_micros: u64,
    pub block_cache_hits: u64,
    pub block_cache_misses: u64,
}

/// A digest of a replica's data at its applied decree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaChecksum {
    pub last_applied: Decree,
    pub record_count: u64,
    pub checksum: u64,
}

impl Engine {
    pub fn open(path: &Path, options: &EngineOptions) -> Result<Engine, StorageError> {
        std::fs::create_dir_all(path).map_err(StorageError::io(path))?;
        let open = OpenPath::claim(path)?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&options.block_cache);
        table.set_bloom_filter(10.0, false);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(DBCompressionType::Lz4);
        opts.set_write_buffer_size(options.write_buffer_bytes);
        opts.set_write_buffer_manager(&options.write_buffer_manager);
        opts.set_keep_log_file_num(2);
        opts.set_max_open_files(options.max_open_files);
        opts.set_max_log_file_size(8 * 1024 * 1024);
        opts.enable_statistics();
        opts.set_statistics_level(rocksdb::statistics::StatsLevel::ExceptTimers);
        opts.set_compaction_filter("aerie_ttl", |_level: u32, key: &[u8], value: &[u8]| {
            if key.starts_with(&META_PREFIX) {
                return CompactionDecision::Keep;
            }
            match decode_value(value) {
                Some((expire_ts, _)) if is_expired(expire_ts, aerie_common::clock::wall_secs_now()) => {
                    CompactionDecision::Remove
                }
                _ => CompactionDecision::Keep,
            }
        });
        let db = DB::open(&opts, path).map_err(|source| StorageError::Rocks {
            path: path.to_path_buf(),
            source,
        })?;
        let sessions = load_sessions(&db, path)?;
        Ok(Engine {
            db,
            opts,
            path: path.to_path_buf(),
            sessions: Mutex::new(sessions),
            _open: open,
        })
    }

    fn session_table(&self) -> std::sync::MutexGuard<'_, SessionTable> {
        // A panic while holding the lock cannot leave a half-merged table: merging is the last step.
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a client request was applied here, and what it answered.
    pub fn session_lookup(&self, request: &ClientRequest) -> Admission {
        self.session_table().lookup(request)
    }

    /// How many client sessions this replica remembers.
    pub fn session_count(&self) -> usize {
        self.session_table().len()
    }

    fn rocks(&self) -> impl FnOnce(rocksdb::Error) -> StorageError + '_ {
        move |source| StorageError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    pub fn last_applied_decree(&self) -> Result<Decree, StorageError> {
        let stored = self.db.get_pinned(LAST_APPLIED_DECREE_KEY).map_err(self.rocks())?;
        match stored {
            None => Ok(0),
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| {
                    StorageError::Corrupt(format!("bad last applied decree in {}", self.path.display()))
                })?;
                Ok(Decree::from_be_bytes(bytes))
            }
        }
    }

    /// Applies consecutive mutations in one write batch; returns each operation's result.
    pub fn apply<M: Borrow<Mutation>>(
        &self,
        mutations: &[M],
    ) -> Result<Vec<Vec<WireResult<WriteResult>>>, StorageError> {
        let Some(last) = mutations.last().map(Borrow::borrow) else {
            return Ok(Vec::new());
        };
        let mut sessions = self.session_table();
        let applied = apply_mutations(self, &sessions, mutations)?;
        let mut batch = WriteBatch::default();
        for (key, value) in &applied.writes {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        for (client, session) in &applied.sessions.sessions {
            match session {
                Some(session) => batch.put(session_key(*client), encode_session(session)?),
                None => batch.delete(session_key(*client)),
            }
        }
        if let Some(at) = applied.sessions.last_sweep_secs {
            batch.put(SESSION_SWEEP_KEY, at.to_be_bytes());
        }
        batch.put(LAST_APPLIED_DECREE_KEY, last.decree.to_be_bytes());
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        self.db.write_opt(batch, &write_options).map_err(self.rocks())?;
        sessions.merge(applied.sessions);
        Ok(applied.answers)
    }

    /// Makes everything applied so far durable.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(self.rocks())
    }

    /// A consistent copy of the data in `dir` (hard links where possible), with the applied decree
    /// it reflects, for a new replica to start from.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StorageError> {
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(self.rocks())?;
        checkpoint.create_checkpoint(dir).map_err(self.rocks())
    }

    /// Approximate bytes of data: SST files on disk plus the memtables not flushed yet (what a
    /// checkpoint copy of this replica would move). Read from RocksDB's counters, no I/O.
    /// RocksDB's own figures that an operator watches (see [`EngineStats`]).
    pub fn stats(&self) -> EngineStats {
        use rocksdb::statistics::Ticker;
        let int = |p: &rocksdb::properties::PropName| self.db.property_int_value(p).ok().flatten().unwrap_or(0);
        EngineStats {
            memtable_bytes: int(rocksdb::properties::CUR_SIZE_ALL_MEM_TABLES),
            sst_bytes: int(rocksdb::properties::TOTAL_SST_FILES_SIZE),
            pending_compaction_bytes: int(rocksdb::properties::ESTIMATE_PENDING_COMPACTION_BYTES),
            write_stopped: int(rocksdb::properties::IS_WRITE_STOPPED) != 0,
            delayed_write_rate: int(rocksdb::properties::ACTUAL_DELAYED_WRITE_RATE),
            stall_micros: self.opts.get_ticker_count(Ticker::StallMicros),
            block_cache_hits: self.opts.get_ticker_count(Ticker::BlockCacheHit),
            block_cache_misses: self.opts.get_ticker_count(Ticker::BlockCacheMiss),
        }
    }

    pub fn data_bytes(&self) -> u64 {
        [
            rocksdb::properties::TOTAL_SST_FILES_SIZE,
            rocksdb::properties::SIZE_ALL_MEM_TABLES,
        ]
        .into_iter()
        .map(|p| self.db.property_int_value(p).ok().flatten().unwrap_or(0))
        .sum()
    }

    /// SST files of every level (RocksDB's default seven: the engine does not change them).
    pub fn file_count(&self) -> u64 {
        (0..7)
            .map(|level| {
                self.db
                    .property_int_value(rocksdb::properties::num_files_at_level(level))
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum()
    }

    fn get_live(&self, key: &[u8], now_secs: u64) -> Result<Option<(u32, Vec<u8>)>, StorageError> {
        let Some(raw) = self.db.get_pinned(key).map_err(self.rocks())? else {
            return Ok(None);
        };
        let (expire_ts, value) =
            decode_value(&raw).ok_or_else(|| StorageError::Corrupt(format!("short value under {key:?}")))?;
        if is_expired(expire_ts, now_secs) {
            return Ok(None);
        }
        Ok(Some((expire_ts, value.to_vec())))
    }

    /// Serves a read as of `now_secs`.
    pub fn read(&self, op: &ReadOp, now_secs: u64) -> Result<ReadResult, StorageError> {
        match op {
            ReadOp::Get { hash_key, sort_key } => Ok(ReadResult::Value(
                self.get_live(&encode_key(hash_key, sort_key), now_secs)?
                    .map(|(_, v)| v),
            )),
            ReadOp::Ttl { hash_key, sort_key } => {
                let ttl = self
                    .get_live(&encode_key(hash_key, sort_key), now_secs)?
                    .map(|(expire_ts, _)| (expire_ts != 0).then(|| (expire_ts as u64 - now_secs) as u32));
                Ok(ReadResult::Ttl(ttl))
            }
            ReadOp::MultiGet {
                hash_key,
                sort_keys,
                range,
                max_count,
                max_bytes,
                no_value,
            } => {
                let limits = Limits::new(*max_count, *max_bytes);
                if sort_keys.is_empty() {
                    self.multi_get_range(hash_key, range, limits, *no_value, now_secs)
                } else {
                    self.multi_get_keys(hash_key, sort_keys, limits, *no_value, now_secs)
                }
            }
            ReadOp::SortKeyCount { hash_key } => {
                let (start, end) = hash_key_range(hash_key);
                let mut count = 0;
                self.scan_range(&start, &end, now_secs, |_, _, _| {
                    count += 1;
                    true
                })?;
                Ok(ReadResult::Count(count))
            }
            ReadOp::Scan {
                hash_key,
                after,
                batch_size,
                no_value,
            } => self.scan_page(hash_key.as_deref(), after.as_ref(), *batch_size, *no_value, now_secs),
        }
    }

    fn multi_get_keys(
        &self,
        hash_key: &[u8],
        sort_keys: &[Vec<u8>],
        mut limits: Limits,
        no_value: bool,
        now_secs: u64,
    ) -> Result<ReadResult, StorageError> {
        let mut records = Vec::new();
        for sort_key in sort_keys {
            if let Some((_, value)) = self.get_live(&encode_key(hash_key, sort_key), now_secs)? {
                if !limits.admit(sort_key.len() + value.len()) {
                    return Ok(ReadResult::Records {
                        records,
                        complete: false,
                    });
                }
                records.push(Record {
                    hash_key: hash_key.to_vec(),
                    sort_key: sort_key.clone(),
                    value: if no_value { Vec::new() } else { value },
                });
            }
        }
        Ok(ReadResult::Records {
            records,
            complete: true,
        })
    }

    fn multi_get_range(
        &self,
        hash_key: &[u8],
        range: &SortKeyRange,
        mut limits: Limits,
        no_value: bool,
        now_secs: u64,
    ) -> Result<ReadResult, StorageError> {
        let (hk_start, hk_end) = hash_key_range(hash_key);
        let start = range
            .start
            .as_ref()
            .map(|s| encode_key(hash_key, s))
            .unwrap_or(hk_start);
        let mut records = Vec::new();
        let mut complete = true;
        self.scan_range(&start, &hk_end, now_secs, |_, sort_key, value| {
            if range.start.as_deref() == Some(sort_key) && !range.start_inclusive {
                return true;
            }
            if let Some(stop) = &range.stop {
                if sort_key > stop.as_slice() || (sort_key == stop.as_slice() && !range.stop_inclusive) {
                    return false;
                }
            }
            if !limits.admit(sort_key.len() + value.len()) {
                complete = false;
                return false;
            }
            records.push(Record {
                hash_key: hash_key.to_vec(),
                sort_key: sort_key.to_vec(),
                value: if no_value { Vec::new() } else { value.to_vec() },
            });
            true
        })?;
        Ok(ReadResult::Records { records, complete })
    }

    fn scan_page(
        &self,
        hash_key: Option<&[u8]>,
        after: Option<&(Vec<u8>, Vec<u8>)>,
        batch_size: u32,
        no_value: bool,
        now_secs: u64,
    ) -> Result<ReadResult, StorageError> {
        let (range_start, range_end) = match hash_key {
            Some(hk) => hash_key_range(hk),
            None => (Vec::new(), META_PREFIX.to_vec()),
        };
        let resume = after.map(|(hk, sk)| encode_key(hk, sk));
        let start = match &resume {
            Some(key) if *key > range_start => key.clone(),
            _ => range_start,
        };
        let batch_size = batch_size.max(1) as usize;
        let mut records = Vec::new();
        self.scan_range(&start, &range_end, now_secs, |hk, sk, value| {
            if let Some((after_hk, after_sk)) = after {
                if hk == after_hk.as_slice() && sk == after_sk.as_slice() {
                    return true;
                }
            }
            records.push(Record {
                hash_key: hk.to_vec(),
                sort_key: sk.to_vec(),
                value: if no_value { Vec::new() } else { value.to_vec() },
            });
            records.len() < batch_size
        })?;
        let next = (records.len() == batch_size)
            .then(|| records.last().map(|r| (r.hash_key.clone(), r.sort_key.clone())))
            .flatten();
        Ok(ReadResult::ScanPage { records, next })
    }

    /// Visits live records in `[start, end)` in key order until `visit` returns false.
    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        now_secs: u64,
        mut visit: impl FnMut(&[u8], &[u8], &[u8]) -> bool,
    ) -> Result<(), StorageError> {
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(end.to_vec());
        let mut iter = self.db.raw_iterator_opt(read_options);
        iter.seek(start);
        while iter.valid() {
            let (Some(key), Some(raw)) = (iter.key(), iter.value()) else {
                break;
            };
            if let (Some((hk, sk)), Some((expire_ts, value))) = (decode_key(key), decode_value(raw)) {
                if !is_expired(expire_ts, now_secs) && !visit(hk, sk, value) {
                    return Ok(());
                }
            }
            iter.next();
        }
        iter.status().map_err(self.rocks())
    }

    /// A digest of every live record and the decree it reflects, read from one snapshot.
    pub fn checksum(&self, now_secs: u64) -> Result<ReplicaChecksum, StorageError> {
        let snapshot = self.db.snapshot();
        let last_applied = match snapshot.get_pinned(LAST_APPLIED_DECREE_KEY).map_err(self.rocks())? {
            Some(bytes) if bytes.len() == 8 => Decree::from_be_bytes(bytes.as_ref().try_into().expect("8 bytes")),
            _ => 0,
        };
        let crc = Crc::<u64>::new(&CRC_64_XZ);
        let mut digest = crc.digest();
        let mut record_count = 0;
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(META_PREFIX.to_vec());
        let mut iter = snapshot.raw_iterator_opt(read_options);
        iter.seek([]);
        while iter.valid() {
            let (Some(key), Some(raw)) = (iter.key(), iter.value()) else {
                break;
            };
            if let Some((expire_ts, _)) = decode_value(raw) {
                if !is_expired(expire_ts, now_secs) {
                    digest.update(&(key.len() as u32).to_le_bytes());
                    digest.update(key);
                    digest.update(&(raw.len() as u32).to_le_bytes());
                    digest.update(raw);
                    record_count += 1;
                }
            }
            iter.next();
        }
        iter.status().map_err(self.rocks())?;
        // The client sessions are replicated state too: every replica must hold the same.
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(crate::key::successor(SESSION_PREFIX).expect("a prefix"));
        let mut iter = snapshot.raw_iterator_opt(read_options);
        iter.seek(SESSION_PREFIX);
        while iter.valid() {
            let (Some(key), Some(raw)) = (iter.key(), iter.value()) else {
                break;
            };
            digest.update(&(key.len() as u32).to_le_bytes());
            digest.update(key);
            digest.update(&(raw.len() as u32).to_le_bytes());
            digest.update(raw);
            iter.next();
        }
        iter.status().map_err(self.rocks())?;
        Ok(ReplicaChecksum {
            last_applied,
            record_count,
            checksum: digest.finalize(),
        })
    }
}

impl BaseRead for Engine {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get(key).map_err(self.rocks())
    }
}

fn session_codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 64 * 1024 * 1024 }>()
}

fn encode_session(session: &Session) -> Result<Vec<u8>, StorageError> {
    bincode::serde::encode_to_vec(session, session_codec())
        .map_err(|e| StorageError::Corrupt(format!("cannot encode a client session: {e}")))
}

/// Reads every stored client session.
fn load_sessions(db: &DB, path: &Path) -> Result<SessionTable, StorageError> {
    let rocks = |source| StorageError::Rocks {
        path: path.to_path_buf(),
        source,
    };
    let mut sessions = HashMap::new();
    let mut read_options = ReadOptions::default();
    read_options.set_iterate_upper_bound(crate::key::successor(SESSION_PREFIX).expect("a prefix"));
    let mut iter = db.raw_iterator_opt(read_options);
    iter.seek(SESSION_PREFIX);
    while iter.valid() {
        let (Some(key), Some(raw)) = (iter.key(), iter.value()) else {
            break;
        };
        let id: [u8; 8] = key[SESSION_PREFIX.len()..]
            .try_into()
            .map_err(|_| StorageError::Corrupt(format!("bad session key {key:?} in {}", path.display())))?;
        let (session, _): (Session, _) = bincode::serde::decode_from_slice(raw, session_codec())
            .map_err(|e| StorageError::Corrupt(format!("bad client session in {}: {e}", path.display())))?;
        sessions.insert(u64::from_be_bytes(id), session);
        iter.next();
    }
    iter.status().map_err(rocks)?;
    let last_sweep = match db.get(SESSION_SWEEP_KEY).map_err(rocks)? {
        Some(bytes) if bytes.len() == 8 => u64::from_be_bytes(bytes[..].try_into().expect("8 bytes")),
        _ => 0,
    };
    Ok(SessionTable::new(sessions, last_sweep))
}

/// Count and size limits of a multi-get; 0 means unlimited.
struct Limits {
    count_left: Option<u32>,
    bytes_left: Option<u64>,
}

impl Limits {
    fn new(max_count: u32, max_bytes: u64) -> Self {
        Limits {
            count_left: (max_count > 0).then_some(max_count),
            bytes_left: (max_bytes > 0).then_some(max_bytes),
        }
    }

    fn admit(&mut self, bytes: usize) -> bool {
        if self.count_left == Some(0) || self.bytes_left == Some(0) {
            return false;
        }
        if let Some(count) = &mut self.count_left {
            *count -= 1;
        }
        if let Some(left) = &mut self.bytes_left {
            *left = left.saturating_sub(bytes as u64);
        }
        true
    }
}

#[cfg(test)]
mod tests;
