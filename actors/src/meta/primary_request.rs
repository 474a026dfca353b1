//! What the meta does with a primary's request to change its partition's configuration (remove a
//! secondary that failed to acknowledge, upgrade a learner that caught up, learning given up), as
//! a pure function of the partition's configuration and the request.
//!
//! A request names the ballot the primary serves. At that ballot it is carried out (ballot + 1);
//! if the partition is one ballot further and the change is already there, it is the same request
//! sent again and is answered with the current configuration; anything else is stale and answered
//! `ERR_INVALID_VERSION`.

use super::guardian::{apply_action, upgrade_learner, CureAction};
use aerie_common::{ErrorCode, NodeAddr, WireError, WireResult};
use aerie_proto::meta::{PartitionChange, PartitionConfig, UpdatePartitionConfig};

/// What the meta should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestPlan {
    /// Nothing to change: answer with the current configuration.
    Current,
    /// Persist and apply this configuration, then answer with it.
    Change(PartitionConfig),
}

/// Facts about the cluster the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    /// Whether the learner of an `UpgradeLearner` is alive.
    pub learner_alive: bool,
    /// Whether a balance move is adding that learner (it may exceed the replica count for a while).
    pub move_adds_learner: bool,
}

fn err(code: ErrorCode, detail: String) -> WireError {
    WireError::new(code, detail)
}

/// Whether `config` already reflects `change`.
fn already_applied(config: &PartitionConfig, change: PartitionChange) -> bool {
    match change {
        PartitionChange::RemoveSecondary(node) => !config.is_member(node),
        PartitionChange::UpgradeLearner(node) => config.secondaries.contains(&node),
        PartitionChange::LearnerFailed(_) => true,
    }
}

pub fn plan_primary_request(
    config: &PartitionConfig,
    req: &UpdatePartitionConfig,
    context: RequestContext,
) -> WireResult<RequestPlan> {
    if config.ballot == req.ballot + 1 && already_applied(config, req.change) {
        return Ok(RequestPlan::Current);
    }
    if config.ballot != req.ballot {
        return Err(err(
            ErrorCode::ERR_INVALID_VERSION,
            format!(
                "request at ballot {}, but partition {} is at ballot {}",
                req.ballot, req.gpid, config.ballot
            ),
        ));
    }
    if config.primary != Some(req.requester) {
        return Err(err(
            ErrorCode::ERR_INVALID_STATE,
            format!(
                "{} is not the primary of {} at ballot {}",
                req.requester, req.gpid, config.ballot
            ),
        ));
    }
    let next = match req.change {
        PartitionChange::LearnerFailed(_) => return Ok(RequestPlan::Current),
        PartitionChange::RemoveSecondary(node) => {
            if !config.secondaries.contains(&node) {
                return Err(err(
                    ErrorCode::ERR_INVALID_PARAMETERS,
                    format!("{node} is not a secondary of {}", req.gpid),
                ));
            }
            apply_action(config, CureAction::RemoveSecondary(node)).expect("a configuration change")
        }
        PartitionChange::UpgradeLearner(node) => {
            check_upgrade(config, req, node, context)?;
            upgrade_learner(config, node)
        }
    };
    Ok(RequestPlan::Change(next))
}

fn check_upgrade(
    config: &PartitionConfig,
    req: &UpdatePartitionConfig,
    node: NodeAddr,
    context: RequestContext,
) -> WireResult<()> {
    if config.is_member(node) {
        return Err(err(
            ErrorCode::ERR_INVALID_PARAMETERS,
            format!("{node} already serves {}", req.gpid),
        ));
    }
    if config.secondaries.len() + 1 >= config.max_replica_count as usize && !context.move_adds_learner {
        return Err(err(
            ErrorCode::ERR_INVALID_STATE,
            format!("{} already has its {} replicas", req.gpid, config.max_replica_count),
        ));
    }
    if !context.learner_alive {
        return Err(err(ErrorCode::ERR_INVALID_STATE, format!("{node} is not alive")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::Gpid;

    fn node(n: u16) -> NodeAddr {
        format!("127.0.0.1:{}", 34800 + n).parse().unwrap()
    }

    fn config(ballot: i64, secondaries: &[u16]) -> PartitionConfig {
        PartitionConfig {
            gpid: Gpid::new(1, 0),
            ballot,
            primary: Some(node(1)),
            secondaries: secondaries.iter().map(|n| node(*n)).collect(),
            max_replica_count: 3,
            last_drops: vec![],
            last_committed_decree: 0,
        }
    }

    fn request(ballot: i64, change: PartitionChange) -> UpdatePartitionConfig {
        UpdatePartitionConfig {
            gpid: Gpid::new(1, 0),
            ballot,
            requester: node(1),
            change,
        }
    }

    const ALIVE: RequestContext = RequestContext {
        learner_alive: true,
        move_adds_learner: false,
    };

    #[test]
    fn a_removal_at_the_current_ballot_raises_it_and_a_resend_is_answered_with_the_result() {
        let plan = plan_primary_request(
            &config(4, &[2, 3]),
            &request(4, PartitionChange::RemoveSecondary(node(3))),
            ALIVE,
        );
        let Ok(RequestPlan::Change(next)) = plan else {
            panic!("{plan:?}")
        };
        assert_eq!((next.ballot, next.secondaries.clone()), (5, vec![node(2)]));
        let again = plan_primary_request(&next, &request(4, PartitionChange::RemoveSecondary(node(3))), ALIVE);
        assert_eq!(again, Ok(RequestPlan::Current));
    }

    #[test]
    fn stale_and_foreign_requests_are_refused() {
        let stale = plan_primary_request(
            &config(6, &[2, 3]),
            &request(4, PartitionChange::RemoveSecondary(node(3))),
            ALIVE,
        );
        assert_eq!(stale.unwrap_err().code, ErrorCode::ERR_INVALID_VERSION);
        let mut foreign = request(6, PartitionChange::RemoveSecondary(node(3)));
        foreign.requester = node(2);
        assert_eq!(
            plan_primary_request(&config(6, &[2, 3]), &foreign, ALIVE)
                .unwrap_err()
                .code,
            ErrorCode::ERR_INVALID_STATE
        );
    }

    #[test]
    fn a_learner_is_upgraded_only_when_alive_and_there_is_room() {
        let up = request(2, PartitionChange::UpgradeLearner(node(4)));
        assert!(matches!(
            plan_primary_request(&config(2, &[2]), &up, ALIVE),
            Ok(RequestPlan::Change(_))
        ));
        let dead = RequestContext {
            learner_alive: false,
            ..ALIVE
        };
        assert!(plan_primary_request(&config(2, &[2]), &up, dead).is_err());
        assert!(plan_primary_request(&config(2, &[2, 3]), &up, ALIVE).is_err(), "full");
        let moving = RequestContext {
            move_adds_learner: true,
            ..ALIVE
        };
        assert!(plan_primary_request(&config(2, &[2, 3]), &up, moving).is_ok());
    }
}
