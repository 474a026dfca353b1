//! Which meta server a replica server talks to: the one that answered last, then the others.

use aerie_common::NodeAddr;
use aerie_proto::Rpc;
use aerie_rpc::{Network, RpcError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct MetaLocator {
    metas: Arc<Vec<NodeAddr>>,
    current: Arc<AtomicUsize>,
}

impl MetaLocator {
    pub fn new(metas: Vec<NodeAddr>) -> Self {
        assert!(!metas.is_empty(), "at least one meta server");
        MetaLocator {
            metas: Arc::new(metas),
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn current(&self) -> NodeAddr {
        self.metas[self.current.load(Ordering::Relaxed) % self.metas.len()]
    }

    /// Moves on to the next meta server after a failure.
    pub fn rotate(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    /// Follows a meta server's hint about which one leads.
    pub fn follow(&self, leader: NodeAddr) {
        if let Some(i) = self.metas.iter().position(|m| *m == leader) {
            self.current.store(i, Ordering::Relaxed);
        }
    }

    /// Calls the current meta server, then each other one once, until one answers.
    pub async fn call<M: Rpc + Clone>(
        &self,
        network: &Network,
        req: M,
        timeout: Duration,
    ) -> Result<M::Response, RpcError> {
        let mut last = None;
        for _ in 0..self.metas.len() {
            let meta = self.current();
            match network.call(meta, req.clone(), timeout).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    self.rotate();
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one meta server"))
    }
}
