//! [`MetaStore`] over ZooKeeper: a store node is a znode with the same path, data and version, so
//! `zkCli.sh get /aerie/<cluster>/apps/1` shows what the meta wrote. A transaction is one ZooKeeper
//! `multi`. A write is only sent while connected; one that was sent but got no answer (lost
//! connection, timeout, expired session) is `Ambiguous`.

use super::election::Fence;
use super::session::ZkSession;
use super::within;
use crate::path::{parent, validate_path};
use crate::{MetaStore, MetaStoreError, StoreOp, Version};
use async_trait::async_trait;
use std::future::Future;
use std::time::Duration;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, MultiWriteError};

pub struct ZookeeperStore {
    session: ZkSession,
    op_timeout: Duration,
    fence: Option<Fence>,
}

impl ZookeeperStore {
    /// A store over `session`; every call gives up after `op_timeout`.
    pub fn new(session: ZkSession, op_timeout: Duration) -> Self {
        ZookeeperStore {
            session,
            op_timeout,
            fence: None,
        }
    }

    /// Makes every write conditional on this meta's election node: only the leader writes.
    pub fn fenced_by(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    /// The client of a connected session, or why there is none (nothing was sent).
    fn client(&self) -> Result<Client, MetaStoreError> {
        self.session.check().map_err(MetaStoreError::Unavailable)?;
        self.session
            .current()
            .map(|c| c.client)
            .ok_or_else(|| MetaStoreError::Unavailable(format!("no ZooKeeper session with {}", self.session.hosts())))
    }

    async fn bounded<T>(&self, what: &str, call: impl Future<Output = Result<T, ZkError>>) -> Result<T, ZkError> {
        let result = within(self.op_timeout, call).await;
        if matches!(result, Err(ZkError::Timeout)) {
            tracing::warn!(
                what,
                timeout_ms = self.op_timeout.as_millis() as u64,
                "ZooKeeper call timed out"
            );
        }
        result
    }

    async fn version_of(&self, client: &Client, path: &str) -> Version {
        match self.bounded("get", client.get_data(path)).await {
            Ok((_, stat)) => stat.version as Version,
            Err(_) => 0,
        }
    }
}

/// A failure that is not an answer about the data: on a write, the write may or may not be done.
fn connection_failure(e: ZkError, write: bool) -> MetaStoreError {
    let text = format!("ZooKeeper: {e}");
    let unsure = matches!(
        e,
        ZkError::ConnectionLoss
            | ZkError::Timeout
            | ZkError::SessionExpired
            | ZkError::SessionMoved
            | ZkError::ClientClosed
    );
    if write && unsure {
        MetaStoreError::Ambiguous(text)
    } else {
        MetaStoreError::Unavailable(text)
    }
}

fn op_path(op: &StoreOp) -> &str {
    match op {
        StoreOp::Create { path, .. } | StoreOp::Set { path, .. } | StoreOp::Delete { path } => path,
    }
}

#[async_trait]
impl MetaStore for ZookeeperStore {
    fn describe(&self) -> String {
        format!("zookeeper:{}", self.session.hosts())
    }

    fn health(&self) -> Result<(), String> {
        self.session.check()
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Version)>, MetaStoreError> {
        validate_path(path)?;
        let client = self.client()?;
        match self.bounded("get", client.get_data(path)).await {
            Ok((data, stat)) => Ok(Some((data, stat.version as Version))),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(connection_failure(e, false)),
        }
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, MetaStoreError> {
        validate_path(path)?;
        let client = self.client()?;
        match self.bounded("list", client.list_children(path)).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(ZkError::NoNode) => Err(MetaStoreError::NotFound(path.to_string())),
            Err(e) => Err(connection_failure(e, false)),
        }
    }

    async fn transaction(&self, ops: Vec<StoreOp>) -> Result<(), MetaStoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        for op in &ops {
            validate_path(op_path(op))?;
        }
        let fence = match &self.fence {
            None => None,
            Some(fence) => Some(fence.node().ok_or_else(|| {
                MetaStoreError::Unavailable("this meta server does not lead: it may not write the cluster map".into())
            })?),
        };
        let client = self.client()?;
        let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let mut writer = client.new_multi_writer();
        for op in &ops {
            let added = match op {
                StoreOp::Create { path, data } => writer.add_create(path, data, &options),
                StoreOp::Set { path, data, expected } => writer.add_set_data(path, data, expected.map(|v| v as i32)),
                StoreOp::Delete { path } => writer.add_delete(path, None),
            };
            added.map_err(|e| MetaStoreError::BadPath(format!("{}: {e}", op_path(op))))?;
        }
        if let Some(node) = &fence {
            // The election node is never set, so it is at version 0 for as long as it exists.
            writer
                .add_check_version(node, 0)
                .map_err(|e| MetaStoreError::BadPath(format!("{node}: {e}")))?;
        }
        let committed = tokio::time::timeout(self.op_timeout, writer.commit()).await;
        let failure = match committed {
            Ok(Ok(_)) => return Ok(()),
            Err(_) => {
                return Err(MetaStoreError::Ambiguous(format!(
                    "ZooKeeper did not answer within {:?}",
                    self.op_timeout
                )))
            }
            Ok(Err(MultiWriteError::RequestFailed { source })) => return Err(connection_failure(source, true)),
            Ok(Err(MultiWriteError::OperationFailed { index, source })) => (index, source),
        };
        let (index, source) = failure;
        if index == ops.len() {
            return Err(MetaStoreError::Unavailable(format!(
                "this meta server's election node is gone ({source}): it no longer leads; nothing was written"
            )));
        }
        let Some(op) = ops.get(index) else {
            return Err(MetaStoreError::Unavailable(format!(
                "ZooKeeper multi failed at step {index}: {source}"
            )));
        };
        let path = op_path(op).to_string();
        Err(match (op, source) {
            (_, ZkError::NodeExists) => MetaStoreError::AlreadyExists(path),
            (StoreOp::Create { .. }, ZkError::NoNode) => {
                MetaStoreError::NotFound(parent(&path).unwrap_or("/").to_string())
            }
            (_, ZkError::NoNode) => MetaStoreError::NotFound(path),
            (_, ZkError::NotEmpty) => MetaStoreError::NotEmpty(path),
            (StoreOp::Set { expected, .. }, ZkError::BadVersion) => MetaStoreError::BadVersion {
                expected: expected.unwrap_or_default(),
                actual: self.version_of(&client, &path).await,
                path,
            },
            (_, other) => connection_failure(other, true),
        })
    }
}
