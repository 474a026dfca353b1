//! The mutation log of one replica: numbered segment files `log.00000001`, ... each a sequence of
//! records `[payload length: u32 LE][crc32c(payload): u32 LE][payload: bincode(Mutation)]`.
//!
//! `append` writes a whole group of mutations with one write and (in fsync mode) one `fdatasync`:
//! that is the group commit. `open` replays every segment; a torn or corrupt record in the last
//! segment is where a crash interrupted a write, so the file is cut there and the record is never
//! applied. A bad record in an earlier segment cannot come from a crash and makes `open` fail.

use crate::error::StorageError;
use aerie_common::Decree;
use aerie_proto::replica::Mutation;
use crc::{Crc, CRC_32_ISCSI};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

const CRC32C: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);
const HEADER_LEN: usize = 8;
const MAX_RECORD_LEN: usize = 128 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    pub segment_bytes: u64,
    /// `fdatasync` after every group commit.
    pub sync: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    index: u64,
    path: PathBuf,
    bytes: u64,
    max_decree: Decree,
}

pub struct MutationLog {
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment>,
    current: File,
}

/// The log, opened for appending, and what it held.
pub struct ReplayedLog {
    pub log: MutationLog,
    /// Mutations with a decree above `replay_after`, in log order (a later record for a decree wins).
    pub mutations: Vec<Mutation>,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
}

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("log.{index:08}"))
}

/// Appends one record for `mutation` to `out`.
pub(crate) fn encode_record(mutation: &Mutation, out: &mut Vec<u8>) -> Result<(), StorageError> {
    let payload = bincode::serde::encode_to_vec(mutation, codec())
        .map_err(|e| StorageError::Corrupt(format!("cannot encode mutation: {e}")))?;
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&CRC32C.checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Parses records from `bytes`: the good ones, and where (and why) parsing stopped early, if it did.
pub(crate) fn decode_records(bytes: &[u8]) -> (Vec<Mutation>, Option<(u64, String)>) {
    let mut mutations = Vec::new();
    let mut offset = 0usize;
    while offset < bytes.len() {
        let bad = |reason: &str| Some((offset as u64, reason.to_string()));
        if bytes.len() - offset < HEADER_LEN {
            return (mutations, bad("incomplete record header"));
        }
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_RECORD_LEN {
            return (mutations, bad("impossible record length"));
        }
        let start = offset + HEADER_LEN;
        if bytes.len() - start < len {
            return (mutations, bad("incomplete record payload"));
        }
        let payload = &bytes[start..start + len];
        if CRC32C.checksum(payload) != crc {
            return (mutations, bad("checksum mismatch"));
        }
        match bincode::serde::decode_from_slice::<Mutation, _>(payload, codec()) {
            Ok((mutation, used)) if used == len => mutations.push(mutation),
            _ => return (mutations, bad("undecodable record")),
        }
        offset = start + len;
    }
    (mutations, None)
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("log."))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        found.push((index, entry.path()));
    }
    found.sort();
    Ok(found)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io(dir))
}

