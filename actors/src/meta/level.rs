//! The effective meta level: what the operator set, unless too few nodes are alive, in which case
//! the meta freezes itself and lifts the freeze when they return. Pure.
//!
//! While frozen the cure still fails over (promotes a secondary, drops dead members) so that
//! partitions stay available, but starts nothing that copies data or adds load.

use super::guardian::CureAction;
use aerie_common::MetaLevel;

/// When the meta freezes itself (`[meta_server]` keys of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreezeRule {
    pub min_live_node_count_for_unfreeze: u32,
    pub node_live_percentage_threshold_for_update: u32,
}

impl FreezeRule {
    /// Why `alive` of `known` nodes is too few, if it is.
    pub fn too_few(&self, alive: usize, known: usize) -> Option<String> {
        if (alive as u64) < self.min_live_node_count_for_unfreeze as u64 {
            return Some(format!(
                "{alive} of {known} nodes alive, fewer than min_live_node_count_for_unfreeze = {}",
                self.min_live_node_count_for_unfreeze
            ));
        }
        if (alive as u64) * 100 < known as u64 * self.node_live_percentage_threshold_for_update as u64 {
            return Some(format!(
                "{alive} of {known} nodes alive, below node_live_percentage_threshold_for_update = {}%",
                self.node_live_percentage_threshold_for_update
            ));
        }
        None
    }
}

/// The level in force, and why it differs from the stored one.
pub fn effective_level(
    stored: MetaLevel,
    alive: usize,
    known: usize,
    rule: &FreezeRule,
) -> (MetaLevel, Option<String>) {
    match stored {
        MetaLevel::Blind | MetaLevel::Freezed => (stored, None),
        MetaLevel::Steady | MetaLevel::Lively => match rule.too_few(alive, known) {
            Some(reason) => (MetaLevel::Freezed, Some(reason)),
            None => (stored, None),
        },
    }
}

/// Whether the cure may take `action` at `level`, given whether the node it removes is alive.
pub fn cure_allows(level: MetaLevel, action: CureAction, removed_node_alive: bool) -> bool {
    match level {
        MetaLevel::Blind => false,
        MetaLevel::Steady | MetaLevel::Lively => true,
        MetaLevel::Freezed => match action {
            CureAction::UpgradeToPrimary(_) | CureAction::DropPrimary(_) => true,
            CureAction::RemoveSecondary(_) => !removed_node_alive,
            CureAction::AddSecondary(_) | CureAction::AssignPrimary(_) | CureAction::DowngradeToSecondary(_) => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::NodeAddr;

    const RULE: FreezeRule = FreezeRule {
        min_live_node_count_for_unfreeze: 3,
        node_live_percentage_threshold_for_update: 50,
    };

    #[test]
    fn enough_live_nodes_keep_the_stored_level() {
        assert_eq!(
            effective_level(MetaLevel::Steady, 3, 4, &RULE),
            (MetaLevel::Steady, None)
        );
        assert_eq!(effective_level(MetaLevel::Lively, 10, 20, &RULE).0, MetaLevel::Lively);
    }

    #[test]
    fn too_few_live_nodes_freeze_and_say_why() {
        let (level, why) = effective_level(MetaLevel::Steady, 2, 4, &RULE);
        assert_eq!(level, MetaLevel::Freezed);
        assert!(why.unwrap().contains("min_live_node_count_for_unfreeze = 3"));
        let (level, why) = effective_level(MetaLevel::Lively, 4, 10, &RULE);
        assert_eq!(level, MetaLevel::Freezed);
        assert!(why.unwrap().contains("node_live_percentage_threshold_for_update = 50%"));
    }

    #[test]
    fn a_level_set_by_hand_stays() {
        assert_eq!(
            effective_level(MetaLevel::Blind, 10, 10, &RULE),
            (MetaLevel::Blind, None)
        );
        assert_eq!(
            effective_level(MetaLevel::Freezed, 10, 10, &RULE),
            (MetaLevel::Freezed, None)
        );
    }

    #[test]
    fn frozen_cure_fails_over_but_adds_nothing() {
        let n: NodeAddr = "127.0.0.1:1".parse().unwrap();
        let frozen = MetaLevel::Freezed;
        assert!(cure_allows(frozen, CureAction::UpgradeToPrimary(n), true));
        assert!(cure_allows(frozen, CureAction::DropPrimary(n), false));
        assert!(
            cure_allows(frozen, CureAction::RemoveSecondary(n), false),
            "a dead member goes"
        );
        assert!(
            !cure_allows(frozen, CureAction::RemoveSecondary(n), true),
            "a live extra one stays"
        );
        assert!(!cure_allows(frozen, CureAction::AddSecondary(n), true));
        assert!(!cure_allows(frozen, CureAction::AssignPrimary(n), true));
        assert!(!cure_allows(MetaLevel::Blind, CureAction::UpgradeToPrimary(n), true));
        assert!(cure_allows(MetaLevel::Steady, CureAction::AddSecondary(n), true));
    }
}
