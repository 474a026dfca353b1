//! The record schema in RocksDB.
//!
//! Key: `[hash_key length: u16 big-endian][hash_key][sort_key]`, so one hash key's records are one
//! contiguous range ordered by sort key. Value: `[expire_ts: u32 big-endian Unix seconds, 0 = never]
//! [user value]`. Keys starting with `0xFF 0xFF` are reserved for the engine's own metadata; a hash
//! key can never be that long, so they never collide with records.

pub const META_PREFIX: [u8; 2] = [0xff, 0xff];
pub const LAST_APPLIED_DECREE_KEY: &[u8] = b"\xff\xff/last_applied_decree";
/// Client sessions: this prefix, then the session id as 8 big-endian bytes (see `session.rs`).
pub const SESSION_PREFIX: &[u8] = b"\xff\xff/session/";
/// When silent sessions were last swept (mutation time, 8 big-endian bytes).
pub const SESSION_SWEEP_KEY: &[u8] = b"\xff\xff/session_sweep";

pub fn session_key(client: u64) -> Vec<u8> {
    let mut key = SESSION_PREFIX.to_vec();
    key.extend_from_slice(&client.to_be_bytes());
    key
}
/// The longest hash key the encoding admits.
pub const MAX_HASH_KEY_LEN: usize = 0xfffe;

pub fn encode_key(hash_key: &[u8], sort_key: &[u8]) -> Vec<u8> {
    debug_assert!(hash_key.len() <= MAX_HASH_KEY_LEN);
    let mut key = Vec::with_capacity(2 + hash_key.len() + sort_key.len());
    key.extend_from_slice(&(hash_key.len() as u16).to_be_bytes());
    key.extend_from_slice(hash_key);
    key.extend_from_slice(sort_key);
    key
}

/// Splits a stored key into hash key and sort key; `None` for metadata or malformed keys.
pub fn decode_key(key: &[u8]) -> Option<(&[u8], &[u8])> {
    if key.len() < 2 || key.starts_with(&META_PREFIX) {
        return None;
    }
    let len = u16::from_be_bytes([key[0], key[1]]) as usize;
    if key.len() < 2 + len {
        return None;
    }
    Some((&key[2..2 + len], &key[2 + len..]))
}

/// The key range `[start, end)` of every record of one hash key.
pub fn hash_key_range(hash_key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let start = encode_key(hash_key, b"");
    let end = successor(&start).unwrap_or_else(|| META_PREFIX.to_vec());
    (start, end)
}

/// The smallest key greater than every key with this prefix, if any.
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

pub fn encode_value(expire_ts: u32, user_value: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(4 + user_value.len());
    value.extend_from_slice(&expire_ts.to_be_bytes());
    value.extend_from_slice(user_value);
    value
}

/// Expiry time and user value of a stored value.
pub fn decode_value(value: &[u8]) -> Option<(u32, &[u8])> {
    if value.len() < 4 {
        return None;
    }
    Some((
        u32::from_be_bytes([value[0], value[1], value[2], value[3]]),
        &value[4..],
    ))
}

/// The expiry timestamp for a TTL given at `now_secs` (0 = never expires).
pub fn expire_ts_for(ttl_secs: u32, now_secs: u64) -> u32 {
    if ttl_secs == 0 {
        0
    } else {
        (now_secs + ttl_secs as u64).min(u32::MAX as u64) as u32
    }
}

pub fn is_expired(expire_ts: u32, now_secs: u64) -> bool {
    expire_ts != 0 && (expire_ts as u64) <= now_secs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip() {
        let key = encode_key(b"user", b"profile");
        assert_eq!(decode_key(&key), Some((&b"user"[..], &b"profile"[..])));
        assert_eq!(decode_key(LAST_APPLIED_DECREE_KEY), None);
        assert_eq!(decode_key(&[0x00]), None);
        assert_eq!(decode_key(&[0x00, 0x05, b'a']), None);
    }

    #[test]
    fn records_of_one_hash_key_are_contiguous_and_sorted() {
        let (start, end) = hash_key_range(b"h");
        let inside = [
            encode_key(b"h", b""),
            encode_key(b"h", b"a"),
            encode_key(b"h", b"\xff\xff"),
        ];
        for key in &inside {
            assert!(*key >= start && *key < end);
        }
        for other in [encode_key(b"g", b"z"), encode_key(b"i", b""), encode_key(b"hh", b"")] {
            assert!(other < start || other >= end, "{other:?} leaked into the range");
        }
        assert!(encode_key(b"h", b"a") < encode_key(b"h", b"b"));
    }

    #[test]
    fn values_carry_expiry() {
        let value = encode_value(1_000, b"v");
        assert_eq!(decode_value(&value), Some((1_000, &b"v"[..])));
        assert!(is_expired(1_000, 1_000));
        assert!(!is_expired(1_000, 999));
        assert!(!is_expired(0, u64::MAX));
        assert_eq!(expire_ts_for(0, 5), 0);
        assert_eq!(expire_ts_for(10, 5), 15);
    }

    proptest! {
        #[test]
        fn any_key_round_trips(hk in proptest::collection::vec(any::<u8>(), 0..300),
                               sk in proptest::collection::vec(any::<u8>(), 0..300)) {
            let key = encode_key(&hk, &sk);
            prop_assert_eq!(decode_key(&key), Some((hk.as_slice(), sk.as_slice())));
            prop_assert!(!key.starts_with(&META_PREFIX));
        }
    }
}
