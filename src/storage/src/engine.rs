//! The RocksDB engine of one replica. Mutations are applied in decree order, a batch of them in one
//! RocksDB write batch that also records the last applied decree, so data and decree never disagree.
//! Writes skip RocksDB's WAL (the mutation log is the WAL); `flush` makes applied data durable, after
//! which the log below the applied decree may be dropped.
//!
//! Every operation is deterministic given the mutation: TTLs are evaluated against the timestamp the
//! primary put in the mutation, never against the replica's own clock.

use crate::error::StorageError;
use crate::key::{
    decode_key, decode_value, encode_key, encode_value, expire_ts_for, hash_key_range, is_expired,
    LAST_APPLIED_DECREE_KEY, META_PREFIX,
};
use aerie_common::{Decree, ErrorCode, WireError, WireResult};
use aerie_proto::data::{
    CheckAndSet, CheckType, ReadOp, ReadResult, Record, SortKeyRange, TtlUpdate, WriteOp, WriteResult,
};
use aerie_proto::replica::Mutation;
use crc::{Crc, CRC_64_XZ};
use rocksdb::{
    BlockBasedOptions, Cache, CompactionDecision, DBCompressionType, Options, ReadOptions, WriteBatch,
    WriteBufferManager, WriteOptions, DB,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Resources shared by every replica of a process.
#[derive(Clone)]
pub struct EngineOptions {
    pub block_cache: Cache,
    pub write_buffer_manager: WriteBufferManager,
    pub write_buffer_bytes: usize,
}

impl EngineOptions {
    pub fn new(block_cache_bytes: usize, memtable_budget_bytes: usize, write_buffer_bytes: usize) -> Self {
        EngineOptions {
            block_cache: Cache::new_lru_cache(block_cache_bytes),
            write_buffer_manager: WriteBufferManager::new_write_buffer_manager(memtable_budget_bytes, false),
            write_buffer_bytes,
        }
    }
}

pub struct Engine {
    db: DB,
    path: PathBuf,
}

/// A digest of a replica's data at its applied decree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaChecksum {
    pub last_applied: Decree,
    pub record_count: u64,
    pub checksum: u64,
}

fn invalid(detail: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_PARAMETERS, detail)
}

