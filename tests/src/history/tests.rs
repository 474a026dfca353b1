//! The checker against hand-made histories, good and bad.

use super::*;

fn v(text: &str) -> Value {
    Some(text.as_bytes().to_vec())
}

fn op(client: u64, invoke: u64, complete: Option<u64>, kind: OpKind) -> Op {
    Op {
        client,
        invoke,
        complete,
        kind,
    }
}

fn write(client: u64, invoke: u64, complete: u64, value: &str) -> Op {
    op(
        client,
        invoke,
        Some(complete),
        OpKind::Write {
            value: value.as_bytes().to_vec(),
        },
    )
}

fn write_unknown(client: u64, invoke: u64, value: &str) -> Op {
    op(
        client,
        invoke,
        None,
        OpKind::Write {
            value: value.as_bytes().to_vec(),
        },
    )
}

fn read(client: u64, invoke: u64, complete: u64, value: Value) -> Op {
    op(client, invoke, Some(complete), OpKind::Read { value })
}

fn cas(client: u64, invoke: u64, complete: Option<u64>, expect: Value, new: &str, succeeded: Option<bool>) -> Op {
    op(
        client,
        invoke,
        complete,
        OpKind::Cas {
            expect,
            new: new.as_bytes().to_vec(),
            succeeded,
        },
    )
}

fn incr(client: u64, invoke: u64, complete: Option<u64>, result: Option<i64>) -> Op {
    op(client, invoke, complete, OpKind::Incr { delta: 1, result })
}

const LIMIT: usize = 100_000;

fn ok(ops: &[Op]) {
    if let Err(e) = check_key(ops, LIMIT) {
        panic!("expected linearizable, got {e}");
    }
}

fn bad(ops: &[Op]) -> String {
    match check_key(ops, LIMIT) {
        Ok(()) => panic!("expected a violation in {ops:#?}"),
        Err(e @ CheckError::NotLinearizable { .. }) => e.to_string(),
        Err(e) => panic!("expected a violation, got {e}"),
    }
}

#[test]
fn sequential_writes_and_reads_are_linearizable() {
    ok(&[
        read(1, 1, 2, None),
        write(1, 3, 4, "a"),
        read(2, 5, 6, v("a")),
        write(2, 7, 8, "b"),
        read(1, 9, 10, v("b")),
    ]);
}

#[test]
fn an_empty_history_is_linearizable() {
    ok(&[]);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let before = [write(1, 1, 2, "a"), write(2, 3, 8, "b"), read(3, 4, 5, v("a"))];
    ok(&before);
    let after = [write(1, 1, 2, "a"), write(2, 3, 8, "b"), read(3, 4, 5, v("b"))];
    ok(&after);
}

#[test]
fn a_stale_read_is_caught() {
    let message = bad(&[write(1, 1, 2, "a"), write(2, 3, 4, "b"), read(3, 5, 6, v("a"))]);
    assert!(message.contains("read -> \"a\""), "{message}");
}

#[test]
fn a_value_nobody_wrote_is_caught() {
    bad(&[write(1, 1, 2, "a"), read(2, 3, 4, v("z"))]);
}

#[test]
fn a_lost_acknowledged_write_is_caught() {
    bad(&[write(1, 1, 2, "a"), read(2, 5, 6, None)]);
}

#[test]
fn a_write_applied_twice_shows_as_a_b_a() {
    // "a" is written once: seen, overwritten by "b" (acknowledged), then seen again.
    bad(&[
        write(1, 1, 20, "a"),
        read(3, 2, 3, v("a")),
        write(2, 4, 5, "b"),
        read(3, 6, 7, v("b")),
        read(3, 8, 9, v("a")),
    ]);
}

#[test]
fn an_unknown_write_may_take_effect_late_or_never() {
    let late = [write_unknown(1, 1, "a"), write(2, 2, 3, "b"), read(3, 10, 11, v("a"))];
    ok(&late);
    let never = [write_unknown(1, 1, "a"), write(2, 2, 3, "b"), read(3, 10, 11, v("b"))];
    ok(&never);
    // But not before it was invoked.
    bad(&[read(3, 1, 2, v("a")), write_unknown(1, 5, "a")]);
}

#[test]
fn only_one_of_two_racing_creates_can_succeed() {
    ok(&[
        cas(1, 1, Some(4), None, "x", Some(true)),
        cas(2, 2, Some(5), None, "y", Some(false)),
        read(3, 6, 7, v("x")),
    ]);
    bad(&[
        cas(1, 1, Some(4), None, "x", Some(true)),
        cas(2, 2, Some(5), None, "y", Some(true)),
    ]);
}

#[test]
fn a_failed_cas_must_have_seen_another_value() {
    // Nothing but the cas itself ever touched the key: it cannot have failed.
    bad(&[cas(1, 1, Some(2), None, "x", Some(false))]);
    ok(&[
        write(2, 1, 2, "w"),
        cas(1, 3, Some(4), None, "x", Some(false)),
        read(3, 5, 6, v("w")),
    ]);
}

