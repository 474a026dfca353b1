//! Checks on client requests before they enter the write path or touch the engine: key and value
//! sizes, and that the key really belongs to this partition.

use aerie_common::{partition_index, ErrorCode, Gpid, WireError, WireResult};
use aerie_proto::data::{CheckAndSet, ReadOp, WriteOp};
use aerie_storage::key::MAX_HASH_KEY_LEN;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

fn invalid(detail: String) -> WireError {
    WireError::new(ErrorCode::ERR_INVALID_PARAMETERS, detail)
}

impl Limits {
    fn hash_key(&self, hash_key: &[u8]) -> WireResult<()> {
        let max = self.max_key_bytes.min(MAX_HASH_KEY_LEN);
        if hash_key.len() > max {
            return Err(WireError::new(
                ErrorCode::ERR_KEY_TOO_LARGE,
                format!("hash key of {} bytes exceeds the limit of {max} bytes", hash_key.len()),
            ));
        }
        Ok(())
    }

    fn sort_key(&self, sort_key: &[u8]) -> WireResult<()> {
        if sort_key.len() > self.max_key_bytes {
            return Err(WireError::new(
                ErrorCode::ERR_KEY_TOO_LARGE,
                format!(
                    "sort key of {} bytes exceeds the limit of {} bytes",
                    sort_key.len(),
                    self.max_key_bytes
                ),
            ));
        }
        Ok(())
    }

    fn value(&self, value: &[u8]) -> WireResult<()> {
        if value.len() > self.max_value_bytes {
            return Err(WireError::new(
                ErrorCode::ERR_VALUE_TOO_LARGE,
                format!(
                    "value of {} bytes exceeds the limit of {} bytes (replication.max_value_bytes)",
                    value.len(),
                    self.max_value_bytes
                ),
            ));
        }
        Ok(())
    }
}

fn require_hash_key(hash_key: &[u8], op: &str) -> WireResult<()> {
    if hash_key.is_empty() {
        return Err(invalid(format!("{op} needs a non-empty hash key")));
    }
    Ok(())
}

fn check_partition(gpid: Gpid, partition_count: u32, hash_key: &[u8], sort_key: &[u8]) -> WireResult<()> {
    let expected = partition_index(hash_key, sort_key, partition_count);
    if expected != gpid.pidx {
        return Err(invalid(format!(
            "the key belongs to partition {}.{expected}, not {gpid}; refresh the routing table",
            gpid.app_id
        )));
    }
    Ok(())
}

fn check_partition_count(app_count: u32, request_count: u32) -> WireResult<()> {
    if app_count != request_count {
        return Err(invalid(format!(
            "the table has {app_count} partitions, the request assumed {request_count}; refresh the routing table"
        )));
    }
    Ok(())
}

pub fn validate_write(
    op: &WriteOp,
    gpid: Gpid,
    app_partitions: u32,
    request_partitions: u32,
    limits: &Limits,
) -> WireResult<()> {
    check_partition_count(app_partitions, request_partitions)?;
    limits.hash_key(op.hash_key())?;
    match op {
        WriteOp::Put { sort_key, value, .. } => {
            limits.sort_key(sort_key)?;
            limits.value(value)?;
        }
        WriteOp::MultiPut { hash_key, kvs, .. } => {
            require_hash_key(hash_key, "multi_set")?;
            if kvs.is_empty() {
                return Err(invalid("multi_set needs at least one sort key and value".into()));
            }
            for (sort_key, value) in kvs {
                limits.sort_key(sort_key)?;
                limits.value(value)?;
            }
        }
        WriteOp::Remove { sort_key, .. } | WriteOp::Incr { sort_key, .. } => limits.sort_key(sort_key)?,
        WriteOp::MultiRemove { hash_key, sort_keys } => {
            require_hash_key(hash_key, "multi_del")?;
            if sort_keys.is_empty() {
                return Err(invalid("multi_del needs at least one sort key".into()));
            }
            for sort_key in sort_keys {
                limits.sort_key(sort_key)?;
            }
        }
        WriteOp::CheckAndSet(CheckAndSet {
            hash_key,
            check_sort_key,
            set_sort_key,
            set_value,
            ..
        }) => {
            require_hash_key(hash_key, "check_and_set")?;
            limits.sort_key(check_sort_key)?;
            limits.sort_key(set_sort_key)?;
            limits.value(set_value)?;
        }
    }
    check_partition(gpid, app_partitions, op.hash_key(), op.first_sort_key())
}