impl Engine {
    pub fn open(path: &Path, options: &EngineOptions) -> Result<Engine, StorageError> {
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
        opts.set_max_log_file_size(8 * 1024 * 1024);
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
        Ok(Engine {
            db,
            path: path.to_path_buf(),
        })
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
        let mut batch = Batch {
            engine: self,
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
        };
        let mut results = Vec::with_capacity(mutations.len());
        for mutation in mutations.iter().map(Borrow::borrow) {
            let mut op_results = Vec::with_capacity(mutation.ops.len());
            for op in &mutation.ops {
                op_results.push(batch.apply_op(op, mutation.timestamp_secs)?);
            }
            results.push(op_results);
        }
        let mut batch = batch.batch;
        batch.put(LAST_APPLIED_DECREE_KEY, last.decree.to_be_bytes());
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        self.db.write_opt(batch, &write_options).map_err(self.rocks())?;
        Ok(results)
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
    pub fn data_bytes(&self) -> u64 {
        [
            rocksdb::properties::TOTAL_SST_FILES_SIZE,
            rocksdb::properties::SIZE_ALL_MEM_TABLES,
        ]
        .into_iter()
        .map(|p| self.db.property_int_value(p).ok().flatten().unwrap_or(0))
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
        Ok(ReplicaChecksum {
            last_applied,
            record_count,
            checksum: digest.finalize(),
        })
    }
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

/// A write batch under construction, with the values it already wrote visible to later operations.
struct Batch<'a> {
    engine: &'a Engine,
    batch: WriteBatch,
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Batch<'_> {
    /// The live value (expiry, user value) of a key as this batch sees it.
    fn get(&self, key: &[u8], now_secs: u64) -> Result<Option<(u32, Vec<u8>)>, StorageError> {
        match self.overlay.get(key) {
            Some(None) => Ok(None),
            Some(Some(raw)) => Ok(decode_value(raw)
                .filter(|(expire_ts, _)| !is_expired(*expire_ts, now_secs))
                .map(|(expire_ts, value)| (expire_ts, value.to_vec()))),
            None => self.engine.get_live(key, now_secs),
        }
    }

    fn put(&mut self, key: Vec<u8>, expire_ts: u32, value: &[u8]) {
        let raw = encode_value(expire_ts, value);
        self.batch.put(&key, &raw);
        self.overlay.insert(key, Some(raw));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.batch.delete(&key);
        self.overlay.insert(key, None);
    }

    fn apply_op(&mut self, op: &WriteOp, now_secs: u64) -> Result<WireResult<WriteResult>, StorageError> {
        Ok(match op {
            WriteOp::Put {
                hash_key,
                sort_key,
                value,
                ttl_secs,
            } => {
                self.put(
                    encode_key(hash_key, sort_key),
                    expire_ts_for(*ttl_secs, now_secs),
                    value,
                );
                Ok(WriteResult::Done)
            }
            WriteOp::MultiPut {
                hash_key,
                kvs,
                ttl_secs,
            } => {
                if kvs.is_empty() {
                    return Ok(Err(invalid("multi_set needs at least one sort key and value")));
                }
                for (sort_key, value) in kvs {
                    self.put(
                        encode_key(hash_key, sort_key),
                        expire_ts_for(*ttl_secs, now_secs),
                        value,
                    );
                }
                Ok(WriteResult::Done)
            }
            WriteOp::Remove { hash_key, sort_key } => {
                self.delete(encode_key(hash_key, sort_key));
                Ok(WriteResult::Done)
            }
            WriteOp::MultiRemove { hash_key, sort_keys } => {
                if sort_keys.is_empty() {
                    return Ok(Err(invalid("multi_del needs at least one sort key")));
                }
                for sort_key in sort_keys {
                    self.delete(encode_key(hash_key, sort_key));
                }
                Ok(WriteResult::Removed {
                    count: sort_keys.len() as u64,
                })
            }
            WriteOp::Incr {
                hash_key,
                sort_key,
                increment,
                ttl,
            } => self.incr(encode_key(hash_key, sort_key), *increment, *ttl, now_secs)?,
            WriteOp::CheckAndSet(cas) => self.check_and_set(cas, now_secs)?,
        })
    }

    fn incr(
        &mut self,
        key: Vec<u8>,
        increment: i64,
        ttl: TtlUpdate,
        now_secs: u64,
    ) -> Result<WireResult<WriteResult>, StorageError> {
        let (old_expire, old_value) = match self.get(&key, now_secs)? {
            Some((expire_ts, value)) => (expire_ts, parse_int(&value)),
            None => (0, Ok(0)),
        };
        let old_value = match old_value {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let Some(new_value) = old_value.checked_add(increment) else {
            return Ok(Err(invalid(format!("incr overflows: {old_value} + {increment}"))));
        };
        let expire_ts = match ttl {
            TtlUpdate::Keep => old_expire,
            TtlUpdate::Clear => 0,
            TtlUpdate::Set(secs) => expire_ts_for(secs, now_secs),
        };
        self.put(key, expire_ts, new_value.to_string().as_bytes());
        Ok(Ok(WriteResult::Incremented { new_value }))
    }

    fn check_and_set(&mut self, cas: &CheckAndSet, now_secs: u64) -> Result<WireResult<WriteResult>, StorageError> {
        let current = self.get(&encode_key(&cas.hash_key, &cas.check_sort_key), now_secs)?;
        let current_value = current.map(|(_, v)| v);
        let passed = match check(&cas.check, current_value.as_deref()) {
            Ok(passed) => passed,
            Err(e) => return Ok(Err(e)),
        };
        if passed {
            self.put(
                encode_key(&cas.hash_key, &cas.set_sort_key),
                expire_ts_for(cas.set_ttl_secs, now_secs),
                &cas.set_value,
            );
        }
        Ok(Ok(WriteResult::CheckAndSet {
            set_succeeded: passed,
            check_value: if cas.return_check_value { current_value } else { None },
        }))
    }
}

fn parse_int(value: &[u8]) -> WireResult<i64> {
    if value.is_empty() {
        return Ok(0);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| invalid("the stored value is not an integer"))
}

/// Evaluates a check-and-set condition on the current value (`None` when absent).
fn check(check: &CheckType, value: Option<&[u8]>) -> WireResult<bool> {
    let exists = value.is_some();
    let v = value.unwrap_or_default();
    let int = |operand: &i64, cmp: fn(i64, i64) -> bool| -> WireResult<bool> {
        match value {
            None => Ok(false),
            Some(v) => parse_int(v).map(|x| cmp(x, *operand)),
        }
    };
    match check {
        CheckType::NoCheck => Ok(true),
        CheckType::ValueNotExist => Ok(!exists),
        CheckType::ValueNotExistOrEmpty => Ok(v.is_empty()),
        CheckType::ValueExist => Ok(exists),
        CheckType::ValueNotEmpty => Ok(!v.is_empty()),
        CheckType::ValueMatchAnywhere(op) => Ok(exists && (op.is_empty() || v.windows(op.len()).any(|w| w == op))),
        CheckType::ValueMatchPrefix(op) => Ok(exists && v.starts_with(op)),
        CheckType::ValueMatchPostfix(op) => Ok(exists && v.ends_with(op)),
        CheckType::ValueBytesLess(op) => Ok(exists && v < op.as_slice()),
        CheckType::ValueBytesLessOrEqual(op) => Ok(exists && v <= op.as_slice()),
        CheckType::ValueBytesEqual(op) => Ok(exists && v == op.as_slice()),
        CheckType::ValueBytesGreaterOrEqual(op) => Ok(exists && v >= op.as_slice()),
        CheckType::ValueBytesGreater(op) => Ok(exists && v > op.as_slice()),
        CheckType::ValueIntLess(op) => int(op, |a, b| a < b),
        CheckType::ValueIntLessOrEqual(op) => int(op, |a, b| a <= b),
        CheckType::ValueIntEqual(op) => int(op, |a, b| a == b),
        CheckType::ValueIntGreaterOrEqual(op) => int(op, |a, b| a >= b),
        CheckType::ValueIntGreater(op) => int(op, |a, b| a > b),
    }
}

#[cfg(test)]
mod tests;
