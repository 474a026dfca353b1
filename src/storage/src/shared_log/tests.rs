use super::*;
use crate::log::tests::mutation;
use crate::log::LogItem;
use aerie_proto::replica::Mutation;

const OPTIONS: LogOptions = LogOptions {
    segment_bytes: 1 << 20,
    sync: true,
};

const A: Gpid = Gpid { app_id: 1, pidx: 0 };
const B: Gpid = Gpid { app_id: 1, pidx: 1 };
const C: Gpid = Gpid { app_id: 2, pidx: 0 };

fn mutation_of(gpid: Gpid, decree: Decree) -> Mutation {
    Mutation {
        gpid,
        ..mutation(decree)
    }
}

fn encoded(gpid: Gpid, decree: Decree) -> EncodedRecord {
    EncodedRecord::new(LogItem::Mutation(&mutation_of(gpid, decree))).unwrap()
}

/// Appends one group commit of `(partition, decree)` mutations.
fn append(log: &mut SharedLog, mutations: &[(Gpid, Decree)]) {
    let records: Vec<(Gpid, EncodedRecord)> = mutations.iter().map(|(g, d)| (*g, encoded(*g, *d))).collect();
    let items: Vec<(Gpid, SharedItem)> = records.iter().map(|(g, r)| (*g, SharedItem::Record(r))).collect();
    log.append(&items).unwrap();
}

fn decrees(replayed: &ReplayedSharedLog, gpid: Gpid) -> Vec<Decree> {
    replayed.partitions.get(&gpid).map_or_else(Vec::new, |records| {
        records
            .iter()
            .filter_map(|r| match r {
                LogRecord::Mutation(m) => {
                    assert_eq!(m.gpid, gpid, "a record replayed for the wrong partition");
                    Some(m.decree)
                }
                LogRecord::Committed(_) => None,
            })
            .collect()
    })
}

fn only_segment(dir: &Path) -> PathBuf {
    let segments = list_segments(dir, PREFIX).unwrap();
    assert_eq!(segments.len(), 1);
    segments[0].1.clone()
}

#[test]
fn one_fsync_carries_the_mutations_of_several_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SharedLog::open(dir.path(), OPTIONS).unwrap().log;
    append(&mut log, &[(A, 1), (B, 1), (C, 1), (A, 2)]);
    assert_eq!(log.syncs(), 1, "one group commit, one fdatasync");
    append(&mut log, &[(B, 2), (C, 2)]);
    assert_eq!(log.syncs(), 2);
    drop(log);
    let replayed = SharedLog::open(dir.path(), OPTIONS).unwrap();
    assert_eq!(decrees(&replayed, A), vec![1, 2]);
    assert_eq!(decrees(&replayed, B), vec![1, 2]);
    assert_eq!(decrees(&replayed, C), vec![1, 2]);
}

#[test]
fn replay_restores_each_partitions_records_in_decree_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SharedLog::open(dir.path(), OPTIONS).unwrap().log;
    for decree in 1..=50 {
        // Partitions interleave in every group commit, each in its own decree order.
        append(
            &mut log,
            &[(C, decree), (A, decree), (B, 2 * decree - 1), (B, 2 * decree)],
        );
    }
    let marker = EncodedRecord::new(LogItem::Committed(50)).unwrap();
    log.append(&[(A, SharedItem::Record(&marker))]).unwrap();
    drop(log);
    let replayed = SharedLog::open(dir.path(), OPTIONS).unwrap();
    assert_eq!(decrees(&replayed, A), (1..=50).collect::<Vec<_>>());
    assert_eq!(decrees(&replayed, B), (1..=100).collect::<Vec<_>>());
    assert_eq!(decrees(&replayed, C), (1..=50).collect::<Vec<_>>());
    assert_eq!(replayed.partitions[&A].last(), Some(&LogRecord::Committed(50)));
    assert_eq!(replayed.truncated_bytes, 0);
}