#[test]
fn a_cas_that_reported_failure_but_took_effect_is_caught() {
    // The second attempt of a retried cas answered "not set" while its first attempt had set it.
    bad(&[
        write(1, 1, 2, "a"),
        cas(2, 3, Some(6), v("a"), "b", Some(false)),
        read(3, 7, 8, v("b")),
    ]);
}

#[test]
fn an_unknown_cas_may_or_may_not_have_happened() {
    ok(&[
        write(1, 1, 2, "a"),
        cas(2, 3, None, v("a"), "b", None),
        read(3, 9, 10, v("b")),
    ]);
    ok(&[
        write(1, 1, 2, "a"),
        cas(2, 3, None, v("a"), "b", None),
        read(3, 9, 10, v("a")),
    ]);
}

#[test]
fn increments_return_distinct_values() {
    ok(&[
        incr(1, 1, Some(3), Some(1)),
        incr(2, 2, Some(4), Some(2)),
        read(3, 5, 6, v("2")),
    ]);
    // An increment applied twice: the final count exceeds what was done.
    bad(&[
        incr(1, 1, Some(3), Some(1)),
        incr(2, 4, Some(6), Some(2)),
        read(3, 7, 8, v("3")),
    ]);
    bad(&[incr(1, 1, Some(3), Some(1)), incr(2, 2, Some(4), Some(1))]);
}

#[test]
fn an_unknown_increment_counts_at_most_once() {
    ok(&[
        incr(1, 1, None, None),
        incr(2, 2, Some(4), Some(2)),
        read(3, 5, 6, v("2")),
    ]);
    ok(&[
        incr(1, 1, None, None),
        incr(2, 2, Some(4), Some(1)),
        read(3, 5, 6, v("1")),
    ]);
    bad(&[
        incr(1, 1, None, None),
        incr(2, 2, Some(4), Some(1)),
        read(3, 5, 6, v("3")),
    ]);
}

#[test]
fn deletes_make_the_key_absent() {
    ok(&[
        write(1, 1, 2, "a"),
        op(1, 3, Some(4), OpKind::Delete),
        read(2, 5, 6, None),
    ]);
    bad(&[
        write(1, 1, 2, "a"),
        op(1, 3, Some(4), OpKind::Delete),
        read(2, 5, 6, v("a")),
    ]);
}

#[test]
fn many_concurrent_writers_check_quickly() {
    // Eight clients, each writing its own values, reads in between: a history that really ran.
    let mut ops = Vec::new();
    let mut t = 0;
    let mut last = None;
    for round in 0..40 {
        let start = t;
        for client in 0..8u64 {
            let value = format!("{client}-{round}");
            ops.push(write(client, start + client, start + 20 + client, &value));
        }
        // The writes of a round overlap; the last one to complete is readable after the round.
        let winner = format!("{}-{round}", 7);
        last = Some(winner.clone());
        t = start + 100;
        ops.push(read(9, t, t + 1, v(&winner)));
        t += 10;
    }
    assert!(last.is_some());
    ok(&ops);
}

#[test]
fn the_search_gives_up_on_histories_too_concurrent_to_check() {
    // Many unknown writes and reads of values none of them wrote: no order fits, and proving that
    // means trying every subset of the unknown writes.
    let mut ops: Vec<Op> = (0..20).map(|i| write_unknown(i, i + 1, &format!("u{i}"))).collect();
    ops.push(read(99, 100, 101, v("never")));
    match check_key(&ops, 1_000) {
        Err(CheckError::TooComplex { states }) => assert!(states > 1_000),
        other => panic!("expected TooComplex, got {other:?}"),
    }
}

#[test]
fn the_recorder_keeps_unknown_writes_and_drops_failed_ops_and_unknown_reads() {
    let history = History::new();
    let w = history.invoke(1, b"k", OpKind::Write { value: b"a".to_vec() });
    history.complete(w, Outcome::Ok(OpKind::Write { value: b"a".to_vec() }));
    let failed = history.invoke(2, b"k", OpKind::Write { value: b"b".to_vec() });
    history.complete(failed, Outcome::Failed("refused".into()));
    let unknown = history.invoke(3, b"k", OpKind::Write { value: b"c".to_vec() });
    history.complete(unknown, Outcome::Unknown);
    let lost_read = history.invoke(4, b"k", OpKind::Read { value: None });
    history.complete(lost_read, Outcome::Unknown);
    let r = history.invoke(4, b"k", OpKind::Read { value: None });
    history.complete(r, Outcome::Ok(OpKind::Read { value: v("a") }));
    let per_key = history.per_key();
    let ops = &per_key[&b"k".to_vec()];
    assert_eq!(ops.len(), 3, "{ops:#?}");
    assert_eq!(history.counts(), (2, 1));
    assert!(ops[0].complete.unwrap() < ops[2].invoke, "real-time order kept");
    let report = check_all(&per_key, LIMIT);
    assert!(report.is_linearizable(), "{}", report.describe());
}
