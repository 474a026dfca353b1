//! The core driven directly: each test feeds events and asserts the effects.

use super::*;
use aerie_proto::data::{WriteOp, WriteResult};
use aerie_proto::replica::{ClientRequest, MutationOp, PrepareAck};

pub(super) const GPID: Gpid = Gpid { app_id: 1, pidx: 0 };
pub(super) const INCARNATION: u64 = 77;

pub(super) fn node(n: u16) -> NodeAddr {
    format!("127.0.0.1:{}", 34800 + n).parse().unwrap()
}

pub(super) fn options() -> CoreOptions {
    CoreOptions {
        min_replicas_for_write: 2,
        max_uncommitted: 100,
        // Every write its own mutation, as the tests below expect; batching has its own tests.
        max_proposals_in_flight: 100,
        pipeline_min_writes: 1,
        max_batch_bytes: 1 << 20,
    }
}

pub(super) fn gate(now_ms: u64) -> Gate {
    Gate {
        now_ms,
        lease_until_ms: Some(10_000),
        incarnation: INCARNATION,
    }
}

pub(super) fn config(ballot: Ballot, primary: u16, secondaries: &[u16]) -> PartitionConfig {
    PartitionConfig {
        gpid: GPID,
        ballot,
        primary: Some(node(primary)),
        secondaries: secondaries.iter().map(|n| node(*n)).collect(),
        max_replica_count: 3,
        last_drops: vec![],
        last_committed_decree: 0,
    }
}

pub(super) fn put(value: &str) -> WriteOp {
    WriteOp::Put {
        hash_key: b"h".to_vec(),
        sort_key: b"s".to_vec(),
        value: value.as_bytes().to_vec(),
        ttl_secs: 0,
    }
}

pub(super) fn request(seq: u64) -> Option<ClientRequest> {
    Some(ClientRequest {
        client: 9,
        seq,
        acked_below: 0,
    })
}

fn mutation(decree: Decree, ballot: Ballot, last_committed: Decree) -> Arc<Mutation> {
    Arc::new(Mutation {
        gpid: GPID,
        ballot,
        decree,
        last_committed,
        timestamp_secs: 5,
        ops: vec![MutationOp::plain(put(&format!("v{decree}")))],
    })
}

fn fresh(me: u16) -> ReplicaCore {
    restored(me, 0, vec![])
}

fn restored(me: u16, committed: Decree, uncommitted: Vec<Arc<Mutation>>) -> ReplicaCore {
    restored_with(options(), me, committed, uncommitted)
}

fn restored_with(options: CoreOptions, me: u16, committed: Decree, uncommitted: Vec<Arc<Mutation>>) -> ReplicaCore {
    ReplicaCore::new(
        GPID,
        node(me),
        options,
        Restored {
            ballot: 1,
            last_committed: committed,
            last_applied: committed,
            uncommitted,
        },
    )
}

/// A primary (node 1) of {1; 2, 3} at `ballot`, serving.
fn primary(ballot: Ballot) -> ReplicaCore {
    primary_with(options(), ballot)
}

/// The same, with `options`.
pub(super) fn primary_with(options: CoreOptions, ballot: Ballot) -> ReplicaCore {
    let mut core = restored_with(options, 1, 0, vec![]);
    core.update_config(config(ballot, 1, &[2, 3]), Some(INCARNATION), 5)
        .unwrap();
    assert!(core.is_serving());
    core
}

pub(super) fn logs(effects: &[Effect]) -> Vec<Decree> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(m) => Some(m.decree),
            _ => None,
        })
        .collect()
}

pub(super) fn prepares(effects: &[Effect]) -> Vec<(NodeAddr, Decree)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Prepare { to, mutation } => Some((*to, mutation.decree)),
            _ => None,
        })
        .collect()
}

pub(super) fn answers(effects: &[Effect]) -> Vec<(WaiterId, WireResult<WriteResult>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AnswerWrite { waiter, answer } => Some((*waiter, answer.clone())),
            _ => None,
        })
        .collect()
}

fn prepare_answers(effects: &[Effect]) -> Vec<(AckToken, WireResult<PrepareAck>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::AnswerPrepare { token, answer } => Some((*token, answer.clone())),
            _ => None,
        })
        .collect()
}