pub fn validate_read(
    op: &ReadOp,
    gpid: Gpid,
    app_partitions: u32,
    request_partitions: u32,
    limits: &Limits,
) -> WireResult<()> {
    check_partition_count(app_partitions, request_partitions)?;
    match op {
        ReadOp::Get { hash_key, sort_key } | ReadOp::Ttl { hash_key, sort_key } => {
            limits.hash_key(hash_key)?;
            limits.sort_key(sort_key)?;
            check_partition(gpid, app_partitions, hash_key, sort_key)
        }
        ReadOp::MultiGet { hash_key, .. } => {
            require_hash_key(hash_key, "multi_get")?;
            limits.hash_key(hash_key)?;
            check_partition(gpid, app_partitions, hash_key, b"")
        }
        ReadOp::SortKeyCount { hash_key } => {
            require_hash_key(hash_key, "sortkey_count")?;
            limits.hash_key(hash_key)?;
            check_partition(gpid, app_partitions, hash_key, b"")
        }
        ReadOp::Scan { hash_key, .. } => match hash_key {
            Some(hash_key) => {
                require_hash_key(hash_key, "scan")?;
                limits.hash_key(hash_key)?;
                check_partition(gpid, app_partitions, hash_key, b"")
            }
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_bytes: 16,
        max_value_bytes: 32,
    };

    fn put(hk: &[u8], sk: &[u8], value: &[u8]) -> WriteOp {
        WriteOp::Put {
            hash_key: hk.to_vec(),
            sort_key: sk.to_vec(),
            value: value.to_vec(),
            ttl_secs: 0,
        }
    }

    fn gpid_of(hk: &[u8], partitions: u32) -> Gpid {
        Gpid::new(1, partition_index(hk, b"", partitions))
    }

    #[test]
    fn a_key_for_this_partition_passes() {
        assert!(validate_write(&put(b"h", b"s", b"v"), gpid_of(b"h", 8), 8, 8, &LIMITS).is_ok());
    }

    #[test]
    fn a_key_for_another_partition_is_refused() {
        let gpid = gpid_of(b"h", 8);
        let other = Gpid::new(1, (gpid.pidx + 1) % 8);
        let err = validate_write(&put(b"h", b"s", b"v"), other, 8, 8, &LIMITS).unwrap_err();
        assert!(err.detail.contains("refresh the routing table"), "{err}");
    }

    #[test]
    fn oversized_keys_and_values_are_named() {
        let gpid = gpid_of(b"h", 1);
        let err = validate_write(&put(b"h", &[b'k'; 17], b"v"), gpid, 1, 1, &LIMITS).unwrap_err();
        assert_eq!(err.code, ErrorCode::ERR_KEY_TOO_LARGE);
        let err = validate_write(&put(b"h", b"s", &[0; 33]), gpid, 1, 1, &LIMITS).unwrap_err();
        assert_eq!(err.code, ErrorCode::ERR_VALUE_TOO_LARGE);
        assert!(err.detail.contains("33 bytes"));
    }

    #[test]
    fn stale_partition_count_is_refused() {
        let err = validate_write(&put(b"h", b"s", b"v"), gpid_of(b"h", 8), 8, 4, &LIMITS).unwrap_err();
        assert!(err.detail.contains("has 8 partitions"), "{err}");
    }

    #[test]
    fn multi_operations_need_a_hash_key_and_content() {
        let op = WriteOp::MultiPut {
            hash_key: vec![],
            kvs: vec![(b"a".to_vec(), b"v".to_vec())],
            ttl_secs: 0,
        };
        assert!(validate_write(&op, Gpid::new(1, 0), 1, 1, &LIMITS).is_err());
        let op = WriteOp::MultiRemove {
            hash_key: b"h".to_vec(),
            sort_keys: vec![],
        };
        assert!(validate_write(&op, Gpid::new(1, 0), 1, 1, &LIMITS).is_err());
    }
}
