//! Fuzzing the mutation-log reader: segment files of random bytes, and valid segments with bits
//! flipped, bytes cut or inserted and length fields rewritten, opened as a replica's log. Opening
//! may refuse (corruption) or cut a torn tail, but it never panics, never returns a mutation that
//! was not written, and no length field makes it allocate more than the file's own size allows.
//!
//! Runs for `AERIE_FUZZ_SECONDS` (default 3) with seed `AERIE_FUZZ_SEED` (default: the clock,
//! printed); for an hour by hand: `AERIE_FUZZ_SECONDS=3600 cargo test -p aerie-storage --test
//! fuzz_log --release`.

use aerie_common::fuzzing::{self, LargestAllocation};
use aerie_common::Gpid;
use aerie_proto::data::WriteOp;
use aerie_proto::replica::{ClientRequest, Mutation, MutationOp};
use aerie_storage::{LogItem, LogOptions, MutationLog};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

const OPTIONS: LogOptions = LogOptions {
    segment_bytes: 1 << 20,
    sync: false,
};

fn mutation(decree: i64) -> Mutation {
    Mutation {
        gpid: Gpid::new(1, 0),
        ballot: 2,
        decree,
        last_committed: decree - 1,
        timestamp_secs: 1_700_000_000,
        ops: vec![MutationOp {
            request: Some(ClientRequest {
                client: 9,
                seq: decree as u64,
                acked_below: 0,
            }),
            op: WriteOp::Put {
                hash_key: format!("h{decree}").into_bytes(),
                sort_key: b"s".to_vec(),
                value: vec![decree as u8; 40],
                ttl_secs: 0,
            },
        }],
    }
}

/// The bytes of a valid segment of `count` mutations and a commit marker.
fn valid_segment(count: i64) -> (Vec<u8>, Vec<Mutation>) {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<Mutation> = (1..=count).map(mutation).collect();
    let mut log = MutationLog::open(dir.path(), OPTIONS, 0).unwrap().log;
    log.append(&written).unwrap();
    log.append_items([LogItem::Committed(count - 1)]).unwrap();
    drop(log);
    (std::fs::read(dir.path().join("log.00000001")).unwrap(), written)
}

fn mutate(rng: &mut SmallRng, valid: &[u8]) -> Vec<u8> {
    if rng.random_range(0..5) == 0 {
        let len = rng.random_range(0..4096);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut bytes = valid.to_vec();
    for _ in 0..rng.random_range(1..5) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..5) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, rng.random()),
            3 => {
                // A record length (u32 LE) or a bincode field claiming a huge size.
                let claimed: u32 = rng.random_range(1 << 10..u32::MAX);
                let field: Vec<u8> = if rng.random_bool(0.5) {
                    claimed.to_le_bytes().to_vec()
                } else {
                    std::iter::once(0xfc).chain(claimed.to_le_bytes()).collect()
                };
                let end = (at + field.len()).min(bytes.len());
                bytes.splice(at..end, field);
            }
            _ => {
                let end = (at + rng.random_range(1..32)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

#[test]
fn damaged_logs_never_panic_invent_mutations_or_allocate_from_length_fields() {
    let (duration, seed) = fuzzing::run_settings("the log reader");
    let mut rng = SmallRng::seed_from_u64(seed);
    let (valid, written) = valid_segment(20);
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("log.00000001");
    let deadline = Instant::now() + duration;
    let (mut inputs, mut refused, mut cut) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let bytes = mutate(&mut rng, &valid);
        std::fs::write(&segment, &bytes).unwrap();
        fuzzing::reset_largest();
        match MutationLog::open(dir.path(), OPTIONS, 0) {
            Ok(replayed) => {
                for m in &replayed.mutations {
                    assert!(
                        written.contains(m),
                        "a mutation that was never written came back (seed {seed}): {m:?}"
                    );
                }
                if replayed.truncated_bytes > 0 {
                    cut += 1;
                }
            }
            Err(_) => refused += 1,
        }
        let largest = fuzzing::largest();
        // Plus serde's cautious preallocation of a sequence: at most 1 MiB, whatever is claimed.
        let bound = (1 << 20) + 64 * 1024 + 64 * bytes.len();
        assert!(
            largest <= bound,
            "a segment of {} bytes made one allocation of {largest} bytes (seed {seed})",
            bytes.len()
        );
        inputs += 1;
    }
    eprintln!("{inputs} damaged segments: {refused} refused as corrupt, {cut} cut as torn");
    assert!(
        inputs > 0 && refused > 0 && cut > 0,
        "the damage never reached both outcomes"
    );
}
