//! Fuzzing the frame decoder: random bytes, and valid frames with bits flipped, bytes cut or
//! inserted and length fields rewritten, fed to `read_frame` and to the typed decoders of every
//! request a server accepts. Nothing may panic, and no single allocation may exceed what the
//! frame limit allows, whatever a length field claims.
//!
//! Runs for `AERIE_FUZZ_SECONDS` (default 3) with seed `AERIE_FUZZ_SEED` (default: the clock,
//! printed); run it for an hour by hand: `AERIE_FUZZ_SECONDS=3600 cargo test -p aerie-rpc --test
//! fuzz_frames --release`.

use aerie_common::fuzzing::{self, LargestAllocation};
use aerie_common::{Gpid, NodeAddr};
use aerie_proto::data::{WriteOp, WriteResult};
use aerie_proto::replica::{ClientRequest, ClientWrite, Mutation, MutationOp, Prepare};
use aerie_rpc::frame::{self, ByteBuf, Frame};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

const MAX_FRAME: usize = 1 << 20;

fn sample_frames() -> Vec<Vec<u8>> {
    let mutation = Mutation {
        gpid: Gpid::new(3, 7),
        ballot: 9,
        decree: 1234,
        last_committed: 1200,
        timestamp_secs: 1_700_000_000,
        ops: vec![MutationOp {
            request: Some(ClientRequest {
                client: 77,
                seq: 5,
                acked_below: 4,
            }),
            op: WriteOp::Put {
                hash_key: b"user".to_vec(),
                sort_key: b"name".to_vec(),
                value: vec![0xab; 300],
                ttl_secs: 60,
            },
        }],
    };
    let primary: NodeAddr = "127.0.0.1:34801".parse().unwrap();
    let bodies = [
        frame::encode(&Prepare {
            mutation: std::sync::Arc::new(mutation.clone()),
            primary,
        })
        .unwrap(),
        frame::encode(&ClientWrite {
            gpid: Gpid::new(3, 7),
            partition_count: 8,
            op: mutation.ops[0].op.clone(),
            request: mutation.ops[0].request,
        })
        .unwrap(),
    ];
    let mut frames: Vec<Vec<u8>> = bodies
        .iter()
        .map(|body| {
            frame::encode_frame(&Frame::Request {
                id: 42,
                method: "replica.Prepare".into(),
                timeout_ms: 1000,
                body: body.clone(),
            })
            .unwrap()
        })
        .collect();
    let answer: aerie_common::WireResult<WriteResult> = Ok(WriteResult::Done);
    frames.push(
        frame::encode_frame(&Frame::Response {
            id: 42,
            outcome: Ok(ByteBuf(frame::encode(&answer).unwrap())),
        })
        .unwrap(),
    );
    frames
}

/// A damaged copy of `valid`, or random bytes.
fn mutate(rng: &mut SmallRng, valid: &[Vec<u8>]) -> Vec<u8> {
    if rng.random_range(0..5) == 0 {
        let len = rng.random_range(0..2048);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut bytes = valid[rng.random_range(0..valid.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..5) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, rng.random()),
            3 => {
                // A length or count field somewhere claims a huge size: beyond every limit, or
                // just under the 64 MiB decode limit (a bincode varint: 0xfc, then a u32).
                let claimed: u32 = if rng.random_bool(0.5) {
                    u32::MAX
                } else {
                    rng.random_range(1 << 10..64 << 20)
                };
                let mut field = vec![0xfc];
                field.extend_from_slice(&claimed.to_le_bytes());
                let end = (at + field.len()).min(bytes.len());
                bytes.splice(at..end, field);
            }
            _ => {
                let end = (at + rng.random_range(1..16)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

fn feed(bytes: &[u8]) {
    // As a server reads it off a socket: the length prefix, then the body.
    let mut reader = bytes;
    let read = futures::executor::block_on(frame::read_frame(&mut reader, MAX_FRAME));
    if let Ok(Frame::Request { body, .. }) = &read {
        let _ = frame::decode::<Prepare>(body);
        let _ = frame::decode::<ClientWrite>(body);
    }
    // And every decoder straight on the bytes.
    let body = bytes.get(4..).unwrap_or_default();
    let _ = frame::decode::<Frame>(body);
    let _ = frame::decode::<Prepare>(body);
    let _ = frame::decode::<ClientWrite>(body);
    let _ = frame::decode::<aerie_common::WireResult<WriteResult>>(body);
}

#[test]
fn damaged_frames_never_panic_or_allocate_beyond_the_limits() {
    let (duration, seed) = fuzzing::run_settings("frames");
    let mut rng = SmallRng::seed_from_u64(seed);
    let valid = sample_frames();
    for frame in &valid {
        feed(frame);
    }
    let deadline = Instant::now() + duration;
    let mut inputs = 0u64;
    while Instant::now() < deadline {
        let bytes = mutate(&mut rng, &valid);
        fuzzing::reset_largest();
        feed(&bytes);
        let largest = fuzzing::largest();
        // What an input may make a reader allocate: about what decoding a valid message of its
        // size can need (aerie_common::codec), never what a length field claims.
        // Plus serde's cautious preallocation of a sequence: at most 1 MiB, whatever is claimed.
        let bound = (1 << 20) + 64 * 1024 + 64 * bytes.len();
        assert!(
            largest <= bound,
            "an input of {} bytes made one allocation of {largest} bytes (seed {seed}, input {:02x?})",
            bytes.len(),
            &bytes[..bytes.len().min(64)]
        );
        inputs += 1;
    }
    eprintln!("{inputs} inputs");
    assert!(inputs > 0);
}
