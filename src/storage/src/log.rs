//! The mutation log of one replica: numbered segment files `log.00000001`, ... each a sequence of
//! records `[payload length: u32 LE][crc32c(payload): u32 LE][payload: bincode(LogRecord)]`. A record
//! is a mutation, or a commit marker saying which decree is known committed (written when no
//! mutation is about to carry that news, so that a restart knows exactly what it may apply).
//!
//! `append` writes a whole group of mutations with one write and (in fsync mode) one `fdatasync`:
//! that is the group commit. `open` replays every segment; a torn record at the end of the last
//! segment is where a crash interrupted a write, so the file is cut there and the record is never
//! applied. A bad record followed by valid ones, or a bad record in an earlier segment, cannot come
//! from a crash (a write is only ever torn at its end): it is corruption, and `open` fails.

use crate::error::StorageError;
use crate::frames::{self, MAX_FRAME_LEN as MAX_RECORD_LEN};
use aerie_common::Decree;
use aerie_proto::replica::Mutation;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

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
    /// Smallest and largest decree recorded in the segment (0 when empty).
    min_decree: Decree,
    max_decree: Decree,
}

/// A consistent view of the log's segments at one moment, readable without holding the log: only
/// the bytes that were complete records at that moment are read.
#[derive(Debug, Clone)]
pub struct LogSnapshot {
    segments: Vec<SegmentView>,
    /// The smallest decree the log still holds, if any.
    pub first_decree: Option<Decree>,
}

/// One segment as a snapshot sees it: its complete bytes and the decrees it records (0 when empty).
#[derive(Debug, Clone)]
struct SegmentView {
    path: PathBuf,
    bytes: u64,
    min_decree: Decree,
    max_decree: Decree,
}

pub struct MutationLog {
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment>,
    current: File,
}

/// One record of the log, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRecord {
    Mutation(Mutation),
    /// Every decree up to this one is committed.
    Committed(Decree),
}

/// One record to append; encodes exactly as the matching [`LogRecord`].
#[derive(Debug, Clone, Copy, Serialize)]
pub enum LogItem<'a> {
    Mutation(&'a Mutation),
    Committed(Decree),
}

/// One record, encoded: its payload and, for a mutation, its decree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    pub payload: Vec<u8>,
    pub decree: Option<Decree>,
}

impl EncodedRecord {
    pub fn new(item: LogItem<'_>) -> Result<Self, StorageError> {
        Ok(EncodedRecord {
            payload: encode_payload(item)?,
            decree: match item {
                LogItem::Mutation(m) => Some(m.decree),
                LogItem::Committed(_) => None,
            },
        })
    }
}

/// The log, opened for appending, and what it held.
pub struct ReplayedLog {
    pub log: MutationLog,
    /// Mutations with a decree above `replay_after`, in log order (a later record for a decree wins).
    pub mutations: Vec<Mutation>,
    /// The highest commit marker in the log (0 if none).
    pub committed_marker: Decree,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
}

fn codec() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_LEN>()
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("log.{index:08}"))
}

/// The payload of one record: what both this log and the node's shared log carry (see
/// `shared_log`), encoded once for both.
pub fn encode_payload(item: LogItem<'_>) -> Result<Vec<u8>, StorageError> {
    bincode::serde::encode_to_vec(item, codec())
        .map_err(|e| StorageError::Corrupt(format!("cannot encode a log record: {e}")))
}

/// One record's payload, read back (`None` unless it is exactly one record).
pub(crate) fn parse_payload(payload: &[u8]) -> Option<LogRecord> {
    match aerie_common::codec::decode_bounded::<LogRecord>(payload, MAX_RECORD_LEN) {
        Ok((record, used)) if used == payload.len() => Some(record),
        _ => None,
    }
}

/// Appends one record to `out`.
#[cfg(test)]
pub(crate) fn encode_record(item: LogItem<'_>, out: &mut Vec<u8>) -> Result<(), StorageError> {
    frames::write_frame(&[&encode_payload(item)?], out);
    Ok(())
}

/// Parses records from `bytes`: the good ones, and where (and why) parsing stopped early, if it did.
pub(crate) fn decode_records(bytes: &[u8]) -> (Vec<LogRecord>, Option<(u64, String)>) {
    frames::decode_frames(bytes, parse_payload)
}

