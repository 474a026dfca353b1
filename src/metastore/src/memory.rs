//! An in-memory store with the same semantics as the durable ones, for fast tests.

use crate::path::{children_prefix, parent, validate_path};
use crate::{MetaStore, MetaStoreError, StoreOp, Version};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A node's data and version.
pub(crate) type Node = (Vec<u8>, Version);
/// Nodes by path.
pub(crate) type Nodes = BTreeMap<String, Node>;
/// What a transaction does to one path: new contents, or `None` for deleted.
pub(crate) type Change = (String, Option<Node>);

#[derive(Default)]
pub struct MemoryStore {
    nodes: Mutex<Nodes>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Applies a transaction to a map of nodes, all or nothing. Shared with the embedded store.
pub(crate) fn apply_ops(nodes: &Nodes, ops: Vec<StoreOp>) -> Result<Vec<Change>, MetaStoreError> {
    // Work on a scratch view of the touched nodes; commit only if every step passes.
    let mut changes: BTreeMap<String, Option<Node>> = BTreeMap::new();
    let lookup = |changes: &BTreeMap<String, Option<Node>>, path: &str| match changes.get(path) {
        Some(change) => change.clone(),
        None => nodes.get(path).cloned(),
    };
    let exists = |changes: &BTreeMap<String, Option<Node>>, path: &str| path == "/" || lookup(changes, path).is_some();
    for op in ops {
        match op {
            StoreOp::Create { path, data } => {
                validate_path(&path)?;
                if exists(&changes, &path) {
                    return Err(MetaStoreError::AlreadyExists(path));
                }
                let parent = parent(&path).ok_or_else(|| MetaStoreError::BadPath(path.clone()))?;
                if !exists(&changes, parent) {
                    return Err(MetaStoreError::NotFound(parent.to_string()));
                }
                changes.insert(path, Some((data, 0)));
            }
            StoreOp::Set { path, data, expected } => {
                validate_path(&path)?;
                let Some((_, version)) = lookup(&changes, &path) else {
                    return Err(MetaStoreError::NotFound(path));
                };
                if let Some(expected) = expected {
                    if expected != version {
                        return Err(MetaStoreError::BadVersion {
                            path,
                            expected,
                            actual: version,
                        });
                    }
                }
                changes.insert(path, Some((data, version + 1)));
            }
            StoreOp::Delete { path } => {
                validate_path(&path)?;
                if lookup(&changes, &path).is_none() {
                    return Err(MetaStoreError::NotFound(path));
                }
                let prefix = children_prefix(&path);
                let has_child = nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .any(|(k, _)| !matches!(changes.get(k), Some(None)))
                    || changes.iter().any(|(k, v)| k.starts_with(&prefix) && v.is_some());
                if has_child {
                    return Err(MetaStoreError::NotEmpty(path));
                }
                changes.insert(path, None);
            }
        }
    }
    Ok(changes.into_iter().collect())
}

pub(crate) fn list_children(nodes: &BTreeMap<String, (Vec<u8>, Version)>, path: &str) -> Vec<String> {
    let prefix = children_prefix(path);
    nodes
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
        })
        .collect()
}

#[async_trait]
impl MetaStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Version)>, MetaStoreError> {
        validate_path(path)?;
        Ok(self.nodes.lock().expect("nodes").get(path).cloned())
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, MetaStoreError> {
        validate_path(path)?;
        let nodes = self.nodes.lock().expect("nodes");
        if path != "/" && !nodes.contains_key(path) {
            return Err(MetaStoreError::NotFound(path.to_string()));
        }
        Ok(list_children(&nodes, path))
    }

    async fn transaction(&self, ops: Vec<StoreOp>) -> Result<(), MetaStoreError> {
        let mut nodes = self.nodes.lock().expect("nodes");
        for (path, change) in apply_ops(&nodes, ops)? {
            match change {
                Some(node) => nodes.insert(path, node),
                None => nodes.remove(&path),
            };
        }
        Ok(())
    }
}
