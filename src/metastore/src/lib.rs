//! The meta server's durable state lives behind [`MetaStore`], a small ZooKeeper-shaped interface:
//! nodes named by absolute paths, each with data and a version; children listing; versioned sets; and
//! atomic multi-operation transactions. The embedded implementation (RocksDB with synced writes) is the
//! default for development and single-meta clusters; the ZooKeeper implementation plugs in behind the
//! same trait.
//!
//! Contract: a call that returns `Ok` is durable. `Err(Ambiguous)` means the outcome is unknown (the
//! write may or may not have happened): the caller must reload its state from the store, not guess.

mod embedded;
mod leadership;
mod memory;
mod path;
pub mod zookeeper;

pub use embedded::EmbeddedStore;
pub use leadership::{LeaderView, Leadership};
pub use memory::MemoryStore;
pub use path::{children_prefix, parent, validate_path};
pub use zookeeper::session::ZkSession;
pub use zookeeper::store::ZookeeperStore;

use async_trait::async_trait;

/// A node's version: 0 at creation, +1 on every set.
pub type Version = u64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaStoreError {
    #[error("meta store node {0} does not exist")]
    NotFound(String),
    #[error("meta store node {0} already exists")]
    AlreadyExists(String),
    #[error("meta store node {path} is at version {actual}, not the expected {expected}")]
    BadVersion {
        path: String,
        expected: Version,
        actual: Version,
    },
    #[error("meta store node {0} has children")]
    NotEmpty(String),
    #[error("invalid meta store path '{0}'")]
    BadPath(String),
    #[error("meta store unavailable: {0}")]
    Unavailable(String),
    #[error("meta store write outcome unknown: {0}")]
    Ambiguous(String),
}

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Create a node whose parent exists (or is created earlier in the same transaction).
    Create { path: String, data: Vec<u8> },
    /// Replace a node's data; with `expected`, only at that version.
    Set {
        path: String,
        data: Vec<u8>,
        expected: Option<Version>,
    },
    /// Delete a node that has no children (after the transaction's earlier deletes).
    Delete { path: String },
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// A one-line description for logs and `cluster_info`, e.g. `embedded:/var/lib/aerie/meta`.
    fn describe(&self) -> String;

    /// `Ok` while the store can take writes; otherwise why not (for logs and `cluster_info`).
    fn health(&self) -> Result<(), String> {
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Version)>, MetaStoreError>;

    /// Names (not paths) of a node's children, sorted.
    async fn children(&self, path: &str) -> Result<Vec<String>, MetaStoreError>;

    /// Applies every operation or none.
    async fn transaction(&self, ops: Vec<StoreOp>) -> Result<(), MetaStoreError>;

    async fn create(&self, path: &str, data: Vec<u8>) -> Result<(), MetaStoreError> {
        self.transaction(vec![StoreOp::Create {
            path: path.to_string(),
            data,
        }])
        .await
    }

    async fn set(&self, path: &str, data: Vec<u8>, expected: Option<Version>) -> Result<(), MetaStoreError> {
        self.transaction(vec![StoreOp::Set {
            path: path.to_string(),
            data,
            expected,
        }])
        .await
    }

    async fn delete(&self, path: &str) -> Result<(), MetaStoreError> {
        self.transaction(vec![StoreOp::Delete { path: path.to_string() }]).await
    }

    /// Creates `path` and any missing ancestors, with empty data.
    async fn ensure_path(&self, path: &str) -> Result<(), MetaStoreError> {
        validate_path(path)?;
        let mut prefix = String::new();
        for part in path.split('/').skip(1) {
            prefix.push('/');
            prefix.push_str(part);
            if self.get(&prefix).await?.is_none() {
                match self.create(&prefix, Vec::new()).await {
                    Ok(()) | Err(MetaStoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod contract_tests;
