//! The embedded store: every node is a RocksDB record `path -> [version: u64 BE][data]`, written
//! with a synced WAL write, so a call that returned is on disk. A transaction is one write batch.
//! One process owns the directory (RocksDB's lock file refuses a second opener).

use crate::memory::{apply_ops, list_children, Nodes};
use crate::path::{children_prefix, validate_path};
use crate::{MetaStore, MetaStoreError, StoreOp, Version};
use async_trait::async_trait;
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub struct EmbeddedStore {
    db: Arc<DB>,
    dir: PathBuf,
    /// Serializes transactions: each reads, checks and writes as one step.
    writer: Arc<Mutex<()>>,
}

fn unavailable(e: impl std::fmt::Display) -> MetaStoreError {
    MetaStoreError::Unavailable(e.to_string())
}

fn decode(raw: &[u8]) -> Result<(Vec<u8>, Version), MetaStoreError> {
    if raw.len() < 8 {
        return Err(unavailable("corrupt node record"));
    }
    let version = Version::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
    Ok((raw[8..].to_vec(), version))
}

fn encode(data: &[u8], version: Version) -> Vec<u8> {
    let mut raw = Vec::with_capacity(8 + data.len());
    raw.extend_from_slice(&version.to_be_bytes());
    raw.extend_from_slice(data);
    raw
}

impl EmbeddedStore {
    pub fn open(dir: &Path) -> Result<EmbeddedStore, MetaStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_keep_log_file_num(2);
        let db = DB::open(&options, dir).map_err(|e| unavailable(format!("cannot open {}: {e}", dir.display())))?;
        Ok(EmbeddedStore {
            db: Arc::new(db),
            dir: dir.to_path_buf(),
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// Reads the nodes a transaction may touch: the paths it names, their parents, their descendants.
    fn snapshot_for(db: &DB, ops: &[StoreOp]) -> Result<Nodes, MetaStoreError> {
        let mut nodes = BTreeMap::new();
        for op in ops {
            let path = match op {
                StoreOp::Create { path, .. } | StoreOp::Set { path, .. } | StoreOp::Delete { path } => path,
            };
            validate_path(path)?;
            let mut related = vec![path.as_str()];
            if let Some(parent) = crate::path::parent(path) {
                related.push(parent);
            }
            for p in related {
                if let Some(raw) = db.get(p.as_bytes()).map_err(unavailable)? {
                    nodes.insert(p.to_string(), decode(&raw)?);
                }
            }
            if matches!(op, StoreOp::Delete { .. }) {
                let prefix = children_prefix(path);
                for item in db.prefix_iterator(prefix.as_bytes()) {
                    let (key, raw) = item.map_err(unavailable)?;
                    if !key.starts_with(prefix.as_bytes()) {
                        break;
                    }
                    nodes.insert(String::from_utf8_lossy(&key).into_owned(), decode(&raw)?);
                }
            }
        }
        Ok(nodes)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DB) -> Result<T, MetaStoreError> + Send + 'static,
    ) -> Result<T, MetaStoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| MetaStoreError::Ambiguous(format!("store task failed: {e}")))?
    }
}

#[async_trait]
impl MetaStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded:{}", self.dir.display())
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Version)>, MetaStoreError> {
        validate_path(path)?;
        let path = path.to_string();
        self.blocking(move |db| {
            db.get(path.as_bytes())
                .map_err(unavailable)?
                .map(|raw| decode(&raw))
                .transpose()
        })
        .await
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, MetaStoreError> {
        validate_path(path)?;
        let path = path.to_string();
        self.blocking(move |db| {
            if path != "/" && db.get(path.as_bytes()).map_err(unavailable)?.is_none() {
                return Err(MetaStoreError::NotFound(path));
            }
            let prefix = children_prefix(&path);
            let mut nodes = BTreeMap::new();
            for item in db.prefix_iterator(prefix.as_bytes()) {
                let (key, _) = item.map_err(unavailable)?;
                if !key.starts_with(prefix.as_bytes()) {
                    break;
                }
                nodes.insert(String::from_utf8_lossy(&key).into_owned(), (Vec::new(), 0));
            }
            Ok(list_children(&nodes, &path))
        })
        .await
    }

    async fn transaction(&self, ops: Vec<StoreOp>) -> Result<(), MetaStoreError> {
        let writer = self.writer.clone();
        self.blocking(move |db| {
            let _guard = writer.lock().expect("store writer");
            let nodes = Self::snapshot_for(db, &ops)?;
            let changes = apply_ops(&nodes, ops)?;
            let mut batch = WriteBatch::default();
            for (path, change) in changes {
                match change {
                    Some((data, version)) => batch.put(path.as_bytes(), encode(&data, version)),
                    None => batch.delete(path.as_bytes()),
                }
            }
            let mut options = WriteOptions::default();
            options.set_sync(true);
            // A failed synced write may or may not be on disk.
            db.write_opt(batch, &options)
                .map_err(|e| MetaStoreError::Ambiguous(e.to_string()))
        })
        .await
    }
}
