//! One balance move as a sequence of configuration changes, each one ballot step carried out through
//! the cure's path. Which step comes next is read off the partition's configuration, so a move
//! resumes correctly whatever step it was at, and is given up when another change got there first.
//!
//! ```text
//!  move_pri  P=from S∋to          ─DOWNGRADE_TO_SECONDARY(from)─► no P, S∋from,to ─UPGRADE_TO_PRIMARY(to)─► P=to
//!  copy_sec  S∋from, to new       ─ADD_SECONDARY(to): learn, upgraded─► S∋from,to ─REMOVE(from)─► done
//!  copy_pri  P=from, to new       ─ADD_SECONDARY(to)─► ─DOWNGRADE(from)─► ─UPGRADE(to)─► ─REMOVE(from)─► done
//! ```

use crate::meta::guardian::CureAction;
use aerie_proto::meta::{BalanceMove, MoveKind, PartitionConfig};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Carry out this change next (`AddSecondary` starts learning on the new node).
    Act(CureAction),
    /// The move is complete.
    Done,
    /// The partition no longer fits the move: something else changed it.
    GiveUp(String),
}

/// The next step of `the_move` for a partition now configured as `config`.
pub fn next_step(the_move: &BalanceMove, config: &PartitionConfig) -> Step {
    let (from, to) = (the_move.from, the_move.to);
    let secondary = |n| config.secondaries.contains(&n);
    let member = |n| config.is_member(n);
    let primary = config.primary;
    let step = match the_move.kind {
        MoveKind::MovePri => match primary {
            Some(p) if p == to && secondary(from) => Some(Step::Done),
            Some(p) if p == from && secondary(to) => Some(Step::Act(CureAction::DowngradeToSecondary(from))),
            None if secondary(from) && secondary(to) => Some(Step::Act(CureAction::UpgradeToPrimary(to))),
            _ => None,
        },
        MoveKind::CopySec => match primary {
            Some(_) if secondary(to) && !member(from) => Some(Step::Done),
            Some(_) if secondary(to) && secondary(from) => Some(Step::Act(CureAction::RemoveSecondary(from))),
            Some(_) if secondary(from) && !member(to) => Some(Step::Act(CureAction::AddSecondary(to))),
            _ => None,
        },
        MoveKind::CopyPri => match primary {
            Some(p) if p == to && !member(from) => Some(Step::Done),
            Some(p) if p == to && secondary(from) => Some(Step::Act(CureAction::RemoveSecondary(from))),
            Some(p) if p == from && secondary(to) => Some(Step::Act(CureAction::DowngradeToSecondary(from))),
            Some(p) if p == from && !member(to) => Some(Step::Act(CureAction::AddSecondary(to))),
            None if secondary(from) && secondary(to) => Some(Step::Act(CureAction::UpgradeToPrimary(to))),
            _ => None,
        },
    };
    step.unwrap_or_else(|| {
        Step::GiveUp(format!(
            "{} at ballot {} (primary {}, secondaries {:?}) no longer fits {the_move}",
            config.gpid,
            config.ballot,
            primary.map_or("none".to_string(), |p| p.to_string()),
            config.secondaries.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        ))
    })
}

