//! Serde adapters that write byte strings as one length and one copy, where serde's default for
//! `Vec<u8>` visits every byte. In bincode both encodings are the same bytes (a length, then the
//! raw bytes), so these change the speed of encoding and decoding, not the wire or log format
//! (checked by the tests below against serde's default).
//!
//! `Vec<u8>` and `Option<Vec<u8>>` fields use `serde_bytes` directly; the modules here cover the
//! shapes it does not: lists of byte strings and (key, value) pairs.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};
use std::fmt;

/// A (key, value) pair of byte strings.
type Pair = (Vec<u8>, Vec<u8>);

/// `Vec<Vec<u8>>`.
pub mod list {
    use super::*;

    pub fn serialize<S: Serializer>(items: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(Bytes::new(item))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Vec<Vec<u8>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of byte strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // A length read off the wire allocates no more than a bounded amount up front.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element::<ByteBuf>()? {
                    items.push(item.into_vec());
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// `Option<(Vec<u8>, Vec<u8>)>`.
pub mod option_pair {
    use super::*;

    pub fn serialize<S: Serializer>(pair: &Option<Pair>, serializer: S) -> Result<S::Ok, S::Error> {
        pair.as_ref()
            .map(|(a, b)| (Bytes::new(a), Bytes::new(b)))
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Pair>, D::Error> {
        let pair = Option::<(ByteBuf, ByteBuf)>::deserialize(deserializer)?;
        Ok(pair.map(|(a, b)| (a.into_vec(), b.into_vec())))
    }
}

/// `Vec<(Vec<u8>, Vec<u8>)>`.
pub mod pairs {
    use super::*;

    pub fn serialize<S: Serializer>(pairs: &[Pair], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(pairs.len()))?;
        for (a, b) in pairs {
            seq.serialize_element(&(Bytes::new(a), Bytes::new(b)))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Pair>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<Pair>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of (key, value) byte strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some((a, b)) = seq.next_element::<(ByteBuf, ByteBuf)>()? {
                    pairs.push((a.into_vec(), b.into_vec()));
                }
                Ok(pairs)
            }
        }
        deserializer.deserialize_seq(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use crate::data::{CheckAndSet, CheckType, ReadOp, ReadResult, Record, SortKeyRange, WriteOp, WriteResult};
    use serde::{Deserialize, Serialize};

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> T {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .unwrap()
            .0
    }

    /// The messages as they were declared before these adapters: serde's default for every field.
    mod before {
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize)]
        pub enum WriteOp {
            Put {
                hash_key: Vec<u8>,
                sort_key: Vec<u8>,
                value: Vec<u8>,
                ttl_secs: u32,
            },
            MultiPut {
                hash_key: Vec<u8>,
                kvs: Vec<(Vec<u8>, Vec<u8>)>,
                ttl_secs: u32,
            },
            Remove {
                hash_key: Vec<u8>,
                sort_key: Vec<u8>,
            },
            MultiRemove {
                hash_key: Vec<u8>,
                sort_keys: Vec<Vec<u8>>,
            },
        }

        #[derive(Serialize, Deserialize)]
        pub enum ReadOp {
            // Only the position of a variant is encoded: the ones before Scan need no fields here.
            Get,
            MultiGet,
            SortKeyCount,
            Ttl,
            Scan {
                hash_key: Option<Vec<u8>>,
                after: Option<(Vec<u8>, Vec<u8>)>,
                batch_size: u32,
                no_value: bool,
            },
        }

        #[derive(Serialize, Deserialize)]
        pub enum ReadResult {
            Value(Option<Vec<u8>>),
        }
    }

    #[test]
    fn byte_fields_encode_exactly_as_serde_default_did() {
        let (h, s, v) = (b"hash".to_vec(), b"sort".to_vec(), vec![7u8; 300]);
        let kvs = vec![(b"a".to_vec(), vec![1u8; 200]), (Vec::new(), b"x".to_vec())];
        let pairs = [
            (
                encode(&WriteOp::Put {
                    hash_key: h.clone(),
                    sort_key: s.clone(),
                    value: v.clone(),
                    ttl_secs: 9,
                }),
                encode(&before::WriteOp::Put {
                    hash_key: h.clone(),
                    sort_key: s.clone(),
                    value: v.clone(),
                    ttl_secs: 9,
                }),
            ),
            (
                encode(&WriteOp::MultiPut {
                    hash_key: h.clone(),
                    kvs: kvs.clone(),
                    ttl_secs: 0,
                }),
                encode(&before::WriteOp::MultiPut {
                    hash_key: h.clone(),
                    kvs: kvs.clone(),
                    ttl_secs: 0,
                }),
            ),
            (
                encode(&WriteOp::Remove {
                    hash_key: h.clone(),
                    sort_key: Vec::new(),
                }),
                encode(&before::WriteOp::Remove {
                    hash_key: h.clone(),
                    sort_key: Vec::new(),
                }),
            ),
            (
                encode(&WriteOp::MultiRemove {
                    hash_key: h.clone(),
                    sort_keys: vec![s.clone(), v.clone()],
                }),
                encode(&before::WriteOp::MultiRemove {
                    hash_key: h.clone(),
                    sort_keys: vec![s.clone(), v.clone()],
                }),
            ),
            (
                encode(&ReadOp::Scan {
                    hash_key: Some(h.clone()),
                    after: Some((s.clone(), v.clone())),
                    batch_size: 5,
                    no_value: true,
                }),
                encode(&before::ReadOp::Scan {
                    hash_key: Some(h.clone()),
                    after: Some((s.clone(), v.clone())),
                    batch_size: 5,
                    no_value: true,
                }),
            ),
            (
                encode(&ReadResult::Value(Some(v.clone()))),
                encode(&before::ReadResult::Value(Some(v.clone()))),
            ),
        ];
        for (i, (now, then)) in pairs.iter().enumerate() {
            assert_eq!(now, then, "message {i} encodes differently");
        }
        // And what was written before reads back as the same message.
        let put: WriteOp = decode(&pairs[0].1);
        assert_eq!(
            put,
            WriteOp::Put {
                hash_key: h,
                sort_key: s,
                value: v,
                ttl_secs: 9
            }
        );
    }

    #[test]
    fn every_annotated_message_round_trips() {
        let b = |s: &str| s.as_bytes().to_vec();
        let writes = vec![
            WriteOp::MultiPut {
                hash_key: b("h"),
                kvs: vec![(b("s"), b("v")), (b(""), b(""))],
                ttl_secs: 1,
            },
            WriteOp::MultiRemove {
                hash_key: b("h"),
                sort_keys: vec![b("a"), b("")],
            },
            WriteOp::Incr {
                hash_key: b("h"),
                sort_key: b("s"),
                increment: -3,
                ttl: crate::data::TtlUpdate::Keep,
            },
            WriteOp::CheckAndSet(CheckAndSet {
                hash_key: b("h"),
                check_sort_key: b("c"),
                check: CheckType::ValueMatchPrefix(b("p")),
                set_sort_key: b("s"),
                set_value: b("v"),
                set_ttl_secs: 0,
                return_check_value: true,
            }),
        ];
        for write in writes {
            assert_eq!(decode::<WriteOp>(&encode(&write)), write);
        }
        let reads = vec![
            ReadOp::MultiGet {
                hash_key: b("h"),
                sort_keys: vec![b("a")],
                range: SortKeyRange {
                    start: Some(b("a")),
                    start_inclusive: true,
                    stop: None,
                    stop_inclusive: false,
                },
                max_count: 1,
                max_bytes: 2,
                no_value: false,
            },
            ReadOp::Scan {
                hash_key: None,
                after: None,
                batch_size: 1,
                no_value: false,
            },
        ];
        for read in reads {
            assert_eq!(decode::<ReadOp>(&encode(&read)), read);
        }
        let record = Record {
            hash_key: b("h"),
            sort_key: b("s"),
            value: b("v"),
        };
        let results = vec![
            ReadResult::ScanPage {
                records: vec![record.clone()],
                next: Some((b("h"), b("s"))),
            },
            ReadResult::Records {
                records: vec![record],
                complete: true,
            },
        ];
        for result in results {
            assert_eq!(decode::<ReadResult>(&encode(&result)), result);
        }
        let cas = WriteResult::CheckAndSet {
            set_succeeded: false,
            check_value: Some(b("old")),
        };
        assert_eq!(decode::<WriteResult>(&encode(&cas)), cas);
    }
}
