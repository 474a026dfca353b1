//! ZooKeeper: one session kept on its own thread (`session`), the meta store over it (`store`), the
//! meta leader election (`election`) copying a subtree between ensembles (`copy`), and a throwaway server for tests (`test_server`).

pub mod copy;
pub mod election;
pub mod session;
pub mod store;
pub mod test_server;

use std::future::Future;
use std::time::Duration;
use zookeeper_client::Error as ZkError;

/// A ZooKeeper call that gives up with `Timeout` after `limit`.
pub(crate) async fn within<T>(limit: Duration, call: impl Future<Output = Result<T, ZkError>>) -> Result<T, ZkError> {
    tokio::time::timeout(limit, call).await.unwrap_or(Err(ZkError::Timeout))
}