/// The partition's configuration once `the_move` has completed.
pub fn projected(the_move: &BalanceMove, config: &PartitionConfig) -> PartitionConfig {
    let mut next = config.clone();
    let (from, to) = (the_move.from, the_move.to);
    next.secondaries.retain(|n| *n != to && *n != from);
    match the_move.kind {
        MoveKind::MovePri => {
            next.primary = Some(to);
            next.secondaries.push(from);
        }
        MoveKind::CopyPri => next.primary = Some(to),
        MoveKind::CopySec => next.secondaries.push(to),
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::guardian::apply_action;
    use aerie_common::{Gpid, NodeAddr};

    fn node(i: u16) -> NodeAddr {
        format!("127.0.0.1:{}", 34800 + i).parse().unwrap()
    }

    fn config(primary: Option<u16>, secondaries: &[u16]) -> PartitionConfig {
        PartitionConfig {
            primary: primary.map(node),
            secondaries: secondaries.iter().map(|s| node(*s)).collect(),
            ballot: 5,
            ..PartitionConfig::empty(Gpid::new(1, 0), 3)
        }
    }

    /// Runs a move to its end the way the executor does; the learner is upgraded by its primary.
    fn run(the_move: BalanceMove, mut config: PartitionConfig) -> (PartitionConfig, Vec<CureAction>) {
        let mut actions = Vec::new();
        loop {
            match next_step(&the_move, &config) {
                Step::Done => return (config, actions),
                Step::GiveUp(reason) => panic!("{reason}"),
                Step::Act(action) => {
                    actions.push(action);
                    let before = config.replica_count();
                    config = match action {
                        CureAction::AddSecondary(n) => crate::meta::guardian::upgrade_learner(&config, n),
                        other => apply_action(&config, other).unwrap(),
                    };
                    assert!(
                        config.replica_count() + 1 >= before,
                        "a step never loses more than it added"
                    );
                    assert!(actions.len() <= 4, "a move takes at most four steps");
                }
            }
        }
    }

    fn mv(kind: MoveKind, from: u16, to: u16) -> BalanceMove {
        BalanceMove {
            gpid: Gpid::new(1, 0),
            kind,
            from: node(from),
            to: node(to),
        }
    }

    #[test]
    fn move_pri_is_a_downgrade_then_an_upgrade() {
        let (end, actions) = run(mv(MoveKind::MovePri, 1, 2), config(Some(1), &[2, 3]));
        assert_eq!(
            actions,
            vec![
                CureAction::DowngradeToSecondary(node(1)),
                CureAction::UpgradeToPrimary(node(2))
            ]
        );
        assert_eq!(end.primary, Some(node(2)));
        assert_eq!(end.ballot, 7, "one ballot per step");
        let expected = projected(&mv(MoveKind::MovePri, 1, 2), &config(Some(1), &[2, 3]));
        let sorted = |c: &PartitionConfig| {
            let mut s = c.secondaries.clone();
            s.sort();
            (c.primary, s)
        };
        assert_eq!(sorted(&end), sorted(&expected), "projected() foresees the end");
    }

    #[test]
    fn copy_sec_adds_before_it_removes() {
        let the_move = mv(MoveKind::CopySec, 3, 4);
        let (end, actions) = run(the_move, config(Some(1), &[2, 3]));
        assert_eq!(
            actions,
            vec![CureAction::AddSecondary(node(4)), CureAction::RemoveSecondary(node(3))]
        );
        assert!(end.secondaries.contains(&node(4)) && !end.is_member(node(3)));
        assert_eq!(end.replica_count(), 3);
    }

    #[test]
    fn copy_pri_takes_four_steps_and_ends_with_the_new_primary() {
        let the_move = mv(MoveKind::CopyPri, 1, 4);
        let (end, actions) = run(the_move, config(Some(1), &[2, 3]));
        assert_eq!(
            actions,
            vec![
                CureAction::AddSecondary(node(4)),
                CureAction::DowngradeToSecondary(node(1)),
                CureAction::UpgradeToPrimary(node(4)),
                CureAction::RemoveSecondary(node(1)),
            ]
        );
        assert_eq!(end.primary, Some(node(4)));
        assert!(!end.is_member(node(1)));
    }

    #[test]
    fn a_move_resumes_from_any_step_and_gives_up_when_overtaken() {
        // Halfway through move_pri (primary downgraded): the upgrade comes next.
        let half = config(None, &[2, 3, 1]);
        assert_eq!(
            next_step(&mv(MoveKind::MovePri, 1, 2), &half),
            Step::Act(CureAction::UpgradeToPrimary(node(2)))
        );
        // The cure promoted another secondary meanwhile: the move no longer fits.
        let overtaken = config(Some(3), &[2, 1]);
        assert!(matches!(
            next_step(&mv(MoveKind::MovePri, 1, 2), &overtaken),
            Step::GiveUp(_)
        ));
        // The node to copy from died and was removed.
        assert!(matches!(
            next_step(&mv(MoveKind::CopySec, 3, 4), &config(Some(1), &[2])),
            Step::GiveUp(_)
        ));
    }
}
