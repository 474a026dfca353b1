use super::*;
use aerie_common::{ErrorCode, Gpid};
use aerie_proto::data::{CheckAndSet, CheckType, TtlUpdate, WriteOp};
use aerie_proto::replica::MutationOp;

const NOW: u64 = 1_700_000_000;

fn options() -> EngineOptions {
    EngineOptions::new(8 << 20, 64 << 20, 4 << 20)
}

fn open(dir: &Path) -> Engine {
    Engine::open(dir, &options()).unwrap()
}

fn mutation(decree: Decree, ops: Vec<WriteOp>) -> Mutation {
    Mutation {
        gpid: Gpid::new(1, 0),
        ballot: 1,
        decree,
        last_committed: decree - 1,
        timestamp_secs: NOW,
        ops: ops.into_iter().map(MutationOp::plain).collect(),
    }
}

fn put(hk: &str, sk: &str, v: &str, ttl: u32) -> WriteOp {
    WriteOp::Put {
        hash_key: hk.into(),
        sort_key: sk.into(),
        value: v.into(),
        ttl_secs: ttl,
    }
}

fn get(engine: &Engine, hk: &str, sk: &str, now: u64) -> Option<Vec<u8>> {
    match engine
        .read(
            &ReadOp::Get {
                hash_key: hk.into(),
                sort_key: sk.into(),
            },
            now,
        )
        .unwrap()
    {
        ReadResult::Value(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

fn apply_one(engine: &Engine, decree: Decree, op: WriteOp) -> WireResult<WriteResult> {
    engine.apply(&[mutation(decree, vec![op])]).unwrap().remove(0).remove(0)
}

#[test]
fn writes_are_readable_and_survive_reopen_with_their_decree() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    assert_eq!(engine.last_applied_decree().unwrap(), 0);
    engine
        .apply(&[
            mutation(1, vec![put("h", "a", "1", 0)]),
            mutation(2, vec![put("h", "b", "2", 0)]),
        ])
        .unwrap();
    apply_one(
        &engine,
        3,
        WriteOp::Remove {
            hash_key: "h".into(),
            sort_key: "a".into(),
        },
    )
    .unwrap();
    assert_eq!(get(&engine, "h", "a", NOW), None);
    assert_eq!(get(&engine, "h", "b", NOW), Some(b"2".to_vec()));
    engine.flush().unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(engine.last_applied_decree().unwrap(), 3);
    assert_eq!(get(&engine, "h", "b", NOW), Some(b"2".to_vec()));
}

#[test]
fn ttl_is_measured_from_the_mutation_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    apply_one(&engine, 1, put("h", "s", "v", 10)).unwrap();
    assert_eq!(get(&engine, "h", "s", NOW + 9), Some(b"v".to_vec()));
    assert_eq!(get(&engine, "h", "s", NOW + 10), None);
    let ttl = engine
        .read(
            &ReadOp::Ttl {
                hash_key: "h".into(),
                sort_key: "s".into(),
            },
            NOW + 4,
        )
        .unwrap();
    assert_eq!(ttl, ReadResult::Ttl(Some(Some(6))));
    apply_one(&engine, 2, put("h", "forever", "v", 0)).unwrap();
    let ttl = engine
        .read(
            &ReadOp::Ttl {
                hash_key: "h".into(),
                sort_key: "forever".into(),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(ttl, ReadResult::Ttl(Some(None)));
    let ttl = engine
        .read(
            &ReadOp::Ttl {
                hash_key: "h".into(),
                sort_key: "nope".into(),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(ttl, ReadResult::Ttl(None));
}

fn records(result: ReadResult) -> (Vec<String>, bool) {
    match result {
        ReadResult::Records { records, complete } => (
            records
                .iter()
                .map(|r| String::from_utf8(r.sort_key.clone()).unwrap())
                .collect(),
            complete,
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn multi_get_by_keys_by_range_and_with_limits() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let kvs = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|k| (k.as_bytes().to_vec(), b"v".to_vec()))
        .collect();
    apply_one(
        &engine,
        1,
        WriteOp::MultiPut {
            hash_key: "h".into(),
            kvs,
            ttl_secs: 0,
        },
    )
    .unwrap();
    apply_one(&engine, 2, put("other", "a", "x", 0)).unwrap();

    let by_keys = ReadOp::MultiGet {
        hash_key: "h".into(),
        sort_keys: vec!["b".into(), "zz".into(), "d".into()],
        range: SortKeyRange::default(),
        max_count: 0,
        max_bytes: 0,
        no_value: false,
    };
    assert_eq!(
        records(engine.read(&by_keys, NOW).unwrap()),
        (vec!["b".into(), "d".into()], true)
    );

    let range = |start: &str, start_inclusive, stop: &str, stop_inclusive, max_count| ReadOp::MultiGet {
        hash_key: "h".into(),
        sort_keys: vec![],
        range: SortKeyRange {
            start: Some(start.into()),
            start_inclusive,
            stop: Some(stop.into()),
            stop_inclusive,
        },
        max_count,
        max_bytes: 0,
        no_value: true,
    };
    let (keys, complete) = records(engine.read(&range("b", true, "d", true, 0), NOW).unwrap());
    assert_eq!((keys, complete), (vec!["b".into(), "c".into(), "d".into()], true));
    let (keys, _) = records(engine.read(&range("b", false, "d", false, 0), NOW).unwrap());
    assert_eq!(keys, vec!["c".to_string()]);
    let (keys, complete) = records(engine.read(&range("a", true, "e", true, 2), NOW).unwrap());
    assert_eq!((keys, complete), (vec!["a".into(), "b".into()], false));

    let count = engine
        .read(&ReadOp::SortKeyCount { hash_key: "h".into() }, NOW)
        .unwrap();
    assert_eq!(count, ReadResult::Count(5));
}

#[test]
fn incr_counts_checks_type_and_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let incr = |n| WriteOp::Incr {
        hash_key: "h".into(),
        sort_key: "n".into(),
        increment: n,
        ttl: TtlUpdate::Keep,
    };
    assert_eq!(
        apply_one(&engine, 1, incr(5)),
        Ok(WriteResult::Incremented { new_value: 5 })
    );
    assert_eq!(
        apply_one(&engine, 2, incr(-7)),
        Ok(WriteResult::Incremented { new_value: -2 })
    );
    // Two increments in one batch see each other.
    let results = engine.apply(&[mutation(3, vec![incr(1), incr(1)])]).unwrap();
    assert_eq!(results[0][1], Ok(WriteResult::Incremented { new_value: 0 }));
    apply_one(&engine, 4, put("h", "n", "9223372036854775807", 0)).unwrap();
    assert_eq!(
        apply_one(&engine, 5, incr(1)).unwrap_err().code,
        ErrorCode::ERR_INVALID_PARAMETERS
    );
    apply_one(&engine, 6, put("h", "n", "text", 0)).unwrap();
    let err = apply_one(&engine, 7, incr(1)).unwrap_err();
    assert!(err.detail.contains("not an integer"), "{err}");
}

#[test]
fn check_and_set_sets_only_when_the_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let cas = |check, value: &str| {
        WriteOp::CheckAndSet(CheckAndSet {
            hash_key: "h".into(),
            check_sort_key: "c".into(),
            check,
            set_sort_key: "s".into(),
            set_value: value.into(),
            set_ttl_secs: 0,
            return_check_value: true,
        })
    };
    let first = apply_one(&engine, 1, cas(CheckType::ValueNotExist, "one")).unwrap();
    assert_eq!(
        first,
        WriteResult::CheckAndSet {
            set_succeeded: true,
            check_value: None
        }
    );
    apply_one(&engine, 2, put("h", "c", "42", 0)).unwrap();
    let second = apply_one(&engine, 3, cas(CheckType::ValueNotExist, "two")).unwrap();
    assert_eq!(
        second,
        WriteResult::CheckAndSet {
            set_succeeded: false,
            check_value: Some(b"42".to_vec())
        }
    );
    assert_eq!(get(&engine, "h", "s", NOW), Some(b"one".to_vec()));
    let third = apply_one(&engine, 4, cas(CheckType::ValueIntGreater(41), "three")).unwrap();
    assert!(matches!(
        third,
        WriteResult::CheckAndSet {
            set_succeeded: true,
            ..
        }
    ));
    assert_eq!(get(&engine, "h", "s", NOW), Some(b"three".to_vec()));
}

#[test]
fn scans_page_through_one_hash_key_and_the_whole_partition() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut decree = 0;
    for hk in ["a", "b", "c"] {
        for sk in 0..5 {
            decree += 1;
            apply_one(&engine, decree, put(hk, &sk.to_string(), "v", 0)).unwrap();
        }
    }
    apply_one(&engine, decree + 1, put("b", "expired", "v", 1)).unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = engine
            .read(
                &ReadOp::Scan {
                    hash_key: None,
                    after: after.clone(),
                    batch_size: 4,
                    no_value: false,
                },
                NOW + 5,
            )
            .unwrap();
        let ReadResult::ScanPage { records, next } = page else {
            panic!()
        };
        seen.extend(records.into_iter().map(|r| (r.hash_key, r.sort_key)));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 15, "expired records are skipped, everything else seen once");
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 15);

    let page = engine
        .read(
            &ReadOp::Scan {
                hash_key: Some("b".into()),
                after: None,
                batch_size: 100,
                no_value: true,
            },
            NOW + 5,
        )
        .unwrap();
    let ReadResult::ScanPage { records, next } = page else {
        panic!()
    };
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.hash_key == b"b" && r.value.is_empty()));
    assert!(next.is_none());
}

