//! The shared log of one data directory: one group-commit stream for every replica on it, so that
//! the mutations of all partitions that are ready together go to disk with one `fdatasync`.
//!
//! Each replica keeps its private log (`log.rs`) for learning, restart replay and its own GC, but
//! writes it without syncing; the shared log, synced on every group commit, is what makes a write
//! durable before it is acknowledged. A record here is a private-log record tagged with its
//! partition, so one encoding serves both files. Segments `shared.00000001`, ... hold frames of
//! `[app id: u32 LE][partition index: u32 LE][kind: u8][private-log record payload]`.
//!
//! After a crash, a private log may have lost its unsynced tail. `open` returns, per partition, the
//! records the shared log still holds (after the partition's last reset, in write order), and the
//! replica appends them to its private log again before replaying it: records written twice are
//! the same records in the same order, so the replayed state is the same. A reset (the replica's
//! private log emptied before learning a checkpoint) is recorded too, so that nothing of the old
//! history comes back.
//!
//! GC: a closed segment goes once every partition it holds has made those decrees durable in its
//! own storage (private log synced, or data flushed), as told by the caller; partitions it does
//! not know are gone and hold nothing back.

use crate::error::StorageError;
use crate::frames;
use crate::log::{create_segment, list_segments, parse_payload, sync_dir, EncodedRecord, LogOptions, LogRecord};
use aerie_common::{Decree, Gpid};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const PREFIX: &str = "shared.";
const RECORD: u8 = 0;
const RESET: u8 = 1;
const TAG_LEN: usize = 9;