fn applied_decrees(effects: &[Effect]) -> Vec<Decree> {
    effects
        .iter()
        .flat_map(|e| match e {
            Effect::Apply(ms) => ms.iter().map(|m| m.decree).collect(),
            _ => vec![],
        })
        .collect()
}

/// Logs, acks everywhere and applies decree `d` at the primary; returns the effects.
fn commit(core: &mut ReplicaCore, d: Decree) -> Vec<Effect> {
    let ballot = core.ballot();
    let mut out = core.logged(&[(d, ballot)], 0);
    for n in [2, 3] {
        out.extend(core.prepare_answered(node(n), d, ballot, Ok(PrepareAck { decree: d, ballot })));
    }
    out.extend(core.applied(d, vec![(d, vec![Ok(WriteResult::Done)])]));
    out
}

#[test]
fn a_write_is_answered_only_after_it_is_logged_acknowledged_committed_and_applied() {
    let mut core = primary(2);
    let out = core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    assert_eq!(logs(&out), vec![1]);
    assert_eq!(prepares(&out), vec![(node(2), 1), (node(3), 1)]);
    assert!(answers(&out).is_empty());
    let out = core.logged(&[(1, 2)], 0);
    assert!(applied_decrees(&out).is_empty(), "not acknowledged yet");
    core.prepare_answered(node(2), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    let out = core.prepare_answered(node(3), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    assert_eq!(applied_decrees(&out), vec![1]);
    assert!(answers(&out).is_empty(), "answered once applied");
    let out = core.applied(1, vec![(1, vec![Ok(WriteResult::Done)])]);
    assert_eq!(answers(&out), vec![(1, Ok(WriteResult::Done))]);
}

// Issue fix 1: a deposed primary keeps writing.
#[test]
fn a_primary_that_sees_a_higher_ballot_steps_down_before_taking_the_prepare() {
    let mut core = primary(3);
    let out = core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    assert_eq!(logs(&out), vec![1]);
    // The cure made node 2 primary at ballot 5; its reconciliation reaches this replica first.
    let out = core.prepare(7, node(2), mutation(1, 5, 0));
    assert_eq!(core.role(), ReplicaStatus::Secondary);
    assert_eq!(core.ballot(), 5);
    let answered = answers(&out);
    assert_eq!(answered.len(), 1);
    assert_eq!(
        answered[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_OUTCOME_UNKNOWN,
        "the write it had proposed may still commit"
    );
    assert!(out.contains(&Effect::PersistBallot(5)));
    assert!(out.contains(&Effect::RefreshConfig));
    assert_eq!(logs(&out), vec![1], "the new primary's prepare is logged");
    // It no longer takes writes, at the old ballot or the new one.
    let out = core.client_write(2, request(2), put("b"), AppliedLookup::NotApplied, &gate(0), 5);
    assert_eq!(
        answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_NOT_PRIMARY
    );
    assert!(logs(&out).is_empty());
}

#[test]
fn a_prepare_from_anyone_but_the_primary_of_its_ballot_is_refused() {
    let mut secondary = fresh(2);
    secondary
        .update_config(config(4, 1, &[2, 3]), Some(INCARNATION), 5)
        .unwrap();
    // Node 3 believes it is primary at ballot 4: refused.
    let out = secondary.prepare(1, node(3), mutation(1, 4, 0));
    assert_eq!(
        prepare_answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
    assert!(logs(&out).is_empty());
    // The primary of ballot 4 is heard.
    let out = secondary.prepare(2, node(1), mutation(1, 4, 0));
    assert_eq!(logs(&out), vec![1]);
    // An older ballot is refused as stale.
    let out = secondary.prepare(3, node(1), mutation(2, 3, 0));
    assert_eq!(
        prepare_answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_INVALID_VERSION
    );
}

#[test]
fn a_different_write_for_a_decree_at_the_same_ballot_is_refused() {
    let mut secondary = fresh(2);
    secondary
        .update_config(config(4, 1, &[2, 3]), Some(INCARNATION), 5)
        .unwrap();
    secondary.prepare(1, node(1), mutation(1, 4, 0));
    let mut other = (*mutation(1, 4, 0)).clone();
    other.ops = vec![MutationOp::plain(put("other"))];
    let out = secondary.prepare(2, node(1), Arc::new(other));
    assert_eq!(
        prepare_answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
}

#[test]
fn a_primary_proposes_only_at_its_configurations_ballot() {
    let mut core = primary(2);
    let out = core.client_write(1, None, put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let Some(Effect::Log(m)) = out.first() else {
        panic!("{out:?}")
    };
    assert_eq!(m.ballot, core.config().unwrap().ballot);
}

// Issue fix 2: writes applied twice through retries.
#[test]
fn a_retry_of_a_write_under_way_waits_for_the_same_decree() {
    let mut core = primary(2);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let retry = core.client_write(2, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    assert!(logs(&retry).is_empty(), "not proposed again");
    let out = commit(&mut core, 1);
    let mut answered = answers(&out);
    answered.sort_by_key(|(w, _)| *w);
    assert_eq!(answered, vec![(1, Ok(WriteResult::Done)), (2, Ok(WriteResult::Done))]);
    assert_eq!(core.last_prepared(), 1);
}

// Found by t41: the retry that joined its first attempt's decree was answered `Done` instead of
// the check-and-set's result (the client took the CAS for failed although it took effect).
#[test]
fn every_attempt_waiting_for_a_decree_gets_the_operations_answer() {
    let mut core = primary(2);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    core.client_write(2, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    core.logged(&[(1, 2)], 0);
    for n in [2, 3] {
        core.prepare_answered(node(n), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    }
    let cas = Ok(WriteResult::CheckAndSet {
        set_succeeded: true,
        check_value: None,
    });
    let mut answered = answers(&core.applied(1, vec![(1, vec![cas.clone()])]));
    answered.sort_by_key(|(w, _)| *w);
    assert_eq!(answered, vec![(1, cas.clone()), (2, cas)]);
}

#[test]
fn a_retry_of_an_applied_write_gets_its_first_answer() {
    let mut core = primary(2);
    let first = Ok(WriteResult::Incremented { new_value: 4 });
    let out = core.client_write(
        3,
        request(1),
        put("a"),
        AppliedLookup::Applied(first.clone()),
        &gate(0),
        5,
    );
    assert_eq!(answers(&out), vec![(3, first)]);
    assert!(logs(&out).is_empty());
    let out = core.client_write(4, request(0), put("a"), AppliedLookup::Stale, &gate(0), 5);
    assert_eq!(
        answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_OUTCOME_UNKNOWN
    );
    assert!(logs(&out).is_empty());
}

#[test]
fn a_new_primary_joins_retries_to_the_decrees_it_inherited() {
    let mut inherited = (*mutation(1, 1, 0)).clone();
    inherited.ops[0].request = request(5);
    let mut core = restored(2, 0, vec![Arc::new(inherited)]);
    let out = core.update_config(config(2, 2, &[1, 3]), Some(INCARNATION), 5).unwrap();
    assert_eq!(logs(&out), vec![1], "re-proposed under ballot 2");
    // Not serving until the inherited decree is committed and applied.
    let early = core.client_write(1, request(5), put("v1"), AppliedLookup::NotApplied, &gate(0), 5);
    assert_eq!(
        answers(&early)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
    let mut out = core.logged(&[(1, 2)], 0);
    for n in [1, 3] {
        out.extend(core.prepare_answered(node(n), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 })));
    }
    assert_eq!(applied_decrees(&out), vec![1]);
    // Committed, not applied yet: still not serving; then applied.
    assert!(!core.is_serving());
    let out = core.applied(1, vec![(1, vec![Ok(WriteResult::Done)])]);
    assert!(out.contains(&Effect::Serving { committed: 1 }));
}

#[test]
fn a_retry_reaching_a_new_primary_before_the_inherited_decree_applies_waits_for_it() {
    let mut inherited = (*mutation(1, 1, 0)).clone();
    inherited.ops[0].request = request(5);
    // Decree 2 was committed by the old primary; decree 1 carrying request 5 is being applied.
    let mut core = restored(2, 0, vec![Arc::new(inherited), mutation(2, 1, 0)]);
    core.update_config(config(2, 2, &[1, 3]), Some(INCARNATION), 5).unwrap();
    for d in 1..=2 {
        core.logged(&[(d, 2)], 0);
        for n in [1, 3] {
            core.prepare_answered(node(n), d, 2, Ok(PrepareAck { decree: d, ballot: 2 }));
        }
    }
    core.applied(
        2,
        vec![(1, vec![Ok(WriteResult::Done)]), (2, vec![Ok(WriteResult::Done)])],
    );
    assert!(core.is_serving());
    // The session table now says applied; the core never proposes it again.
    let out = core.client_write(
        9,
        request(5),
        put("v1"),
        AppliedLookup::Applied(Ok(WriteResult::Done)),
        &gate(0),
        5,
    );
    assert_eq!(answers(&out), vec![(9, Ok(WriteResult::Done))]);
}

#[test]
fn a_primary_that_steps_down_answers_outcome_unknown_never_not_applied() {
    for cause in ["lease", "close", "config"] {
        let mut core = primary(2);
        core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
        let out = match cause {
            "lease" => core.lease_expired(),
            "close" => core.close(),
            _ => core.update_config(config(3, 2, &[1, 3]), Some(INCARNATION), 5).unwrap(),
        };
        let answered = answers(&out);
        assert_eq!(answered.len(), 1, "{cause}");
        assert_eq!(
            answered[0].1.as_ref().unwrap_err().code,
            ErrorCode::ERR_OUTCOME_UNKNOWN,
            "{cause}"
        );
    }
}

#[test]
fn a_primary_that_stays_primary_at_a_new_ballot_keeps_its_writes() {
    let mut core = primary(2);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    // Node 3 failed to acknowledge and was removed: ballot 3, still primary.
    let out = core.update_config(config(3, 1, &[2]), Some(INCARNATION), 5).unwrap();
    assert!(answers(&out).is_empty());
    assert_eq!(logs(&out), vec![1], "re-proposed at ballot 3");
    let mut out = core.logged(&[(1, 3)], 0);
    out.extend(core.prepare_answered(node(2), 1, 3, Ok(PrepareAck { decree: 1, ballot: 3 })));
    out.extend(core.applied(1, vec![(1, vec![Ok(WriteResult::Done)])]));
    assert_eq!(answers(&out), vec![(1, Ok(WriteResult::Done))]);
}

// Issue fix 3: the lease is enforced by a timer.
#[test]
fn every_read_and_write_is_checked_against_the_lease_at_that_moment() {
    let mut core = primary(2);
    assert!(core.check_read(&gate(9_999)).is_ok());
    // A paused process that resumes after its lease ran out: refused before any timer fires.
    let late = gate(10_000);
    assert_eq!(core.check_read(&late).unwrap_err().code, ErrorCode::ERR_INVALID_STATE);
    let out = core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &late, 5);
    assert_eq!(
        answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
    assert!(logs(&out).is_empty());
    let no_lease = Gate {
        lease_until_ms: None,
        ..gate(0)
    };
    assert!(core.check_read(&no_lease).is_err());
}

#[test]
fn a_configuration_from_before_the_servers_current_lease_serves_nothing() {
    let mut core = primary(2);
    // The meta declared the server dead meanwhile; the new lease belongs to a new incarnation.
    let revived = Gate {
        incarnation: INCARNATION + 1,
        ..gate(0)
    };
    assert!(core.check_read(&revived).is_err());
    // The meta's view for the new incarnation (here: still primary) makes it serve again.
    core.update_config(config(2, 1, &[2, 3]), Some(INCARNATION + 1), 5)
        .unwrap();
    assert!(core.check_read(&revived).is_ok());
    // An answer to the replica's own request keeps the incarnation it had.
    core.meta_answered(MetaAnswer::Config(config(3, 1, &[2])), 5);
    assert_eq!(core.ballot(), 3);
    assert!(core.check_read(&revived).is_ok());
}

// Issue fix 4: a hole in the inherited prepare list stalls a new primary forever.
#[test]
fn a_new_primary_fills_the_holes_it_inherited_with_no_ops_and_serves() {
    // Prepares arrived out of order: 2 and 4 are here, 1 and 3 are not.
    let mut core = restored(2, 0, vec![mutation(2, 1, 0), mutation(4, 1, 0)]);
    let out = core.update_config(config(2, 2, &[1, 3]), Some(INCARNATION), 5).unwrap();
    assert_eq!(logs(&out), vec![1, 2, 3, 4]);
    let noops: Vec<Decree> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Log(m) if m.ops.is_empty() => Some(m.decree),
            _ => None,
        })
        .collect();
    assert_eq!(noops, vec![1, 3]);
    let mut out = Vec::new();
    for d in 1..=4 {
        out.extend(core.logged(&[(d, 2)], 0));
        for n in [1, 3] {
            out.extend(core.prepare_answered(node(n), d, 2, Ok(PrepareAck { decree: d, ballot: 2 })));
        }
    }
    assert_eq!(applied_decrees(&out), vec![1, 2, 3, 4]);
    let out = core.applied(4, vec![]);
    assert!(out.contains(&Effect::Serving { committed: 4 }));
    let out = core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    assert_eq!(logs(&out), vec![5]);
}

// Issue fix 5: a new primary serves reads before its reconciled commits are applied.
#[test]
fn a_new_primary_serves_reads_only_once_what_it_committed_is_applied() {
    let mut core = restored(2, 0, vec![mutation(1, 1, 0)]);
    core.update_config(config(2, 2, &[1, 3]), Some(INCARNATION), 5).unwrap();
    core.logged(&[(1, 2)], 0);
    for n in [1, 3] {
        core.prepare_answered(node(n), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    }
    assert_eq!(core.last_committed(), 1);
    assert_eq!(
        core.check_read(&gate(0)).unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
    core.applied(1, vec![]);
    assert!(core.check_read(&gate(0)).is_ok());
}

#[test]
fn a_secondary_commits_up_to_the_primarys_point_once_logged() {
    let mut secondary = fresh(2);
    secondary
        .update_config(config(2, 1, &[2, 3]), Some(INCARNATION), 5)
        .unwrap();
    let out = secondary.prepare(1, node(1), mutation(1, 2, 0));
    assert!(prepare_answers(&out).is_empty(), "acknowledged once logged");
    let out = secondary.logged(&[(1, 2)], 0);
    assert_eq!(
        prepare_answers(&out),
        vec![(1, Ok(PrepareAck { decree: 1, ballot: 2 }))]
    );
    let out = secondary.prepare(2, node(1), mutation(2, 2, 1));
    assert_eq!(applied_decrees(&out), vec![1]);
    let out = secondary.group_checked(node(1), 2, 2).unwrap();
    assert!(applied_decrees(&out).is_empty(), "2 is not logged yet");
    let out = secondary.logged(&[(2, 2)], 0);
    assert_eq!(applied_decrees(&out), vec![2]);
}

#[test]
fn a_failed_prepare_asks_the_meta_to_remove_the_secondary_and_resends_later() {
    let mut core = primary(2);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let out = core.prepare_answered(node(3), 1, 2, Err(PrepareFailure::Other("timeout".into())));
    assert!(
        out.contains(&Effect::AskMeta(aerie_proto::meta::PartitionChange::RemoveSecondary(
            node(3)
        )))
    );
    assert!(out.contains(&Effect::ResendLater(node(3))));
    let again = core.prepare_answered(node(3), 1, 2, Err(PrepareFailure::Other("timeout".into())));
    assert!(again.is_empty(), "one request and one resend round at a time");
    assert_eq!(prepares(&core.resend_due(node(3))), vec![(node(3), 1)]);
    let out = core.prepare_answered(node(2), 1, 2, Err(PrepareFailure::NewerBallot("ballot 3".into())));
    assert!(out.is_empty(), "a configuration request is already under way");
}

#[test]
fn a_joining_learner_receives_what_is_uncommitted_and_holds_commits_back() {
    let mut core = primary(2);
    let (added, effects) = core.add_learner(node(4), 2);
    added.unwrap();
    assert_eq!(effects, vec![Effect::StartLearner(node(4))]);
    let (stale, effects) = fresh(1).add_learner(node(4), 5);
    assert_eq!(stale.unwrap_err().code, ErrorCode::ERR_INVALID_VERSION);
    assert_eq!(
        effects,
        vec![Effect::RefreshConfig],
        "a replica behind the meta catches up"
    );
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let (committed, out) = core.learner_joined(node(4));
    assert_eq!(committed, 0);
    assert_eq!(prepares(&out), vec![(node(4), 1)]);
    core.logged(&[(1, 2)], 0);
    for n in [2, 3] {
        core.prepare_answered(node(n), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    }
    assert_eq!(core.last_committed(), 0, "the learner has not acknowledged");
    let out = core.prepare_answered(node(4), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    assert_eq!(applied_decrees(&out), vec![1]);
    let out = core.learner_completed(node(4)).unwrap();
    assert_eq!(
        out,
        vec![Effect::AskMeta(aerie_proto::meta::PartitionChange::UpgradeLearner(
            node(4)
        ))]
    );
}

#[test]
fn a_learner_upgraded_by_a_newer_prepare_becomes_a_secondary() {
    let mut learner = fresh(4);
    learner.begin_learning(node(1), 2).unwrap();
    learner.learning_reset(0);
    learner.learning_joined(0);
    let out = learner.prepare(1, node(1), mutation(1, 3, 0));
    assert_eq!(learner.role(), ReplicaStatus::Secondary);
    assert!(out.contains(&Effect::RoleChanged {
        from: ReplicaStatus::Learner,
        to: ReplicaStatus::Secondary
    }));
}

// Found by the simulator (seed 146): a learner dropped after its upgrade was asked for became a
// secondary missing committed decrees.
#[test]
fn a_learner_whose_upgrade_was_asked_for_is_never_dropped_before_the_answer_is_known() {
    let mut core = primary(2);
    let (added, _) = core.add_learner(node(4), 2);
    added.unwrap();
    core.learner_joined(node(4));
    let out = core.learner_completed(node(4)).unwrap();
    assert_eq!(
        out,
        vec![Effect::AskMeta(aerie_proto::meta::PartitionChange::UpgradeLearner(
            node(4)
        ))]
    );
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    core.logged(&[(1, 2)], 0);
    for n in [2, 3] {
        core.prepare_answered(node(n), 1, 2, Ok(PrepareAck { decree: 1, ballot: 2 }));
    }
    // The prepare to the learner fails: it is kept (the meta may have made it a secondary).
    let out = core.prepare_answered(node(4), 1, 2, Err(PrepareFailure::Other("timeout".into())));
    assert_eq!(out, vec![Effect::ResendLater(node(4))]);
    assert_eq!(core.last_committed(), 0, "decree 1 waits for the learner");
    // No answer from the meta: ask again.
    let out = core.meta_answered(MetaAnswer::Unknown, 5);
    assert_eq!(
        out,
        vec![Effect::AskMeta(aerie_proto::meta::PartitionChange::UpgradeLearner(
            node(4)
        ))]
    );
    // The upgrade was made: the learner is a secondary, reconciled like the others.
    let out = core.meta_answered(MetaAnswer::Config(config(3, 1, &[2, 3, 4])), 5);
    assert!(prepares(&out).contains(&(node(4), 1)));
    assert_eq!(core.secondaries(), vec![node(2), node(3), node(4)]);
}

#[test]
fn a_refused_upgrade_lets_a_failing_learner_go() {
    let mut core = primary(2);
    core.add_learner(node(4), 2).0.unwrap();
    core.learner_joined(node(4));
    core.learner_completed(node(4)).unwrap();
    core.meta_answered(MetaAnswer::Refused, 5);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let out = core.prepare_answered(node(4), 1, 2, Err(PrepareFailure::Other("timeout".into())));
    assert!(out
        .iter()
        .any(|e| matches!(e, Effect::LearnerDropped { learner, .. } if *learner == node(4))));
}

// Found by the simulator (seed 334 of 600): a primary declared dead while it led came back in a new
// incarnation; no configuration named it any more, so nothing told it to step down, and it refused
// to learn when the cure added it back: the partition stayed one secondary short for good.
#[test]
fn a_deposed_primary_learns_when_the_primary_of_a_newer_ballot_adds_it() {
    let mut core = primary(3);
    core.client_write(1, request(1), put("a"), AppliedLookup::NotApplied, &gate(0), 5);
    let out = core.begin_learning(node(2), 5).expect("a newer ballot deposes it");
    assert_eq!(core.role(), ReplicaStatus::Learner);
    assert_eq!(core.ballot(), 5);
    assert_eq!(
        answers(&out)[0].1.as_ref().unwrap_err().code,
        ErrorCode::ERR_OUTCOME_UNKNOWN,
        "the write it had proposed may still commit"
    );
    // A primary asked to learn at its own ballot (or an older one) is not deposed: it refuses.
    let mut core = primary(3);
    assert_eq!(
        core.begin_learning(node(2), 3).unwrap_err().code,
        ErrorCode::ERR_INVALID_STATE
    );
    assert_eq!(core.role(), ReplicaStatus::Primary);
}
