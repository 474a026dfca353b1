//! Which meta server leads, as this process sees it. With the embedded store there is one meta and
//! it always leads; with ZooKeeper the election (`zookeeper::election`) keeps the view current.

use aerie_common::NodeAddr;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderView {
    /// This process leads: it may change the cluster map.
    Leader,
    /// Another meta leads, at this address.
    Follower(NodeAddr),
    /// Nobody is known to lead (no ZooKeeper session, or leadership given up); the text says why.
    Unknown(String),
}

/// A live view of the leadership; clones see the same view.
#[derive(Clone)]
pub struct Leadership {
    rx: watch::Receiver<LeaderView>,
    /// Keeps a fixed view's sender alive.
    _fixed: Option<Arc<watch::Sender<LeaderView>>>,
}

impl Leadership {
    /// A view that never changes (the embedded store's single meta always leads).
    pub fn fixed(view: LeaderView) -> Self {
        let (tx, rx) = watch::channel(view);
        Leadership {
            rx,
            _fixed: Some(Arc::new(tx)),
        }
    }

    /// A view set by hand through the returned sender (for tests of what follows the leadership).
    pub fn manual(initial: LeaderView) -> (watch::Sender<LeaderView>, Leadership) {
        let (tx, rx) = watch::channel(initial);
        (tx, Leadership { rx, _fixed: None })
    }

    pub(crate) fn from_receiver(rx: watch::Receiver<LeaderView>) -> Self {
        Leadership { rx, _fixed: None }
    }

    pub fn current(&self) -> LeaderView {
        self.rx.borrow().clone()
    }

    pub fn is_leader(&self) -> bool {
        matches!(*self.rx.borrow(), LeaderView::Leader)
    }

    /// The leader's address as far as known (`me` when this process leads).
    pub fn leader(&self, me: NodeAddr) -> Option<NodeAddr> {
        match self.current() {
            LeaderView::Leader => Some(me),
            LeaderView::Follower(leader) => Some(leader),
            LeaderView::Unknown(_) => None,
        }
    }

    /// Waits for the next change; `None` once nobody can change the view any more.
    pub async fn changed(&mut self) -> Option<LeaderView> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }
}