/// What to append for one partition.
#[derive(Debug, Clone, Copy)]
pub enum SharedItem<'a> {
    /// A private-log record, encoded once for both logs.
    Record(&'a EncodedRecord),
    /// The partition's private log was emptied: forget what came before.
    Reset,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SharedRecord {
    Log(LogRecord),
    Reset,
}

#[derive(Debug, Clone)]
struct Segment {
    index: u64,
    path: PathBuf,
    bytes: u64,
    /// Every partition with a record in the segment, and the highest decree it wrote here (0: none).
    partitions: BTreeMap<Gpid, Decree>,
}

pub struct SharedLog {
    dir: PathBuf,
    options: LogOptions,
    segments: Vec<Segment>,
    current: File,
    syncs: u64,
}

/// The shared log, opened for appending, and what it held.
pub struct ReplayedSharedLog {
    pub log: SharedLog,
    /// Per partition, the records after its last reset, in write order.
    pub partitions: BTreeMap<Gpid, Vec<LogRecord>>,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{index:08}"))
}

fn tag(gpid: Gpid, kind: u8) -> [u8; TAG_LEN] {
    let mut tag = [0u8; TAG_LEN];
    tag[..4].copy_from_slice(&gpid.app_id.to_le_bytes());
    tag[4..8].copy_from_slice(&gpid.pidx.to_le_bytes());
    tag[8] = kind;
    tag
}

fn parse(payload: &[u8]) -> Option<(Gpid, SharedRecord)> {
    if payload.len() < TAG_LEN {
        return None;
    }
    let app_id = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes"));
    let pidx = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes"));
    let record = match (payload[8], &payload[TAG_LEN..]) {
        (RECORD, rest) => SharedRecord::Log(parse_payload(rest)?),
        (RESET, []) => SharedRecord::Reset,
        _ => return None,
    };
    Some((Gpid::new(app_id, pidx), record))
}

fn note(partitions: &mut BTreeMap<Gpid, Decree>, gpid: Gpid, decree: Option<Decree>) {
    let highest = partitions.entry(gpid).or_insert(0);
    *highest = (*highest).max(decree.unwrap_or(0));
}

impl SharedLog {
    /// Opens (or creates) the shared log in `dir` and reads it back.
    pub fn open(dir: &Path, options: LogOptions) -> Result<ReplayedSharedLog, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        let found = list_segments(dir, PREFIX)?;
        let last = found.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(found.len());
        let mut partitions: BTreeMap<Gpid, Vec<LogRecord>> = BTreeMap::new();
        let mut truncated_bytes = 0;
        for (position, (index, path)) in found.into_iter().enumerate() {
            let read = frames::read_segment(&path, position == last, parse)?;
            let (records, size) = (read.records, read.bytes);
            truncated_bytes += read.truncated;
            let mut held = BTreeMap::new();
            for (gpid, record) in records {
                match record {
                    SharedRecord::Reset => {
                        note(&mut held, gpid, None);
                        partitions.insert(gpid, Vec::new());
                    }
                    SharedRecord::Log(record) => {
                        let decree = match &record {
                            LogRecord::Mutation(m) => Some(m.decree),
                            LogRecord::Committed(_) => None,
                        };
                        note(&mut held, gpid, decree);
                        partitions.entry(gpid).or_default().push(record);
                    }
                }
            }
            segments.push(Segment {
                index,
                path,
                bytes: size,
                partitions: held,
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            create_segment(dir, &path)?;
            segments.push(Segment {
                index: 1,
                path,
                bytes: 0,
                partitions: BTreeMap::new(),
            });
        }
        let current_path = &segments.last().expect("one segment").path;
        let current = OpenOptions::new()
            .append(true)
            .open(current_path)
            .map_err(StorageError::io(current_path))?;
        Ok(ReplayedSharedLog {
            log: SharedLog {
                dir: dir.to_path_buf(),
                options,
                segments,
                current,
                syncs: 0,
            },
            partitions,
            truncated_bytes,
        })
    }

    /// Appends the records of any number of partitions as one group commit: one write and (in
    /// fsync mode) one `fdatasync`. Returns the bytes written.
    pub fn append(&mut self, items: &[(Gpid, SharedItem<'_>)]) -> Result<u64, StorageError> {
        let mut buf = Vec::with_capacity(
            items
                .iter()
                .map(|(_, item)| match item {
                    SharedItem::Record(r) => r.payload.len() + TAG_LEN + frames::HEADER_LEN,
                    SharedItem::Reset => TAG_LEN + frames::HEADER_LEN,
                })
                .sum(),
        );
        for (gpid, item) in items {
            match item {
                SharedItem::Record(record) => frames::write_frame(&[&tag(*gpid, RECORD), &record.payload], &mut buf),
                SharedItem::Reset => frames::write_frame(&[&tag(*gpid, RESET)], &mut buf),
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
            self.syncs += 1;
        }
        segment.bytes += buf.len() as u64;
        for (gpid, item) in items {
            let decree = match item {
                SharedItem::Record(record) => record.decree,
                SharedItem::Reset => None,
            };
            note(&mut segment.partitions, *gpid, decree);
        }
        Ok(buf.len() as u64)
    }

    fn roll(&mut self) -> Result<(), StorageError> {
        let closing = &self.segments.last().expect("one segment").path;
        self.current.sync_data().map_err(StorageError::io(closing))?;
        let index = self.segments.last().expect("one segment").index + 1;
        let path = segment_path(&self.dir, index);
        self.current = create_segment(&self.dir, &path)?;
        self.segments.push(Segment {
            index,
            path,
            bytes: 0,
            partitions: BTreeMap::new(),
        });
        Ok(())
    }

    /// The partitions with records in closed segments: those whose private logs must be made
    /// durable before [`SharedLog::gc`] can delete anything.
    pub fn partitions_in_closed_segments(&self) -> BTreeMap<Gpid, Decree> {
        let mut held = BTreeMap::new();
        for segment in &self.segments[..self.segments.len() - 1] {
            for (gpid, decree) in &segment.partitions {
                note(&mut held, *gpid, Some(*decree));
            }
        }
        held
    }

    /// Deletes the oldest closed segments while every partition in them has made the decrees they
    /// hold durable elsewhere: `durable(gpid)` is that decree (`None`: the partition is gone).
    pub fn gc(&mut self, durable: impl Fn(Gpid) -> Option<Decree>) -> Result<usize, StorageError> {
        let closed = self.segments.len() - 1;
        let removable = self.segments[..closed]
            .iter()
            .take_while(|s| {
                s.partitions
                    .iter()
                    .all(|(gpid, highest)| durable(*gpid).is_none_or(|d| *highest <= d))
            })
            .count();
        for segment in self.segments.drain(..removable) {
            fs::remove_file(&segment.path).map_err(StorageError::io(&segment.path))?;
        }
        if removable > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removable)
    }

    /// `fdatasync` calls made by appends since the log was opened.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

#[cfg(test)]
mod tests;
