//! What applying mutations does, independent of where the records live: the semantics of every
//! write operation (TTL, incr, check-and-set), and the admission of client requests against their
//! sessions. The RocksDB engine and the simulator's in-memory engine both apply through here, so
//! they agree byte for byte.
//!
//! ```text
//!  mutations ─► for each op: admit(request) ─┬─ Fresh ─► apply over (base + this batch's writes) ─► record answer
//!                                            ├─ Done  ─► the first answer, nothing written
//!                                            └─ Stale ─► ERR_OUTCOME_UNKNOWN, nothing written
//!            ─► AppliedBatch { writes in order, session changes, answers }
//! ```

use crate::error::StorageError;
use crate::key::{decode_value, encode_key, encode_value, expire_ts_for, is_expired};
use crate::session::{Admission, SessionBatch, SessionChanges, SessionTable};
use aerie_common::{ErrorCode, WireError, WireResult};
use aerie_proto::data::{CheckAndSet, CheckType, TtlUpdate, WriteOp, WriteResult};
use aerie_proto::replica::Mutation;
use std::borrow::Borrow;
use std::collections::HashMap;

/// Where records are read from before a batch changes them.
pub trait BaseRead {
    /// The stored bytes (expiry and value) under `key`, if any.
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
}

/// What a batch of mutations does, ready to be written in one atomic step.
#[derive(Debug, Default)]
pub struct AppliedBatch {
    /// Record writes in order (`None`: delete).
    pub writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub sessions: SessionChanges,
    /// Per mutation, per operation: its answer.
    pub answers: Vec<Vec<WireResult<WriteResult>>>,
}

fn invalid(detail: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_PARAMETERS, detail)
}

/// Applies `mutations` (consecutive, in decree order) over `base` and `sessions`.
pub fn apply_mutations<B: BaseRead, M: Borrow<Mutation>>(
    base: &B,
    sessions: &SessionTable,
    mutations: &[M],
) -> Result<AppliedBatch, StorageError> {
    let mut batch = Batch {
        base,
        overlay: HashMap::new(),
        writes: Vec::new(),
    };
    let mut session_batch = SessionBatch::new(sessions);
    let mut answers = Vec::with_capacity(mutations.len());
    for mutation in mutations.iter().map(Borrow::borrow) {
        let now = mutation.timestamp_secs;
        session_batch.sweep(now);
        let mut op_answers = Vec::with_capacity(mutation.ops.len());
        for op in &mutation.ops {
            let answer = match &op.request {
                None => batch.apply_op(&op.op, now)?,
                Some(request) => match session_batch.admit(request) {
                    Admission::Fresh => {
                        let answer = batch.apply_op(&op.op, now)?;
                        session_batch.record(request, answer.clone(), now);
                        answer
                    }
                    Admission::Done(first) => first,
                    Admission::Stale => Err(WireError::new(
                        ErrorCode::ERR_OUTCOME_UNKNOWN,
                        "a retry of a write its client no longer waits for; not applied again",
                    )),
                },
            };
            op_answers.push(answer);
        }
        answers.push(op_answers);
    }
    Ok(AppliedBatch {
        writes: batch.writes,
        sessions: session_batch.changes,
        answers,
    })
}

/// A batch under construction, with the values it already wrote visible to later operations.
struct Batch<'a, B> {
    base: &'a B,
    /// Key ─► index in `writes` of its latest write in this batch (values are not copied twice).
    overlay: HashMap<Vec<u8>, usize>,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl<B: BaseRead> Batch<'_, B> {
    /// The live value (expiry, user value) of a key as this batch sees it.
    fn get(&self, key: &[u8], now_secs: u64) -> Result<Option<(u32, Vec<u8>)>, StorageError> {
        let raw = match self.overlay.get(key) {
            Some(&index) => self.writes[index].1.clone(),
            None => self.base.get_raw(key)?,
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        let (expire_ts, value) =
            decode_value(&raw).ok_or_else(|| StorageError::Corrupt(format!("short value under {key:?}")))?;
        if is_expired(expire_ts, now_secs) {
            return Ok(None);
        }
        Ok(Some((expire_ts, value.to_vec())))
    }

    fn put(&mut self, key: Vec<u8>, expire_ts: u32, value: &[u8]) {
        let raw = encode_value(expire_ts, value);
        self.overlay.insert(key.clone(), self.writes.len());
        self.writes.push((key, Some(raw)));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key.clone(), self.writes.len());
        self.writes.push((key, None));
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