#[test]
fn checksums_agree_exactly_when_data_agrees() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let engines: Vec<Engine> = dirs.iter().map(|d| open(d.path())).collect();
    for engine in &engines {
        for decree in 1..=20 {
            apply_one(engine, decree, put(&format!("h{decree}"), "s", "v", 0)).unwrap();
        }
    }
    let a = engines[0].checksum(NOW).unwrap();
    assert_eq!(a, engines[1].checksum(NOW).unwrap());
    assert_eq!((a.last_applied, a.record_count), (20, 20));
    apply_one(&engines[1], 21, put("h1", "s", "different", 0)).unwrap();
    assert_ne!(a.checksum, engines[1].checksum(NOW).unwrap().checksum);
}

#[test]
fn a_checkpoint_opens_as_a_copy_at_its_decree() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("db"));
    for decree in 1..=5 {
        apply_one(&engine, decree, put("h", &decree.to_string(), "v", 0)).unwrap();
    }
    engine.checkpoint(&dir.path().join("copy")).unwrap();
    apply_one(&engine, 6, put("h", "6", "v", 0)).unwrap();
    let copy = open(&dir.path().join("copy"));
    assert_eq!(copy.last_applied_decree().unwrap(), 5);
    assert_eq!(get(&copy, "h", "5", NOW), Some(b"v".to_vec()));
    assert_eq!(
        get(&copy, "h", "6", NOW),
        None,
        "later writes are not in the checkpoint"
    );
}