#[test]
fn a_reset_forgets_what_the_partition_wrote_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SharedLog::open(dir.path(), OPTIONS).unwrap().log;
    append(&mut log, &[(A, 1), (B, 1), (A, 2)]);
    log.append(&[(A, SharedItem::Reset)]).unwrap();
    append(&mut log, &[(A, 7), (B, 2)]);
    drop(log);
    let replayed = SharedLog::open(dir.path(), OPTIONS).unwrap();
    assert_eq!(decrees(&replayed, A), vec![7]);
    assert_eq!(decrees(&replayed, B), vec![1, 2], "other partitions keep theirs");
}

#[test]
fn a_torn_tail_cuts_only_the_incomplete_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SharedLog::open(dir.path(), OPTIONS).unwrap().log;
    append(&mut log, &[(A, 1), (B, 1)]);
    append(&mut log, &[(A, 2), (B, 2)]);
    drop(log);
    let path = only_segment(dir.path());
    let full = fs::metadata(&path).unwrap().len();
    // Every cut inside the last record keeps everything before it.
    for cut in [1, 5, 9, 40] {
        let copy = tempfile::tempdir().unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(copy.path().join("shared.00000001"), &bytes[..(full - cut) as usize]).unwrap();
        let replayed = SharedLog::open(copy.path(), OPTIONS).unwrap();
        assert_eq!(decrees(&replayed, A), vec![1, 2], "cut {cut}");
        assert_eq!(decrees(&replayed, B), vec![1], "cut {cut}: B's last record was torn");
        assert!(replayed.truncated_bytes > 0);
        let kept = fs::metadata(copy.path().join("shared.00000001")).unwrap().len();
        assert_eq!(
            kept,
            full - cut - replayed.truncated_bytes,
            "the file is cut at the torn record"
        );
        // The cut log takes appends and reads them back.
        let mut log = replayed.log;
        append(&mut log, &[(B, 2)]);
        drop(log);
        assert_eq!(decrees(&SharedLog::open(copy.path(), OPTIONS).unwrap(), B), vec![1, 2]);
    }
}

#[test]
fn a_bad_record_with_valid_ones_after_it_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SharedLog::open(dir.path(), OPTIONS).unwrap().log;
    append(&mut log, &[(A, 1)]);
    append(&mut log, &[(A, 2), (B, 1)]);
    drop(log);
    let path = only_segment(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xff; // inside the first record's payload
    fs::write(&path, &bytes).unwrap();
    match SharedLog::open(dir.path(), OPTIONS) {
        Err(StorageError::CorruptLog { offset: 0, reason, .. }) => {
            assert!(reason.contains("not a torn tail"), "{reason}")
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a corrupt shared log opened"),
    }
}

#[test]
fn gc_waits_for_every_partition_a_segment_holds() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogOptions {
        segment_bytes: 1024,
        sync: true,
    };
    let mut log = SharedLog::open(dir.path(), small).unwrap().log;
    for decree in 1..=40 {
        append(&mut log, &[(A, decree), (B, decree)]);
    }
    let segments = log.segment_count();
    assert!(segments > 3, "{segments} segments");
    let held = log.partitions_in_closed_segments();
    assert_eq!(held.keys().copied().collect::<Vec<_>>(), vec![A, B]);
    // A is durable everywhere, B nowhere yet: nothing goes.
    assert_eq!(log.gc(|g| Some(if g == A { 40 } else { 0 })).unwrap(), 0);
    // B durable up to 10: only segments whose records of both are at or below that.
    let removed = log.gc(|g| Some(if g == A { 40 } else { 10 })).unwrap();
    assert!(removed > 0 && removed < segments - 1, "removed {removed} of {segments}");
    drop(log);
    let replayed = SharedLog::open(dir.path(), small).unwrap();
    let b = decrees(&replayed, B);
    assert!(b[0] <= 11, "B's records after 10 are all kept: {b:?}");
    assert_eq!(*b.last().unwrap(), 40);
    // A partition that is gone holds nothing back; the open segment always stays.
    let mut log = replayed.log;
    log.gc(|g| if g == B { None } else { Some(40) }).unwrap();
    assert_eq!(log.segment_count(), 1);
}
