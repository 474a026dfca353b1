//! Fault injection for tests: drop or delay calls to chosen nodes. Applies to local and TCP calls alike.

use aerie_common::NodeAddr;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    Drop,
    Delay(Duration),
}

/// Shared, runtime-adjustable rules keyed by destination node.
#[derive(Debug, Clone, Default)]
pub struct FaultFilter {
    rules: Arc<RwLock<HashMap<NodeAddr, Verdict>>>,
}

impl FaultFilter {
    /// Every call to `node` fails as if the network dropped it.
    pub fn block(&self, node: NodeAddr) {
        self.rules.write().expect("fault rules").insert(node, Verdict::Drop);
    }

    /// Every call to `node` waits `delay` before it is sent.
    pub fn delay(&self, node: NodeAddr, delay: Duration) {
        self.rules
            .write()
            .expect("fault rules")
            .insert(node, Verdict::Delay(delay));
    }

    pub fn heal(&self, node: NodeAddr) {
        self.rules.write().expect("fault rules").remove(&node);
    }

    pub fn verdict(&self, to: NodeAddr) -> Verdict {
        let rules = self.rules.read().expect("fault rules");
        rules.get(&to).copied().unwrap_or(Verdict::Deliver)
    }
}