fn incr_by(client: u64, seq: u64) -> MutationOp {
    MutationOp {
        request: Some(ClientRequest {
            client,
            seq,
            acked_below: 0,
        }),
        op: WriteOp::Incr {
            hash_key: b"h".to_vec(),
            sort_key: b"n".to_vec(),
            increment: 1,
            ttl: TtlUpdate::Keep,
        },
    }
}

fn with_ops(decree: Decree, ops: Vec<MutationOp>) -> Mutation {
    Mutation {
        ops,
        ..mutation(decree, vec![])
    }
}

#[test]
fn a_retried_request_is_applied_once_even_after_reopening_and_in_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir.path().join("db"));
    let first = engine.apply(&[with_ops(1, vec![incr_by(7, 1)])]).unwrap();
    assert_eq!(first[0][0], Ok(WriteResult::Incremented { new_value: 1 }));
    // The same request again, in a later mutation (a retry committed by a new primary).
    let again = engine
        .apply(&[with_ops(2, vec![incr_by(7, 1)]), with_ops(3, vec![incr_by(7, 2)])])
        .unwrap();
    assert_eq!(
        again[0][0],
        Ok(WriteResult::Incremented { new_value: 1 }),
        "the first answer"
    );
    assert_eq!(again[1][0], Ok(WriteResult::Incremented { new_value: 2 }));
    assert_eq!(get(&engine, "h", "n", NOW), Some(b"2".to_vec()));
    let request = ClientRequest {
        client: 7,
        seq: 2,
        acked_below: 0,
    };
    assert_eq!(
        engine.session_lookup(&request),
        Admission::Done(Ok(WriteResult::Incremented { new_value: 2 }))
    );
    engine.flush().unwrap();
    engine.checkpoint(&dir.path().join("copy")).unwrap();
    let sum = engine.checksum(NOW).unwrap();
    drop(engine);

    for path in ["db", "copy"] {
        let reopened = open(&dir.path().join(path));
        assert_eq!(reopened.session_count(), 1, "{path}");
        let replay = reopened
            .apply(&[with_ops(4, vec![incr_by(7, 1), incr_by(7, 3)])])
            .unwrap();
        assert_eq!(replay[0][0], Ok(WriteResult::Incremented { new_value: 1 }), "{path}");
        assert_eq!(replay[0][1], Ok(WriteResult::Incremented { new_value: 3 }), "{path}");
        drop(reopened);
    }
    let copy = open(&dir.path().join("copy"));
    let db = open(&dir.path().join("db"));
    assert_eq!(copy.checksum(NOW).unwrap(), db.checksum(NOW).unwrap());
    assert_ne!(copy.checksum(NOW).unwrap(), sum, "sessions and data moved on");
}