impl MutationLog {
    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path, options: LogOptions, replay_after: Decree) -> Result<ReplayedLog, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        let found = list_segments(dir)?;
        let mut segments = Vec::with_capacity(found.len());
        let mut mutations = Vec::new();
        let mut truncated_bytes = 0;
        let last = found.len().saturating_sub(1);
        for (position, (index, path)) in found.into_iter().enumerate() {
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(StorageError::io(&path))?;
            let (records, stopped) = decode_records(&bytes);
            let mut size = bytes.len() as u64;
            if let Some((offset, reason)) = stopped {
                if position != last {
                    return Err(StorageError::CorruptLog { path, offset, reason });
                }
                warn!(path = %path.display(), offset, reason, "cutting a torn record off the log tail");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(StorageError::io(&path))?;
                file.set_len(offset).map_err(StorageError::io(&path))?;
                file.sync_all().map_err(StorageError::io(&path))?;
                truncated_bytes = size - offset;
                size = offset;
            }
            let max_decree = records.iter().map(|m| m.decree).max().unwrap_or(0);
            mutations.extend(records.into_iter().filter(|m| m.decree > replay_after));
            segments.push(Segment {
                index,
                path,
                bytes: size,
                max_decree,
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            File::create(&path).map_err(StorageError::io(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                index: 1,
                path,
                bytes: 0,
                max_decree: 0,
            });
        }
        let current_path = &segments.last().expect("one segment").path;
        let current = OpenOptions::new()
            .append(true)
            .open(current_path)
            .map_err(StorageError::io(current_path))?;
        Ok(ReplayedLog {
            log: MutationLog {
                dir: dir.to_path_buf(),
                options,
                segments,
                current,
            },
            mutations,
            truncated_bytes,
        })
    }

    /// Appends a group of mutations durably (per the sync option); returns the bytes written.
    pub fn append<'a>(&mut self, mutations: impl IntoIterator<Item = &'a Mutation>) -> Result<u64, StorageError> {
        let mut buf = Vec::new();
        let mut newest = 0;
        for mutation in mutations {
            encode_record(mutation, &mut buf)?;
            newest = newest.max(mutation.decree);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let current_bytes = self.segments.last().expect("one segment").bytes;
        if current_bytes > 0 && current_bytes + buf.len() as u64 > self.options.segment_bytes {
            self.roll()?;
        }
        let segment = self.segments.last_mut().expect("one segment");
        self.current.write_all(&buf).map_err(StorageError::io(&segment.path))?;
        if self.options.sync {
            self.current.sync_data().map_err(StorageError::io(&segment.path))?;
        }
        segment.bytes += buf.len() as u64;
        segment.max_decree = segment.max_decree.max(newest);
        Ok(buf.len() as u64)
    }

    /// Forces everything written so far to disk.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let path = &self.segments.last().expect("one segment").path;
        self.current.sync_data().map_err(StorageError::io(path))
    }

    fn roll(&mut self) -> Result<(), StorageError> {
        self.sync()?;
        let index = self.segments.last().expect("one segment").index + 1;
        let path = segment_path(&self.dir, index);
        self.current = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        sync_dir(&self.dir)?;
        self.segments.push(Segment {
            index,
            path,
            bytes: 0,
            max_decree: 0,
        });
        Ok(())
    }

    /// Deletes closed segments whose every mutation is at or below `durable_decree`.
    pub fn gc(&mut self, durable_decree: Decree) -> Result<usize, StorageError> {
        let closed = self.segments.len() - 1;
        let removable = self.segments[..closed]
            .iter()
            .take_while(|s| s.max_decree <= durable_decree)
            .count();
        for segment in self.segments.drain(..removable) {
            fs::remove_file(&segment.path).map_err(StorageError::io(&segment.path))?;
        }
        Ok(removable)
    }

    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::Gpid;
    use aerie_proto::data::WriteOp;

    fn mutation(decree: Decree) -> Mutation {
        Mutation {
            gpid: Gpid::new(1, 0),
            ballot: 1,
            decree,
            last_committed: decree - 1,
            timestamp_secs: 1_700_000_000,
            ops: vec![WriteOp::Put {
                hash_key: format!("h{decree}").into_bytes(),
                sort_key: b"s".to_vec(),
                value: vec![7; 100],
                ttl_secs: 0,
            }],
        }
    }

    const OPTIONS: LogOptions = LogOptions {
        segment_bytes: 1 << 20,
        sync: true,
    };

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        encode_record(&mutation(1), &mut buf).unwrap();
        encode_record(&mutation(2), &mut buf).unwrap();
        let (records, stopped) = decode_records(&buf);
        assert_eq!(records, vec![mutation(1), mutation(2)]);
        assert!(stopped.is_none());
    }

    #[test]
    fn every_torn_prefix_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mutation(1), &mut buf).unwrap();
        let first_len = buf.len();
        encode_record(&mutation(2), &mut buf).unwrap();
        for cut in first_len + 1..buf.len() {
            let (records, stopped) = decode_records(&buf[..cut]);
            assert_eq!(records, vec![mutation(1)], "cut at {cut}");
            assert_eq!(stopped.unwrap().0, first_len as u64);
        }
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mutation(1), &mut buf).unwrap();
        let last = buf.len() - 1;
        buf[last] ^= 0x01;
        let (records, stopped) = decode_records(&buf);
        assert!(records.is_empty());
        assert_eq!(stopped.unwrap().1, "checksum mismatch");
    }

    #[test]
    fn replay_returns_what_was_appended_after_the_given_decree() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
        log.append(&[mutation(1), mutation(2)]).unwrap();
        log.append(&[mutation(3)]).unwrap();
        drop(log);
        let replayed = MutationLog::open(dir.path(), OPTIONS, 1).unwrap();
        let decrees: Vec<_> = replayed.mutations.iter().map(|m| m.decree).collect();
        assert_eq!(decrees, vec![2, 3]);
        assert_eq!(replayed.truncated_bytes, 0);
    }

    #[test]
    fn torn_tail_is_truncated_and_never_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
        log.append(&[mutation(1), mutation(2)]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 1);
        let full = fs::metadata(&path).unwrap().len();
        // A crash in the middle of the second record.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 10)
            .unwrap();

        let replayed = MutationLog::open(dir.path(), OPTIONS, 0).unwrap();
        assert_eq!(replayed.mutations, vec![mutation(1)]);
        assert!(replayed.truncated_bytes > 0);
        // New appends follow the good prefix and replay cleanly.
        let mut log = replayed.log;
        log.append(&[mutation(2)]).unwrap();
        drop(log);
        let again = MutationLog::open(dir.path(), OPTIONS, 0).unwrap();
        assert_eq!(again.mutations, vec![mutation(1), mutation(2)]);
        assert_eq!(again.truncated_bytes, 0);
    }

    #[test]
    fn corrupt_tail_record_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
        log.append(&[mutation(1), mutation(2)]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let replayed = MutationLog::open(dir.path(), OPTIONS, 0).unwrap();
        assert_eq!(replayed.mutations, vec![mutation(1)]);
    }

    #[test]
    fn corruption_before_the_tail_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let small = LogOptions {
            segment_bytes: 200,
            sync: false,
        };
        let mut log = MutationLog::open(dir.path(), small, 0).unwrap().log;
        for decree in 1..=4 {
            log.append(&[mutation(decree)]).unwrap();
        }
        assert!(log.segment_count() > 1);
        drop(log);
        let first = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        bytes[10] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let err = MutationLog::open(dir.path(), small, 0).err().expect("must refuse");
        assert!(matches!(err, StorageError::CorruptLog { .. }), "{err}");
    }

    #[test]
    fn segments_roll_and_gc_keeps_what_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let small = LogOptions {
            segment_bytes: 200,
            sync: false,
        };
        let mut log = MutationLog::open(dir.path(), small, 0).unwrap().log;
        for decree in 1..=6 {
            log.append(&[mutation(decree)]).unwrap();
        }
        let segments = log.segment_count();
        assert!(segments >= 3, "expected rolling, got {segments} segments");
        assert_eq!(log.gc(0).unwrap(), 0);
        let removed = log.gc(3).unwrap();
        assert!(removed >= 1);
        drop(log);
        let replayed = MutationLog::open(dir.path(), small, 0).unwrap();
        let decrees: Vec<_> = replayed.mutations.iter().map(|m| m.decree).collect();
        assert!(
            decrees.contains(&4) && decrees.contains(&5) && decrees.contains(&6),
            "{decrees:?}"
        );
        assert!(decrees.iter().all(|d| *d > 0));
    }
}