/// The files `<prefix><number>` in `dir`, by number.
pub(crate) fn list_segments(dir: &Path, prefix: &str) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let entry = entry.map_err(StorageError::io(dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        found.push((index, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// Creates a new, empty segment file for appending, and makes its name durable.
pub(crate) fn create_segment(dir: &Path, path: &Path) -> Result<File, StorageError> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(StorageError::io(path))?;
    sync_dir(dir)?;
    Ok(file)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io(dir))
}

impl MutationLog {
    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path, options: LogOptions, replay_after: Decree) -> Result<ReplayedLog, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        let found = list_segments(dir, "log.")?;
        let mut segments = Vec::with_capacity(found.len());
        let mut mutations = Vec::new();
        let mut committed_marker = 0;
        let mut truncated_bytes = 0;
        let last = found.len().saturating_sub(1);
        for (position, (index, path)) in found.into_iter().enumerate() {
            let read = frames::read_segment(&path, position == last, parse_payload)?;
            let (records, size) = (read.records, read.bytes);
            truncated_bytes += read.truncated;
            let decrees = || {
                records.iter().filter_map(|r| match r {
                    LogRecord::Mutation(m) => Some(m.decree),
                    LogRecord::Committed(_) => None,
                })
            };
            let max_decree = decrees().max().unwrap_or(0);
            let min_decree = decrees().min().unwrap_or(0);
            for record in records {
                match record {
                    LogRecord::Mutation(m) if m.decree > replay_after => mutations.push(m),
                    LogRecord::Mutation(_) => {}
                    LogRecord::Committed(d) => committed_marker = committed_marker.max(d),
                }
            }
            segments.push(Segment {
                index,
                path,
                bytes: size,
                min_decree,
                max_decree,
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            create_segment(dir, &path)?;
            segments.push(Segment {
                index: 1,
                path,
                bytes: 0,
                min_decree: 0,
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
            committed_marker,
            truncated_bytes,
        })
    }

    /// Appends a group of mutations durably (per the sync option); returns the bytes written.
    pub fn append<'a>(&mut self, mutations: impl IntoIterator<Item = &'a Mutation>) -> Result<u64, StorageError> {
        self.append_items(mutations.into_iter().map(LogItem::Mutation))
    }

    /// Appends a group of records (mutations and commit markers) as one group commit.
    pub fn append_items<'a>(&mut self, items: impl IntoIterator<Item = LogItem<'a>>) -> Result<u64, StorageError> {
        let records = items
            .into_iter()
            .map(EncodedRecord::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.append_encoded(&records)
    }

    /// Appends records encoded beforehand (once, for this log and the shared log) as one group commit.
    pub fn append_encoded(&mut self, records: &[EncodedRecord]) -> Result<u64, StorageError> {
        let mut buf = Vec::with_capacity(records.iter().map(|r| r.payload.len() + frames::HEADER_LEN).sum());
        let mut newest = 0;
        let mut oldest = Decree::MAX;
        for record in records {
            frames::write_frame(&[&record.payload], &mut buf);
            if let Some(decree) = record.decree {
                newest = newest.max(decree);
                oldest = oldest.min(decree);
            }
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
        if oldest != Decree::MAX && (segment.min_decree == 0 || oldest < segment.min_decree) {
            segment.min_decree = oldest;
        }
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
        self.current = create_segment(&self.dir, &path)?;
        self.segments.push(Segment {
            index,
            path,
            bytes: 0,
            min_decree: 0,
            max_decree: 0,
        });
        Ok(())
    }

    /// Deletes every segment and starts an empty one: for a replica whose engine is about to be
    /// rebuilt from another replica, whose own history is then worthless (or wrong).
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.roll()?;
        let current = self.segments.len() - 1;
        for segment in self.segments.drain(..current) {
            fs::remove_file(&segment.path).map_err(StorageError::io(&segment.path))?;
        }
        sync_dir(&self.dir)
    }

    /// The segments as they are now, to read outside the log's lock.
    pub fn snapshot(&self) -> LogSnapshot {
        LogSnapshot {
            segments: self
                .segments
                .iter()
                .map(|s| SegmentView {
                    path: s.path.clone(),
                    bytes: s.bytes,
                    min_decree: s.min_decree,
                    max_decree: s.max_decree,
                })
                .collect(),
            first_decree: self.segments.iter().map(|s| s.min_decree).find(|d| *d > 0),
        }
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

impl Drop for MutationLog {
    /// A log that does not sync on every write (the shared log makes its writes durable) is
    /// synced when it closes, so that the shared log need not keep its records.
    fn drop(&mut self) {
        if !self.options.sync {
            if let Err(e) = self.current.sync_data() {
                warn!(dir = %self.dir.display(), error = %e, "cannot sync the mutation log as it closes");
            }
        }
    }
}

impl LogSnapshot {
    /// The mutations `after + 1 ..= up_to`, in decree order, as the log holds them last (a later
    /// record for a decree replaces an earlier one), stopping once `max_bytes` are gathered. The
    /// result is contiguous from `after + 1`; it is empty when the log does not reach back that far.
    pub fn read_range(&self, after: Decree, up_to: Decree, max_bytes: usize) -> Result<Vec<Mutation>, StorageError> {
        // Only segments that hold something after `after`; a later segment's record of a decree
        // replaces an earlier one's (a decree prepared again under a newer ballot).
        let relevant: Vec<&SegmentView> = self.segments.iter().filter(|s| s.max_decree > after).collect();
        let mut by_decree: std::collections::BTreeMap<Decree, Mutation> = std::collections::BTreeMap::new();
        for (i, segment) in relevant.iter().enumerate() {
            let mut bytes = vec![0u8; segment.bytes as usize];
            let read = File::open(&segment.path).and_then(|mut f| f.read_exact(&mut bytes));
            match read {
                Ok(()) => {}
                // Deleted by log GC since the snapshot: older than anything asked for.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io(&segment.path)(e)),
            }
            let (records, _) = decode_records(&bytes);
            for record in records {
                if let LogRecord::Mutation(mutation) = record {
                    if mutation.decree > after && mutation.decree <= up_to {
                        by_decree.insert(mutation.decree, mutation);
                    }
                }
            }
            // Stop once a full batch is read and no later segment can replace any of it.
            let batch = contiguous_batch(&by_decree, after, max_bytes);
            let full = batch.bytes >= max_bytes || batch.last == up_to;
            if full && relevant[i + 1..].iter().all(|s| s.min_decree > batch.last) {
                break;
            }
        }
        let batch = contiguous_batch(&by_decree, after, max_bytes);
        Ok(by_decree.into_values().take(batch.count).collect())
    }

    /// Bytes of the segments that hold mutations after `after`: about what replaying from there reads.
    pub fn bytes_after(&self, after: Decree) -> u64 {
        self.segments
            .iter()
            .filter(|s| s.max_decree > after)
            .map(|s| s.bytes)
            .sum()
    }
}

/// The run of decrees `after + 1, after + 2, ...` at the front of `by_decree`, cut once it carries
/// `max_bytes` (at least one mutation).
struct Batch {
    count: usize,
    bytes: usize,
    last: Decree,
}

fn contiguous_batch(
    by_decree: &std::collections::BTreeMap<Decree, Mutation>,
    after: Decree,
    max_bytes: usize,
) -> Batch {
    let mut batch = Batch {
        count: 0,
        bytes: 0,
        last: after,
    };
    for (expected, (decree, mutation)) in (after + 1..).zip(by_decree) {
        if *decree != expected || (batch.bytes >= max_bytes && batch.count > 0) {
            break;
        }
        batch.bytes += mutation.ops.iter().map(|o| o.op.payload_bytes()).sum::<usize>() + 64;
        batch.count += 1;
        batch.last = *decree;
    }
    batch
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aerie_common::Gpid;
    use aerie_proto::data::WriteOp;
    use aerie_proto::replica::MutationOp;

    /// A mutation of about 130 bytes that writes key `h<decree>`.
    pub(crate) fn mutation(decree: Decree) -> Mutation {
        Mutation {
            gpid: Gpid::new(1, 0),
            ballot: 1,
            decree,
            last_committed: decree - 1,
            timestamp_secs: 1_700_000_000,
            ops: vec![MutationOp::plain(WriteOp::Put {
                hash_key: format!("h{decree}").into_bytes(),
                sort_key: b"s".to_vec(),
                value: vec![7; 100],
                ttl_secs: 0,
            })],
        }
    }

    const OPTIONS: LogOptions = LogOptions {
        segment_bytes: 1 << 20,
        sync: true,
    };

    fn record(decree: Decree) -> LogRecord {
        LogRecord::Mutation(mutation(decree))
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        encode_record(LogItem::Mutation(&mutation(1)), &mut buf).unwrap();
        encode_record(LogItem::Committed(1), &mut buf).unwrap();
        encode_record(LogItem::Mutation(&mutation(2)), &mut buf).unwrap();
        let (records, stopped) = decode_records(&buf);
        assert_eq!(records, vec![record(1), LogRecord::Committed(1), record(2)]);
        assert!(stopped.is_none());
    }

    #[test]
    fn the_highest_commit_marker_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
        log.append(&[mutation(1), mutation(2)]).unwrap();
        log.append_items([LogItem::Committed(2)]).unwrap();
        log.append_items([LogItem::Mutation(&mutation(3)), LogItem::Committed(1)])
            .unwrap();
        drop(log);
        let replayed = MutationLog::open(dir.path(), OPTIONS, 0).unwrap();
        assert_eq!(replayed.committed_marker, 2);
        assert_eq!(replayed.mutations.len(), 3, "markers are not mutations");
    }

    #[test]
    fn every_torn_prefix_is_detected() {
        let mut buf = Vec::new();
        encode_record(LogItem::Mutation(&mutation(1)), &mut buf).unwrap();
        let first_len = buf.len();
        encode_record(LogItem::Mutation(&mutation(2)), &mut buf).unwrap();
        for cut in first_len + 1..buf.len() {
            let (records, stopped) = decode_records(&buf[..cut]);
            assert_eq!(records, vec![record(1)], "cut at {cut}");
            assert_eq!(stopped.unwrap().0, first_len as u64);
        }
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let mut buf = Vec::new();
        encode_record(LogItem::Mutation(&mutation(1)), &mut buf).unwrap();
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
    fn a_bad_record_followed_by_valid_ones_in_the_last_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
        log.append(&[mutation(1), mutation(2), mutation(3)]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let full = bytes.len();
        // A flipped bit in the middle record; the third one is intact.
        bytes[full / 2] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = MutationLog::open(dir.path(), OPTIONS, 0).err().expect("must refuse");
        assert!(err.to_string().contains("not a torn tail"), "{err}");
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, full, "nothing was cut");
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

#[cfg(test)]
mod reading_tests {
    use super::*;
    use aerie_common::Gpid;
    use aerie_proto::data::WriteOp;
    use aerie_proto::replica::MutationOp;

    fn mutation(decree: Decree, ballot: i64) -> Mutation {
        Mutation {
            gpid: Gpid::new(1, 0),
            ballot,
            decree,
            last_committed: decree - 1,
            timestamp_secs: 0,
            ops: vec![MutationOp::plain(WriteOp::Put {
                hash_key: b"h".to_vec(),
                sort_key: decree.to_string().into_bytes(),
                value: vec![1; 50],
                ttl_secs: 0,
            })],
        }
    }

    const SMALL: LogOptions = LogOptions {
        segment_bytes: 300,
        sync: false,
    };

    #[test]
    fn a_snapshot_reads_a_contiguous_range_across_segments_with_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), SMALL, 0).unwrap().log;
        for decree in 1..=10 {
            log.append(&[mutation(decree, 1)]).unwrap();
        }
        log.append(&[mutation(7, 2)]).unwrap(); // decree 7 re-proposed under ballot 2
        assert!(log.segment_count() > 2);
        let snapshot = log.snapshot();
        assert_eq!(snapshot.first_decree, Some(1));
        let read = snapshot.read_range(3, 9, usize::MAX).unwrap();
        assert_eq!(
            read.iter().map(|m| m.decree).collect::<Vec<_>>(),
            vec![4, 5, 6, 7, 8, 9]
        );
        assert_eq!(read[3].ballot, 2, "the later record of decree 7 wins");
        let limited = snapshot.read_range(0, 10, 150).unwrap();
        assert!(
            !limited.is_empty() && limited.len() < 10,
            "a byte budget cuts the batch"
        );
        assert_eq!(limited[0].decree, 1);
    }

    #[test]
    fn batch_after_batch_reads_every_decree_once_with_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), SMALL, 0).unwrap().log;
        for decree in 1..=30 {
            log.append(&[mutation(decree, 1)]).unwrap();
        }
        log.append(&[mutation(7, 2)]).unwrap(); // decree 7 re-proposed under ballot 2
        let snapshot = log.snapshot();
        assert!(
            snapshot.bytes_after(25) < snapshot.bytes_after(0),
            "old segments are skipped"
        );
        let (mut after, mut read) = (0, Vec::new());
        while after < 30 {
            let batch = snapshot.read_range(after, 30, 150).unwrap();
            assert!(!batch.is_empty(), "stuck after {after}");
            after = batch.last().unwrap().decree;
            read.extend(batch);
        }
        assert_eq!(
            read.iter().map(|m| m.decree).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>()
        );
        assert_eq!(read[6].ballot, 2, "the later record of decree 7 wins");
    }

    #[test]
    fn a_range_the_log_no_longer_holds_reads_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), SMALL, 0).unwrap().log;
        for decree in 1..=10 {
            log.append(&[mutation(decree, 1)]).unwrap();
        }
        log.gc(5).unwrap();
        let snapshot = log.snapshot();
        let first = snapshot.first_decree.unwrap();
        assert!(first > 1, "gc removed the oldest decrees");
        assert!(
            snapshot.read_range(0, 10, usize::MAX).unwrap().is_empty(),
            "no gap-free start at 1"
        );
        assert_eq!(snapshot.read_range(first - 1, 10, usize::MAX).unwrap()[0].decree, first);
    }

    #[test]
    fn reset_leaves_an_empty_log_that_takes_appends() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MutationLog::open(dir.path(), SMALL, 0).unwrap().log;
        for decree in 1..=5 {
            log.append(&[mutation(decree, 1)]).unwrap();
        }
        log.reset().unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.snapshot().first_decree, None);
        log.append(&[mutation(100, 3)]).unwrap();
        drop(log);
        let replayed = MutationLog::open(dir.path(), SMALL, 0).unwrap();
        assert_eq!(replayed.mutations, vec![mutation(100, 3)]);
    }
}