#[test]
fn a_request_below_the_acknowledged_point_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut later = incr_by(7, 5);
    later.request.as_mut().unwrap().acked_below = 5;
    engine.apply(&[with_ops(1, vec![later])]).unwrap();
    let stale = engine.apply(&[with_ops(2, vec![incr_by(7, 3)])]).unwrap();
    assert_eq!(stale[0][0].as_ref().unwrap_err().code, ErrorCode::ERR_OUTCOME_UNKNOWN);
    assert_eq!(get(&engine, "h", "n", NOW), Some(b"1".to_vec()));
}

#[test]
fn sessions_take_part_in_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir.path().join("a")), open(&dir.path().join("b")));
    let op = |request| MutationOp {
        request,
        op: put("h", "s", "v", 0),
    };
    a.apply(&[with_ops(1, vec![op(None)])]).unwrap();
    b.apply(&[with_ops(
        1,
        vec![op(Some(ClientRequest {
            client: 1,
            seq: 1,
            acked_below: 0,
        }))],
    )])
    .unwrap();
    let (sa, sb) = (a.checksum(NOW).unwrap(), b.checksum(NOW).unwrap());
    assert_eq!(sa.record_count, sb.record_count);
    assert_ne!(sa.checksum, sb.checksum);
}

/// After `replica.kill_partition` the stub reopened a replica while its previous engine was still
/// closing, RocksDB refused ("lock hold by current process"), and the partition stayed broken.
#[test]
fn reopening_a_path_waits_for_its_previous_engine_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let (started, is_started) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    let reopen = std::thread::spawn(move || {
        started.send(()).unwrap();
        Engine::open(&path, &options())
    });
    is_started.recv().unwrap();
    // The first engine is still busy while the second open begins.
    for decree in 1..=200 {
        apply_one(&first, decree, put("h", &decree.to_string(), "v", 0)).unwrap();
    }
    first.flush().unwrap();
    drop(first);
    let second = reopen.join().unwrap().expect("the reopen waits, then opens");
    assert_eq!(
        second.last_applied_decree().unwrap(),
        200,
        "it opened after the first closed"
    );
}
