//! Every data operation through the client against real processes, including concurrent
//! read-modify-writes, and afterwards every replica holds exactly the same data: `incr` and
//! `check_and_set` apply deterministically everywhere.

use aerie_common::ErrorCode;
use aerie_proto::data::{CheckAndSet, CheckType, SortKeyRange, TtlUpdate};
use aerie_tests::{assert_replicas_identical, wait_until, ProcessCluster, ProcessClusterOptions};
use futures::future::join_all;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_end_to_end() {
    let cluster = ProcessCluster::start(ProcessClusterOptions::default());
    let client = cluster.client(Duration::from_secs(20));
    cluster.wait_all_alive(&client, Duration::from_secs(30)).await;
    client.create_table("ops", 8, 3).await.unwrap();
    let table = client.table("ops").await.unwrap();

    // set / get / del, with and without TTL.
    table.set(b"h", b"a", b"1", 0).await.unwrap();
    assert_eq!(table.get(b"h", b"a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(table.ttl(b"h", b"a").await.unwrap(), Some(None));
    table.set(b"h", b"short", b"x", 1).await.unwrap();
    let ttl = table.ttl(b"h", b"short").await.unwrap();
    assert!(matches!(ttl, Some(Some(0..=1))), "{ttl:?}");
    table.del(b"h", b"a").await.unwrap();
    assert_eq!(table.get(b"h", b"a").await.unwrap(), None);
    assert_eq!(table.ttl(b"h", b"a").await.unwrap(), None);

    // multi_set / multi_get by keys, by range, with limits / multi_del / sortkey_count.
    let kvs: Vec<_> = (0..50)
        .map(|i| (format!("s{i:02}").into_bytes(), format!("v{i}").into_bytes()))
        .collect();
    table.multi_set(b"many", kvs, 0).await.unwrap();
    let got = table
        .multi_get(b"many", vec![b"s03".to_vec(), b"nope".to_vec(), b"s10".to_vec()])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        vec![b"v3".to_vec(), b"v10".to_vec()]
    );
    let range = SortKeyRange {
        start: Some(b"s10".to_vec()),
        start_inclusive: false,
        stop: Some(b"s20".to_vec()),
        stop_inclusive: true,
    };
    let (records, complete) = table.multi_get_range(b"many", range.clone(), 0, false).await.unwrap();
    assert_eq!((records.len(), complete), (10, true));
    assert_eq!(records.first().unwrap().sort_key, b"s11");
    let (records, complete) = table.multi_get_range(b"many", range, 4, true).await.unwrap();
    assert_eq!((records.len(), complete), (4, false));
    assert!(records.iter().all(|r| r.value.is_empty()));
    assert_eq!(
        table
            .multi_del(b"many", vec![b"s00".to_vec(), b"s01".to_vec()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(table.sortkey_count(b"many").await.unwrap(), 48);

    // A scan of one hash key pages through every record in order.
    let all = table.scan_hash_key(b"many", 7).await.unwrap();
    assert_eq!(all.len(), 48);
    assert!(all.windows(2).all(|w| w[0].sort_key < w[1].sort_key));

    // Concurrent incr: every increment counts exactly once.
    let incrs = (0..100).map(|_| table.incr(b"counter", b"n", 1, TtlUpdate::Keep));
    let results: Vec<i64> = join_all(incrs).await.into_iter().map(Result::unwrap).collect();
    let mut sorted = results.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=100).collect::<Vec<_>>(), "each incr saw a distinct value");
    assert_eq!(table.get(b"counter", b"n").await.unwrap(), Some(b"100".to_vec()));
    table.set(b"counter", b"text", b"abc", 0).await.unwrap();
    let err = table.incr(b"counter", b"text", 1, TtlUpdate::Keep).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_INVALID_PARAMETERS, "{err}");

    // Concurrent check_and_set: exactly one caller takes the lock.
    let attempts = (0..20).map(|i| {
        table.check_and_set(CheckAndSet {
            hash_key: b"lock".to_vec(),
            check_sort_key: b"owner".to_vec(),
            check: CheckType::ValueNotExist,
            set_sort_key: b"owner".to_vec(),
            set_value: format!("worker{i}").into_bytes(),
            set_ttl_secs: 0,
            return_check_value: true,
        })
    });
    let outcomes: Vec<_> = join_all(attempts).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes.iter().filter(|(set, _)| *set).count(), 1, "{outcomes:?}");
    let owner = table.get(b"lock", b"owner").await.unwrap().unwrap();
    assert!(outcomes
        .iter()
        .filter(|(set, _)| !*set)
        .all(|(_, seen)| seen.as_ref() == Some(&owner)));

    // A full scan, partition by partition, sees every live record once.
    let mut total = 0;
    for pidx in 0..table.partition_count() {
        let mut after = None;
        loop {
            let (records, next) = table.scan_page(pidx, None, after, 10, true).await.unwrap();
            total += records.len();
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
    }
    wait_until("the short TTL to expire", Duration::from_secs(10), || async {
        match table.get(b"h", b"short").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // many: 48, counter: 2, lock: 1, and h/short if it was still alive during the scan.
    assert!(total == 51 || total == 52, "full scan saw {total} records");

    // Errors name the problem.
    let err = client.table("missing").await.err().unwrap();
    assert_eq!(err.code, ErrorCode::ERR_APP_NOT_EXIST);
    assert!(err.detail.contains("'missing'"), "{err}");
    let err = table.set(b"h", &vec![b'k'; 40_000], b"v", 0).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_KEY_TOO_LARGE, "{err}");
    let err = table
        .multi_set(b"", vec![(b"a".to_vec(), b"b".to_vec())], 0)
        .await
        .unwrap_err();
    assert!(err.detail.contains("non-empty hash key"), "{err}");

    // Every replica applied exactly the same data.
    let app = client.query_config("ops").await.unwrap();
    let records = assert_replicas_identical(&client, &app).await;
    assert_eq!(records, 51, "many: 48, counter: 2, lock: 1 (h/short expired)");

    // Another operator drops the table and creates a new one under the same name: the old handle
    // says so, and opening the table again reaches the new one.
    let other = cluster.client(Duration::from_secs(20));
    other.drop_table("ops").await.unwrap();
    other.create_table("ops", 4, 3).await.unwrap();
    let err = table.get(b"h", b"x").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_APP_NOT_EXIST, "{err}");
    assert!(err.detail.contains("created again"), "{err}");
    let reopened = client.table("ops").await.unwrap();
    assert_eq!(reopened.partition_count(), 4);
    assert_eq!(
        reopened.get(b"counter", b"n").await.unwrap(),
        None,
        "the new table starts empty"
    );
    reopened.set(b"fresh", b"s", b"v", 0).await.unwrap();
}
