//! Where a learner catches up from: the cheapest source that reaches back to the learner's applied
//! decree. A pure function of what the primary holds.
//!
//! ```text
//!  learner applied a, primary committed c
//!  c - a small and memory holds a+1..c  ─► Join   (last mutations, then every prepare)
//!  memory holds a+1..                   ─► Cache  (a batch of committed mutations)
//!  the log files hold a+1.., and replaying
//!  them is cheaper than copying the data ─► Log    (a batch read from the log files)
//!  otherwise                            ─► Checkpoint (the primary's data, copied in chunks)
//! ```
//!
//! Replaying a byte of log costs more than copying a byte of data (each mutation is decoded,
//! applied and logged again, where a checkpoint is copied file by file), so the log wins only when
//! it is well smaller than the data: a learner that missed a little catches up from the log, an
//! empty one of a large partition copies a checkpoint.

use aerie_common::Decree;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnPlan {
    Join,
    Cache,
    Log,
    Checkpoint,
}

/// What the primary holds, and how close a learner must be to join.
#[derive(Debug, Clone, Copy)]
pub struct PrimaryHoldings {
    pub committed: Decree,
    /// The oldest committed mutation still in memory.
    pub cache_first: Option<Decree>,
    /// The oldest mutation in the log files.
    pub log_first: Option<Decree>,
    /// A learner this close to the committed decree joins at once.
    pub join_gap: Decree,
    /// Bytes of the log segments a replay from the learner's point would read.
    pub log_bytes_to_replay: u64,
    /// Bytes of the primary's data (what a checkpoint copies).
    pub data_bytes: u64,
}

/// A log replay is chosen while it reads at most this fraction of the data a checkpoint would copy.
const LOG_REPLAY_COST: u64 = 2;

pub fn plan_learning(applied: Decree, holdings: PrimaryHoldings) -> LearnPlan {
    let need = applied + 1;
    let reaches = |first: Option<Decree>| first.is_some_and(|first| first <= need);
    let nothing_missing = applied >= holdings.committed;
    if nothing_missing || (holdings.committed - applied <= holdings.join_gap && reaches(holdings.cache_first)) {
        return LearnPlan::Join;
    }
    if reaches(holdings.cache_first) {
        return LearnPlan::Cache;
    }
    if reaches(holdings.log_first) && holdings.log_bytes_to_replay * LOG_REPLAY_COST <= holdings.data_bytes {
        return LearnPlan::Log;
    }
    LearnPlan::Checkpoint
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holdings(committed: Decree, cache_first: Option<Decree>, log_first: Option<Decree>) -> PrimaryHoldings {
        PrimaryHoldings {
            committed,
            cache_first,
            log_first,
            join_gap: 100,
            log_bytes_to_replay: 1 << 20,
            data_bytes: 100 << 20,
        }
    }

    #[test]
    fn a_learner_with_everything_joins_at_once() {
        assert_eq!(plan_learning(500, holdings(500, None, None)), LearnPlan::Join);
    }

    #[test]
    fn a_close_learner_joins_when_memory_covers_the_gap() {
        assert_eq!(plan_learning(450, holdings(500, Some(400), Some(1))), LearnPlan::Join);
        assert_eq!(
            plan_learning(450, holdings(500, Some(452), Some(1))),
            LearnPlan::Log,
            "memory starts too late"
        );
    }

    #[test]
    fn memory_is_preferred_to_the_log() {
        assert_eq!(
            plan_learning(100, holdings(10_000, Some(50), Some(1))),
            LearnPlan::Cache
        );
    }

    #[test]
    fn the_log_is_preferred_to_a_checkpoint() {
        assert_eq!(
            plan_learning(100, holdings(10_000, Some(9_000), Some(101))),
            LearnPlan::Log
        );
        assert_eq!(
            plan_learning(100, holdings(10_000, Some(9_000), Some(102))),
            LearnPlan::Checkpoint
        );
    }

    #[test]
    fn a_log_about_as_large_as_the_data_loses_to_a_checkpoint() {
        let mut primary = holdings(10_000, Some(9_000), Some(1));
        primary.log_bytes_to_replay = 40 << 20;
        primary.data_bytes = 64 << 20;
        assert_eq!(plan_learning(100, primary), LearnPlan::Checkpoint);
        primary.log_bytes_to_replay = 8 << 20;
        assert_eq!(
            plan_learning(100, primary),
            LearnPlan::Log,
            "a small part of it: the log"
        );
    }

    #[test]
    fn an_empty_learner_of_a_large_partition_takes_a_checkpoint() {
        assert_eq!(
            plan_learning(0, holdings(1_000_000, Some(990_000), Some(800_000))),
            LearnPlan::Checkpoint
        );
    }

    #[test]
    fn a_new_partition_needs_nothing() {
        assert_eq!(plan_learning(0, holdings(0, None, None)), LearnPlan::Join);
    }
}
