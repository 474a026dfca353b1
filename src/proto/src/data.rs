//! The data model seen by clients: operations on records addressed by hash key and sort key, with an
//! optional TTL, and their results.

use serde::{Deserialize, Serialize};

/// A write, applied deterministically by every replica at its decree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// `ttl_secs = 0` means the record never expires.
    Put {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sort_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        ttl_secs: u32,
    },
    MultiPut {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "crate::bytes::pairs")]
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        ttl_secs: u32,
    },
    Remove {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sort_key: Vec<u8>,
    },
    MultiRemove {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "crate::bytes::list")]
        sort_keys: Vec<Vec<u8>>,
    },
    /// Adds `increment` to an integer value (a missing or expired record counts as 0).
    Incr {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sort_key: Vec<u8>,
        increment: i64,
        ttl: TtlUpdate,
    },
    CheckAndSet(CheckAndSet),
}

impl WriteOp {
    pub fn hash_key(&self) -> &[u8] {
        match self {
            WriteOp::Put { hash_key, .. }
            | WriteOp::MultiPut { hash_key, .. }
            | WriteOp::Remove { hash_key, .. }
            | WriteOp::MultiRemove { hash_key, .. }
            | WriteOp::Incr { hash_key, .. } => hash_key,
            WriteOp::CheckAndSet(cas) => &cas.hash_key,
        }
    }

    /// The sort key used for partitioning when the hash key is empty.
    pub fn first_sort_key(&self) -> &[u8] {
        match self {
            WriteOp::Put { sort_key, .. } | WriteOp::Remove { sort_key, .. } | WriteOp::Incr { sort_key, .. } => {
                sort_key
            }
            WriteOp::MultiPut { kvs, .. } => kvs.first().map(|(k, _)| k.as_slice()).unwrap_or(&[]),
            WriteOp::MultiRemove { sort_keys, .. } => sort_keys.first().map(Vec::as_slice).unwrap_or(&[]),
            WriteOp::CheckAndSet(cas) => &cas.check_sort_key,
        }
    }

    /// Roughly the bytes of keys and values the operation carries (what batching and learning
    /// bound).
    pub fn payload_bytes(&self) -> usize {
        match self {
            WriteOp::Put {
                hash_key,
                sort_key,
                value,
                ..
            } => hash_key.len() + sort_key.len() + value.len(),
            WriteOp::MultiPut { hash_key, kvs, .. } => {
                hash_key.len() + kvs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            }
            WriteOp::Remove { hash_key, sort_key } => hash_key.len() + sort_key.len(),
            WriteOp::Incr { hash_key, sort_key, .. } => hash_key.len() + sort_key.len() + 8,
            WriteOp::MultiRemove { hash_key, sort_keys } => {
                hash_key.len() + sort_keys.iter().map(Vec::len).sum::<usize>()
            }
            WriteOp::CheckAndSet(cas) => {
                cas.hash_key.len() + cas.check_sort_key.len() + cas.set_sort_key.len() + cas.set_value.len()
            }
        }
    }

    /// Operation name for metrics and statistics (Pegasus's names).
    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::Put { .. } => "put",
            WriteOp::MultiPut { .. } => "multi_put",
            WriteOp::Remove { .. } => "remove",
            WriteOp::MultiRemove { .. } => "multi_remove",
            WriteOp::Incr { .. } => "incr",
            WriteOp::CheckAndSet(_) => "check_and_set",
        }
    }
}

/// What an `incr` does to the record's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TtlUpdate {
    #[default]
    Keep,
    Clear,
    Set(u32),
}

