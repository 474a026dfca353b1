//! A replica on disk and how it comes back after a restart.
//!
//! ```text
//!  <data_dir>/replica/<app_id>.<pidx>/
//!      manifest.json   table, gpid, last known ballot, and which data directory is current
//!      rdb/            RocksDB: the data and, in the same batches, the last applied decree
//!                      (after learning from a checkpoint: rdb.<n>, as the manifest says)
//!      plog/           the mutation log
//! ```
//!
//! Opening replays the log: mutations up to the committed point (the largest `last_committed` any
//! logged mutation carries, or the applied decree) are applied; later ones are only prepared, and stay
//! in the prepare list until a primary commits them. A gap below the committed point means the log
//! lost committed data, and the replica refuses to open rather than serve a hole.

use super::node_log::NodeLog;
use aerie_common::{Ballot, Decree, Gpid};
use aerie_proto::meta::AppInfo;
use aerie_proto::replica::Mutation;
use aerie_storage::{Engine, EngineOptions, LogItem, LogOptions, LogRecord, MutationLog, StorageError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaManifest {
    pub gpid: Gpid,
    pub app: AppInfo,
    pub ballot: Ballot,
    /// The RocksDB directory in use, relative to the replica's directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Set while the replica learns, until what it learned is durable: its log may then hold
    /// prepares whose committed point the engine does not reach yet, so a restart drops the log
    /// (the replica learns again) instead of refusing to open.
    #[serde(default)]
    pub learning: bool,
}

pub fn default_data_dir() -> String {
    "rdb".to_string()
}

pub struct OpenedReplica {
    pub dir: PathBuf,
    pub manifest: ReplicaManifest,
    pub engine: Arc<Engine>,
    pub log: MutationLog,
    /// The data dir's group-commit stream, which makes this replica's log writes durable.
    pub node_log: Arc<NodeLog>,
    pub last_committed: Decree,
    /// Logged but not known to be committed, in decree order.
    pub uncommitted: Vec<Arc<Mutation>>,
    /// Mutations applied from the log while opening.
    pub replayed: usize,
    pub truncated_bytes: u64,
}

const MANIFEST: &str = "manifest.json";
const REPLAY_BATCH: usize = 512;

pub fn replicas_root(data_dir: &Path) -> PathBuf {
    data_dir.join("replica")
}

pub fn replica_dir(data_dir: &Path, gpid: Gpid) -> PathBuf {
    replicas_root(data_dir).join(format!("{}.{}", gpid.app_id, gpid.pidx))
}

/// The replica directories under a data dir (set-aside ones excluded).
pub fn list_replica_dirs(data_dir: &Path) -> Result<Vec<(Gpid, PathBuf)>, StorageError> {
    let root = replicas_root(data_dir);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(&root).map_err(io_err(&root))? {
        let entry = entry.map_err(io_err(&root))?;
        if let Some(gpid) = entry.file_name().to_str().and_then(|n| n.parse::<Gpid>().ok()) {
            found.push((gpid, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { path, source }
}

/// Writes the manifest atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write_manifest(dir: &Path, manifest: &ReplicaManifest) -> Result<(), StorageError> {
    let tmp = dir.join("manifest.json.tmp");
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    {
        let mut file = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        std::io::Write::write_all(&mut file, &text).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, dir.join(MANIFEST)).map_err(io_err(dir))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Writes a replica's manifest from any thread, one write at a time, and always the newest: the
/// actor records each new manifest in program order ([`ManifestWriter::set`]); whichever write
/// runs next writes what was recorded last, so a slow older write can never land after a newer.
#[derive(Clone)]
pub struct ManifestWriter {
    dir: PathBuf,
    newest: Arc<std::sync::Mutex<Option<ReplicaManifest>>>,
    writing: Arc<std::sync::Mutex<()>>,
}

impl ManifestWriter {
    pub fn new(dir: &Path) -> Self {
        ManifestWriter {
            dir: dir.to_path_buf(),
            newest: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// Records the manifest to write next (cheap; call it where the state changes).
    pub fn set(&self, manifest: ReplicaManifest) {
        *self.newest.lock().unwrap_or_else(|p| p.into_inner()) = Some(manifest);
    }

    /// Writes the newest recorded manifest, if it is not written yet (blocking: file I/O).
    pub fn flush(&self) -> Result<(), StorageError> {
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let newest = self.newest.lock().unwrap_or_else(|p| p.into_inner()).take();
        match newest {
            Some(manifest) => write_manifest(&self.dir, &manifest),
            None => Ok(()),
        }
    }
}

fn read_manifest(dir: &Path) -> Result<ReplicaManifest, StorageError> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(io_err(&path))?;
    serde_json::from_slice(&text).map_err(|e| StorageError::Corrupt(format!("{}: {e}", path.display())))
}

/// Creates an empty replica.
pub fn create_replica(
    dir: &Path,
    manifest: &ReplicaManifest,
    engine_options: &EngineOptions,
    log_options: LogOptions,
    node_log: &Arc<NodeLog>,
) -> Result<OpenedReplica, StorageError> {
    // An earlier replica of the partition on this dir left records in the shared log: a new
    // history starts here.
    node_log.record_reset(manifest.gpid).map_err(StorageError::SharedLog)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if let Some(parent) = dir.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io_err(parent))?;
    }
    write_manifest(dir, manifest)?;
    open_replica(dir, engine_options, log_options, node_log)
}

/// Opens a replica and brings its data up to the committed point recorded in its log (its private
/// log, completed with what the shared log of its data dir holds for it).
pub fn open_replica(
    dir: &Path,
    engine_options: &EngineOptions,
    log_options: LogOptions,
    node_log: &Arc<NodeLog>,
) -> Result<OpenedReplica, StorageError> {
    let mut manifest = read_manifest(dir)?;
    // Leftovers of learning interrupted by a crash: checkpoints served or fetched, and data
    // directories that are no longer (or not yet) the current one.
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale_data = name.starts_with("rdb") && name != manifest.data_dir;
        if name == "learn" || stale_data {
            fs::remove_dir_all(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    let engine = Engine::open(&dir.join(&manifest.data_dir), engine_options)?;
    let applied = engine.last_applied_decree()?;
    // The private log never syncs on a write: the shared log does, for every replica of the dir.
    let private = LogOptions {
        sync: false,
        ..log_options
    };
    let gpid = manifest.gpid;
    let mut replayed_log = MutationLog::open(&dir.join("plog"), private, applied)?;
    if manifest.learning {
        // Learning was interrupted: the engine holds what was applied, the log nothing of use.
        node_log.record_reset(gpid).map_err(StorageError::SharedLog)?;
        replayed_log.log.reset()?;
        node_log.opened(gpid);
        return Ok(OpenedReplica {
            dir: dir.to_path_buf(),
            manifest,
            engine: Arc::new(engine),
            log: replayed_log.log,
            node_log: node_log.clone(),
            last_committed: applied,
            uncommitted: Vec::new(),
            replayed: 0,
            truncated_bytes: replayed_log.truncated_bytes,
        });
    }

    // After a machine crash the private log may have lost its unsynced tail; the shared log holds
    // every record written since its oldest segment. Written again here (durably) and replayed
    // after the private log's own: the same records in the same order, so a record for a decree
    // that is in both ends up where it was.
    let from_shared = node_log.replayed(gpid);
    if !from_shared.is_empty() {
        replayed_log
            .log
            .append_items(from_shared.iter().map(|record| match record {
                LogRecord::Mutation(m) => LogItem::Mutation(m),
                LogRecord::Committed(d) => LogItem::Committed(*d),
            }))?;
        replayed_log.log.sync()?;
        for record in from_shared {
            match record {
                LogRecord::Mutation(m) if m.decree > applied => replayed_log.mutations.push(m),
                LogRecord::Mutation(_) => {}
                LogRecord::Committed(d) => replayed_log.committed_marker = replayed_log.committed_marker.max(d),
            }
        }
    }

    let plan = plan_replay(applied, replayed_log.mutations, replayed_log.committed_marker).map_err(|missing| {
        StorageError::Corrupt(format!(
            "replica {}: committed decree {} is missing from the log (applied {applied}, committed {})",
            manifest.gpid, missing.decree, missing.committed
        ))
    })?;
    manifest.ballot = manifest.ballot.max(plan.ballot);
    let ReplayPlan {
        committed,
        to_apply,
        uncommitted,
        ..
    } = plan;
    for chunk in to_apply.chunks(REPLAY_BATCH) {
        engine.apply(chunk)?;
    }
    node_log.opened(gpid);
    Ok(OpenedReplica {
        dir: dir.to_path_buf(),
        manifest,
        engine: Arc::new(engine),
        log: replayed_log.log,
        node_log: node_log.clone(),
        last_committed: committed,
        uncommitted: uncommitted.into_iter().map(Arc::new).collect(),
        replayed: to_apply.len(),
        truncated_bytes: replayed_log.truncated_bytes,
    })
}

/// What reopening a replica does with its log: apply what is committed, keep the rest prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    /// The committed point: the largest `last_committed` any logged mutation or commit marker
    /// carries, or the applied decree.
    pub committed: Decree,
    /// Mutations `applied + 1 ..= committed`, in order.
    pub to_apply: Vec<Mutation>,
    /// Logged mutations above the committed point, in decree order (holes allowed: a new primary
    /// fills them with no-ops).
    pub uncommitted: Vec<Mutation>,
    /// The highest ballot the log records.
    pub ballot: Ballot,
}

/// A committed decree the log does not hold: the log lost committed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingDecree {
    pub decree: Decree,
    pub committed: Decree,
}

/// Plans the replay of `logged` (in log order: a later record of a decree replaces an earlier
/// one, an uncommitted entry re-proposed) over an engine that applied everything up to `applied`.
pub fn plan_replay(
    applied: Decree,
    logged: Vec<Mutation>,
    committed_marker: Decree,
) -> Result<ReplayPlan, MissingDecree> {
    let mut by_decree: BTreeMap<Decree, Mutation> = BTreeMap::new();
    let mut ballot = 0;
    for mutation in logged.into_iter().filter(|m| m.decree > applied) {
        ballot = ballot.max(mutation.ballot);
        by_decree.insert(mutation.decree, mutation);
    }
    let committed = by_decree
        .values()
        .map(|m| m.last_committed)
        .max()
        .unwrap_or(0)
        .max(committed_marker)
        .max(applied);
    let mut to_apply = Vec::new();
    for decree in applied + 1..=committed {
        match by_decree.remove(&decree) {
            Some(mutation) => to_apply.push(mutation),
            None => return Err(MissingDecree { decree, committed }),
        }
    }
    Ok(ReplayPlan {
        committed,
        to_apply,
        uncommitted: by_decree.into_values().collect(),
        ballot,
    })
}

/// Moves a replica out of the way (kept for inspection): `<dir>.<unix_secs>.gar`.
pub fn set_aside(dir: &Path) -> Result<PathBuf, StorageError> {
    let name = format!(
        "{}.{}.gar",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("replica"),
        aerie_common::clock::wall_secs_now()
    );
    let target = dir.with_file_name(name);
    fs::rename(dir, &target).map_err(io_err(dir))?;
    Ok(target)
}

/// Puts back the newest set-aside copy of `gpid` found in any of `data_dirs` (a recalled table's
/// replica): returns the data dir's index and the replica's dir, or None when there is no copy.
pub fn restore_set_aside(data_dirs: &[PathBuf], gpid: Gpid) -> Result<Option<(usize, PathBuf)>, StorageError> {
    let prefix = format!("{}.{}.", gpid.app_id, gpid.pidx);
    let mut newest: Option<(u64, usize, PathBuf)> = None;
    for (index, data_dir) in data_dirs.iter().enumerate() {
        let root = replicas_root(data_dir);
        if !root.exists() {
            continue;
        }
        for entry in fs::read_dir(&root).map_err(io_err(&root))? {
            let entry = entry.map_err(io_err(&root))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let secs = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".gar"))
                .and_then(|secs| secs.parse::<u64>().ok());
            if let Some(secs) = secs.filter(|s| newest.as_ref().is_none_or(|(n, _, _)| s > n)) {
                newest = Some((secs, index, entry.path()));
            }
        }
    }
    let Some((_, index, copy)) = newest else {
        return Ok(None);
    };
    let dir = replica_dir(&data_dirs[index], gpid);
    fs::rename(&copy, &dir).map_err(io_err(&copy))?;
    Ok(Some((index, dir)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_proto::data::{ReadOp, ReadResult, WriteOp};
    use aerie_proto::meta::AppStatus;

    fn manifest() -> ReplicaManifest {
        ReplicaManifest {
            gpid: Gpid::new(1, 0),
            app: AppInfo {
                app_id: 1,
                app_name: "t".into(),
                status: AppStatus::Available,
                partition_count: 1,
                max_replica_count: 3,
                create_time_secs: 0,
                drop_time_secs: None,
                envs: Default::default(),
            },
            ballot: 1,
            data_dir: default_data_dir(),
            learning: false,
        }
    }

    fn mutation(decree: Decree, last_committed: Decree) -> Mutation {
        Mutation {
            gpid: Gpid::new(1, 0),
            ballot: 1,
            decree,
            last_committed,
            timestamp_secs: 0,
            ops: vec![aerie_proto::replica::MutationOp::plain(WriteOp::Put {
                hash_key: format!("k{decree}").into_bytes(),
                sort_key: vec![],
                value: b"v".to_vec(),
                ttl_secs: 0,
            })],
        }
    }

    const LOG: LogOptions = LogOptions {
        segment_bytes: 1 << 20,
        sync: false,
    };

    fn engine_options() -> EngineOptions {
        EngineOptions::new(1 << 20, 32 << 20, 1 << 20)
    }

    /// The data dir's node log as a restarted server opens it.
    fn node_log(root: &tempfile::TempDir) -> Arc<NodeLog> {
        NodeLog::open(root.path(), LOG, "test".into()).unwrap()
    }

    #[test]
    fn reopening_applies_committed_mutations_and_keeps_the_rest_prepared() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let mut opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &node_log(&root)).unwrap();
        // Decrees 1..=4 logged; the newest record says 3 is committed; nothing applied yet.
        opened
            .log
            .append(&[mutation(1, 0), mutation(2, 1), mutation(3, 2), mutation(4, 3)])
            .unwrap();
        drop(opened);

        let opened = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(opened.last_committed, 3);
        assert_eq!(opened.replayed, 3);
        assert_eq!(opened.uncommitted.iter().map(|m| m.decree).collect::<Vec<_>>(), vec![4]);
        assert_eq!(opened.engine.last_applied_decree().unwrap(), 3);
        let get = |k: &str| {
            opened
                .engine
                .read(
                    &ReadOp::Get {
                        hash_key: k.into(),
                        sort_key: vec![],
                    },
                    0,
                )
                .unwrap()
        };
        assert_eq!(get("k3"), ReadResult::Value(Some(b"v".to_vec())));
        assert_eq!(
            get("k4"),
            ReadResult::Value(None),
            "an uncommitted mutation must not be applied"
        );
        assert_eq!(
            list_replica_dirs(root.path()).unwrap(),
            vec![(Gpid::new(1, 0), dir.clone())]
        );
    }

    #[test]
    fn a_commit_marker_makes_the_tail_committed_on_reopening() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let mut opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &node_log(&root)).unwrap();
        opened.log.append(&[mutation(1, 0), mutation(2, 1)]).unwrap();
        opened.log.append_items([aerie_storage::LogItem::Committed(2)]).unwrap();
        drop(opened);
        let opened = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(opened.last_committed, 2, "the marker says 2 is committed");
        assert!(opened.uncommitted.is_empty());
        assert_eq!(opened.engine.last_applied_decree().unwrap(), 2);
    }

    #[test]
    fn a_hole_below_the_committed_point_refuses_to_open() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let mut opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &node_log(&root)).unwrap();
        opened.log.append(&[mutation(1, 0), mutation(3, 2)]).unwrap();
        drop(opened);
        let err = open_replica(&dir, &engine_options(), LOG, &node_log(&root))
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("committed decree 2 is missing"), "{err}");
    }

    #[test]
    fn a_replica_interrupted_while_learning_drops_its_log_instead_of_refusing_to_open() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let mut opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &node_log(&root)).unwrap();
        // A prepare logged while learning claims decree 100 committed; the engine has nothing yet.
        opened.log.append(&[mutation(101, 100)]).unwrap();
        drop(opened);
        assert!(
            open_replica(&dir, &engine_options(), LOG, &node_log(&root)).is_err(),
            "a plain replica must refuse"
        );
        write_manifest(
            &dir,
            &ReplicaManifest {
                learning: true,
                ..manifest()
            },
        )
        .unwrap();
        let opened = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(opened.last_committed, 0);
        assert!(opened.uncommitted.is_empty());
        assert!(opened.manifest.learning, "it learns again");
        drop(opened);
        let again = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(again.replayed, 0, "the log was dropped");
    }

    /// Appends through the node log, as the write path does; returns once the group commit is durable.
    fn append_through_node_log(
        node_log: &Arc<NodeLog>,
        log: &Arc<std::sync::Mutex<MutationLog>>,
        mutations: &[Mutation],
    ) {
        let records = mutations
            .iter()
            .map(|m| aerie_storage::EncodedRecord::new(LogItem::Mutation(m)).unwrap())
            .collect();
        futures::executor::block_on(node_log.append(Gpid::new(1, 0), log.clone(), records, true)).unwrap();
    }

    /// What a machine crash does to a log that was never synced: the page cache is gone.
    fn lose_unsynced_private_log(dir: &Path) {
        for entry in fs::read_dir(dir.join("plog")).unwrap() {
            fs::OpenOptions::new()
                .write(true)
                .open(entry.unwrap().path())
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }

    #[test]
    fn writes_a_crash_took_from_the_private_log_come_back_from_the_shared_log() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let writer = node_log(&root);
        let opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &writer).unwrap();
        let log = Arc::new(std::sync::Mutex::new(opened.log));
        append_through_node_log(&writer, &log, &[mutation(1, 0), mutation(2, 1), mutation(3, 2)]);
        drop((log, opened.engine, writer));
        lose_unsynced_private_log(&dir);

        let reopened = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(reopened.last_committed, 2);
        assert_eq!(
            reopened.uncommitted.iter().map(|m| m.decree).collect::<Vec<_>>(),
            vec![3]
        );
        assert_eq!(reopened.engine.last_applied_decree().unwrap(), 2);
        drop(reopened);
        // Written again into the private log durably: it no longer needs the shared log.
        let private = MutationLog::open(&dir.join("plog"), LOG, 0).unwrap();
        assert_eq!(
            private.mutations.iter().map(|m| m.decree).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn a_replica_created_again_gets_nothing_of_the_old_ones_records() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        let writer = node_log(&root);
        let opened = create_replica(&dir, &manifest(), &engine_options(), LOG, &writer).unwrap();
        let log = Arc::new(std::sync::Mutex::new(opened.log));
        append_through_node_log(&writer, &log, &[mutation(1, 0), mutation(2, 1)]);
        drop((log, opened.engine));
        // The replica is removed and the partition comes back to this node later.
        fs::remove_dir_all(&dir).unwrap();
        let created = create_replica(&dir, &manifest(), &engine_options(), LOG, &writer).unwrap();
        drop((created, writer));
        let reopened = open_replica(&dir, &engine_options(), LOG, &node_log(&root)).unwrap();
        assert_eq!(reopened.last_committed, 0);
        assert!(reopened.uncommitted.is_empty());
        assert_eq!(reopened.engine.last_applied_decree().unwrap(), 0);
    }

    #[test]
    fn set_aside_moves_the_replica_out_of_the_listing() {
        let root = tempfile::tempdir().unwrap();
        let dir = replica_dir(root.path(), Gpid::new(1, 0));
        drop(create_replica(&dir, &manifest(), &engine_options(), LOG, &node_log(&root)).unwrap());
        let moved = set_aside(&dir).unwrap();
        assert!(moved.exists() && !dir.exists());
        assert!(list_replica_dirs(root.path()).unwrap().is_empty());
    }

    #[test]
    fn the_newest_set_aside_copy_is_restored_from_any_data_dir() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let gpid = Gpid::new(1, 0);
        assert_eq!(restore_set_aside(&dirs, gpid).unwrap(), None);
        for (dir, secs) in [(a.path(), 100), (b.path(), 200)] {
            fs::create_dir_all(replicas_root(dir).join(format!("1.0.{secs}.gar"))).unwrap();
        }
        // Another partition's copy is not taken.
        fs::create_dir_all(replicas_root(a.path()).join("1.1.300.gar")).unwrap();
        let (index, dir) = restore_set_aside(&dirs, gpid).unwrap().unwrap();
        assert_eq!((index, dir.clone()), (1, replica_dir(b.path(), gpid)));
        assert!(dir.exists());
        assert_eq!(list_replica_dirs(b.path()).unwrap(), vec![(gpid, dir)]);
    }
}
