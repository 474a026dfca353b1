//! The primary's write batching: client writes that arrive while `max_proposals_in_flight`
//! mutations are uncommitted wait, and go out together in the next mutation.

use super::tests::{answers, config, gate, logs, node, options, prepares, primary_with, put, request, INCARNATION};
use super::*;
use aerie_proto::data::WriteResult;
use aerie_proto::replica::PrepareAck;

/// A serving primary (node 1) of {1; 2, 3} at ballot 2 with one proposal in flight at a time.
fn batching_primary(max_batch_bytes: usize, max_uncommitted: usize) -> ReplicaCore {
    let options = CoreOptions {
        max_proposals_in_flight: 1,
        pipeline_min_writes: 1,
        max_batch_bytes,
        max_uncommitted,
        ..options()
    };
    primary_with(options, 2)
}

fn write(core: &mut ReplicaCore, waiter: WaiterId, seq: u64, value: &str) -> Vec<Effect> {
    core.client_write(waiter, request(seq), put(value), AppliedLookup::NotApplied, &gate(0), 5)
}

/// Decree `d` is logged here and acknowledged by both secondaries.
fn commit(core: &mut ReplicaCore, d: Decree) -> Vec<Effect> {
    let mut out = core.logged(&[(d, 2)], 0);
    for n in [2, 3] {
        out.extend(core.prepare_answered(node(n), d, 2, Ok(PrepareAck { decree: d, ballot: 2 })));
    }
    out
}

fn logged_mutations(effects: &[Effect]) -> Vec<Arc<Mutation>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn writes_arriving_while_a_proposal_is_in_flight_go_out_together_when_it_commits() {
    let mut core = batching_primary(1 << 20, 100);
    assert_eq!(
        logs(&write(&mut core, 1, 1, "a")),
        vec![1],
        "an idle primary proposes at once"
    );
    for (waiter, value) in [(2, "b"), (3, "c")] {
        let out = write(&mut core, waiter, waiter, value);
        assert!(out.is_empty(), "queued while decree 1 is uncommitted: {out:?}");
    }
    let out = commit(&mut core, 1);
    let proposed = logged_mutations(&out);
    assert_eq!(proposed.len(), 1);
    assert_eq!(proposed[0].decree, 2);
    assert_eq!(proposed[0].ops.len(), 2, "both queued writes in one mutation");
    assert_eq!(proposed[0].ops[0].op, put("b"));
    assert_eq!(proposed[0].ops[1].op, put("c"));
    assert_eq!(
        proposed[0].last_committed, 1,
        "the commit point rides on the next prepare"
    );
    assert_eq!(prepares(&out), vec![(node(2), 2), (node(3), 2)]);
    commit(&mut core, 2);
    core.applied(1, vec![(1, vec![Ok(WriteResult::Done)])]);
    let out = core.applied(
        2,
        vec![(2, vec![Ok(WriteResult::Done), Ok(WriteResult::Removed { count: 1 })])],
    );
    assert_eq!(
        answers(&out),
        vec![(2, Ok(WriteResult::Done)), (3, Ok(WriteResult::Removed { count: 1 }))],
        "each write gets its own operation's answer"
    );
}

#[test]
fn a_retry_of_a_queued_write_goes_out_once_and_every_attempt_gets_its_answer() {
    let mut core = batching_primary(1 << 20, 100);
    write(&mut core, 1, 1, "a");
    write(&mut core, 2, 2, "b");
    assert!(
        write(&mut core, 3, 2, "b").is_empty(),
        "the retry joins the queued write"
    );
    let proposed = logged_mutations(&commit(&mut core, 1));
    assert_eq!(proposed[0].ops.len(), 1, "proposed once");
    // A retry after it was proposed joins its decree.
    assert!(write(&mut core, 4, 2, "b").is_empty());
    commit(&mut core, 2);
    core.applied(1, vec![(1, vec![Ok(WriteResult::Done)])]);
    let out = core.applied(2, vec![(2, vec![Ok(WriteResult::Done)])]);
    let mut answered: Vec<WaiterId> = answers(&out).into_iter().map(|(w, _)| w).collect();
    answered.sort();
    assert_eq!(answered, vec![2, 3, 4]);
}

