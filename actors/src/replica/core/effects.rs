//! What the replication core asks its host to do. The host (the `Replica` actor, or the simulator)
//! carries each effect out and reports back through the core's event methods.

use aerie_common::{Ballot, Decree, NodeAddr, WireResult};
use aerie_proto::data::WriteResult;
use aerie_proto::meta::PartitionChange;
use aerie_proto::replica::{GroupCheck, Mutation, PrepareAck, ReplicaStatus};
use std::sync::Arc;

/// The host's handle of a client write waiting for its answer.
pub type WaiterId = u64;
/// The host's handle of a prepare waiting for its acknowledgement.
pub type AckToken = u64;

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Append to the local log (group commit); report with `logged`.
    Log(Arc<Mutation>),
    /// Record in the log that everything up to this decree is committed.
    LogCommitPoint(Decree),
    /// Send a prepare; report the answer with `prepare_answered`.
    Prepare { to: NodeAddr, mutation: Arc<Mutation> },
    /// Tell these secondaries the committed point (fire and forget).
    GroupCheck { to: Vec<NodeAddr>, check: GroupCheck },
    /// Apply these committed mutations, in order; report with `applied`.
    Apply(Vec<Arc<Mutation>>),
    /// Answer a client write.
    AnswerWrite {
        waiter: WaiterId,
        answer: WireResult<WriteResult>,
    },
    /// Answer a prepare.
    AnswerPrepare {
        token: AckToken,
        answer: WireResult<PrepareAck>,
    },
    /// Ask the meta for a configuration change at the current ballot; report the answer with
    /// `meta_answered`.
    AskMeta(PartitionChange),
    /// Fetch the partition's configuration from the meta (a newer ballot was seen).
    RefreshConfig,
    /// Write the ballot down (the replica's manifest) before anything else depends on it.
    PersistBallot(Ballot),
    /// After the retry delay, call `resend_due(node)`.
    ResendLater(NodeAddr),
    /// Soon (the group-check delay), call `group_check_due`.
    GroupCheckLater,
    /// Primary: ask this node to start learning the partition from here.
    StartLearner(NodeAddr),
    /// Primary: a learner was dropped; free what it used, and tell the meta when learning failed
    /// (not when the configuration changed under it: the meta knows, and may be moving on).
    LearnerDropped {
        learner: NodeAddr,
        reason: String,
        tell_meta: bool,
    },
    /// The role changed (for logs and metrics).
    RoleChanged { from: ReplicaStatus, to: ReplicaStatus },
    /// A new primary finished reconciliation and serves from now on.
    Serving { committed: Decree },
}