/// The condition checked by `check_and_set`, on the value of `check_sort_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckType {
    NoCheck,
    ValueNotExist,
    ValueNotExistOrEmpty,
    ValueExist,
    ValueNotEmpty,
    ValueMatchAnywhere(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueMatchPrefix(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueMatchPostfix(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueBytesLess(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueBytesLessOrEqual(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueBytesEqual(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueBytesGreaterOrEqual(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueBytesGreater(#[serde(with = "serde_bytes")] Vec<u8>),
    ValueIntLess(i64),
    ValueIntLessOrEqual(i64),
    ValueIntEqual(i64),
    ValueIntGreaterOrEqual(i64),
    ValueIntGreater(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAndSet {
    #[serde(with = "serde_bytes")]
    pub hash_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub check_sort_key: Vec<u8>,
    pub check: CheckType,
    #[serde(with = "serde_bytes")]
    pub set_sort_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub set_value: Vec<u8>,
    pub set_ttl_secs: u32,
    pub return_check_value: bool,
}

/// The result of one write operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteResult {
    Done,
    Removed {
        count: u64,
    },
    Incremented {
        new_value: i64,
    },
    CheckAndSet {
        set_succeeded: bool,
        #[serde(with = "serde_bytes")]
        check_value: Option<Vec<u8>>,
    },
}

/// Bounds of a sort-key range; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SortKeyRange {
    #[serde(with = "serde_bytes")]
    pub start: Option<Vec<u8>>,
    pub start_inclusive: bool,
    #[serde(with = "serde_bytes")]
    pub stop: Option<Vec<u8>>,
    pub stop_inclusive: bool,
}

/// A read, always served by the partition's primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOp {
    Get {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sort_key: Vec<u8>,
    },
    /// With `sort_keys` non-empty, fetches exactly those; otherwise the records in `range`.
    MultiGet {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "crate::bytes::list")]
        sort_keys: Vec<Vec<u8>>,
        range: SortKeyRange,
        max_count: u32,
        max_bytes: u64,
        no_value: bool,
    },
    SortKeyCount {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
    },
    Ttl {
        #[serde(with = "serde_bytes")]
        hash_key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        sort_key: Vec<u8>,
    },
    /// One page of a scan, of one hash key or (with `hash_key = None`) of the whole partition.
    Scan {
        #[serde(with = "serde_bytes")]
        hash_key: Option<Vec<u8>>,
        /// Resume strictly after this record, as returned in the previous page.
        #[serde(with = "crate::bytes::option_pair")]
        after: Option<(Vec<u8>, Vec<u8>)>,
        batch_size: u32,
        no_value: bool,
    },
}

impl ReadOp {
    pub fn kind(&self) -> &'static str {
        match self {
            ReadOp::Get { .. } => "get",
            ReadOp::MultiGet { .. } => "multi_get",
            ReadOp::SortKeyCount { .. } => "sortkey_count",
            ReadOp::Ttl { .. } => "ttl",
            ReadOp::Scan { .. } => "scan",
        }
    }

    /// The hash key that decides the partition, if the read addresses one.
    pub fn hash_key(&self) -> Option<&[u8]> {
        match self {
            ReadOp::Get { hash_key, .. }
            | ReadOp::MultiGet { hash_key, .. }
            | ReadOp::SortKeyCount { hash_key }
            | ReadOp::Ttl { hash_key, .. } => Some(hash_key),
            ReadOp::Scan { hash_key, .. } => hash_key.as_deref(),
        }
    }
}

/// A record returned by a read: sort key, value (empty when `no_value`), and the hash key for scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(with = "serde_bytes")]
    pub hash_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub sort_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    Value(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    Records {
        records: Vec<Record>,
        complete: bool,
    },
    Count(u64),
    /// `None`: not found; `Some(None)`: found, no TTL; `Some(Some(s))`: expires in `s` seconds.
    Ttl(Option<Option<u32>>),
    ScanPage {
        records: Vec<Record>,
        #[serde(with = "crate::bytes::option_pair")]
        next: Option<(Vec<u8>, Vec<u8>)>,
    },
}

impl ReadResult {
    /// Bytes of keys and values the answer carries (what table statistics count as read).
    pub fn payload_bytes(&self) -> u64 {
        let records = |records: &[Record]| {
            records
                .iter()
                .map(|r| r.hash_key.len() + r.sort_key.len() + r.value.len())
                .sum::<usize>()
        };
        let bytes = match self {
            ReadResult::Value(value) => value.as_ref().map_or(0, Vec::len),
            ReadResult::Records { records: r, .. } | ReadResult::ScanPage { records: r, .. } => records(r),
            ReadResult::Count(_) | ReadResult::Ttl(_) => 8,
        };
        bytes as u64
    }
}