#[test]
fn queued_writes_were_never_proposed_and_fail_definitely_when_the_primary_steps_down() {
    let mut core = batching_primary(1 << 20, 100);
    write(&mut core, 1, 1, "a");
    write(&mut core, 2, 2, "b");
    let out = core.update_config(config(3, 2, &[1, 3]), Some(INCARNATION), 5).unwrap();
    let mut answered = answers(&out);
    answered.sort_by_key(|(w, _)| *w);
    let codes: Vec<(WaiterId, ErrorCode)> = answered
        .iter()
        .map(|(w, a)| (*w, a.as_ref().unwrap_err().code))
        .collect();
    assert_eq!(
        codes,
        vec![(1, ErrorCode::ERR_OUTCOME_UNKNOWN), (2, ErrorCode::ERR_NOT_PRIMARY)],
        "the proposed write may still commit; the queued one never will"
    );
    assert!(logs(&out).is_empty(), "nothing queued is proposed by a secondary");
}

#[test]
fn a_batch_carries_at_most_max_batch_bytes_unless_one_write_alone_is_larger() {
    // Each write carries 3 bytes ("h", "s", one-byte value): two fit in 6.
    let mut core = batching_primary(6, 100);
    write(&mut core, 1, 1, "a");
    for waiter in 2..=4 {
        write(&mut core, waiter, waiter, "x");
    }
    let first = logged_mutations(&commit(&mut core, 1));
    assert_eq!(first[0].ops.len(), 2);
    let second = logged_mutations(&commit(&mut core, 2));
    assert_eq!(second[0].ops.len(), 1);
    let big = "a value larger than the batch bound";
    write(&mut core, 5, 5, big);
    let third = logged_mutations(&commit(&mut core, 3));
    assert_eq!(third[0].ops.len(), 1, "a large write goes alone");
    assert_eq!(third[0].ops[0].op, put(big));
}

#[test]
fn queued_writes_count_toward_the_limit_of_uncommitted_writes() {
    let mut core = batching_primary(1 << 20, 3);
    write(&mut core, 1, 1, "a");
    write(&mut core, 2, 2, "b");
    write(&mut core, 3, 3, "c");
    let out = write(&mut core, 4, 4, "d");
    assert_eq!(answers(&out)[0].1.as_ref().unwrap_err().code, ErrorCode::ERR_BUSY);
}

#[test]
fn a_second_mutation_goes_in_flight_only_once_enough_writes_wait_for_it() {
    let options = CoreOptions {
        max_proposals_in_flight: 2,
        pipeline_min_writes: 3,
        max_batch_bytes: 1 << 20,
        max_uncommitted: 100,
        ..options()
    };
    let mut core = primary_with(options, 2);
    assert_eq!(
        logs(&write(&mut core, 1, 1, "a")),
        vec![1],
        "an idle primary proposes at once"
    );
    assert!(
        write(&mut core, 2, 2, "b").is_empty(),
        "one waiting write does not justify a second"
    );
    assert!(write(&mut core, 3, 3, "c").is_empty());
    let out = write(&mut core, 4, 4, "d");
    let second = logged_mutations(&out);
    assert_eq!(
        second.len(),
        1,
        "three waiting: a second mutation goes out beside the first"
    );
    assert_eq!((second[0].decree, second[0].ops.len()), (2, 3));
    assert!(
        write(&mut core, 5, 5, "e").is_empty(),
        "two in flight: the most allowed"
    );
    assert!(
        logged_mutations(&commit(&mut core, 1)).is_empty(),
        "one in flight again: a single waiting write still does not justify a second"
    );
    let third = logged_mutations(&commit(&mut core, 2));
    assert_eq!(
        (third[0].decree, third[0].ops.len()),
        (3, 1),
        "none in flight: whatever waits goes out"
    );
}
