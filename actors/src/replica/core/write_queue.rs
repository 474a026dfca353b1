//! The primary's queue of client writes waiting for a proposal slot (see `CoreOptions`), in arrival
//! order, with an index by client request so that a retry finds its queued write without a scan.

use super::WaiterId;
use aerie_proto::replica::MutationOp;
use std::collections::{HashMap, VecDeque};

/// A client write waiting for a proposal slot.
pub(super) struct QueuedWrite {
    pub op: MutationOp,
    /// Its first attempt and every retry that arrived while it waited.
    pub waiters: Vec<WaiterId>,
    pub wall_secs: u64,
}

#[derive(Default)]
pub(super) struct WriteQueue {
    writes: VecDeque<QueuedWrite>,
    /// The arrival number of the write at the front.
    front: u64,
    /// Client request (session, seq) ─► arrival number of the write carrying it.
    by_request: HashMap<(u64, u64), u64>,
    /// Key and value bytes of the queued writes.
    payload_bytes: usize,
}

impl WriteQueue {
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Key and value bytes of the queued writes.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    pub fn push(&mut self, write: QueuedWrite) {
        self.payload_bytes += write.op.op.payload_bytes();
        if let Some(request) = write.op.request {
            self.by_request
                .insert(request.key(), self.front + self.writes.len() as u64);
        }
        self.writes.push_back(write);
    }

    /// Adds `waiter` to the queued write carrying request `key`; false when none does.
    pub fn join(&mut self, key: (u64, u64), waiter: WaiterId) -> bool {
        let Some(number) = self.by_request.get(&key) else {
            return false;
        };
        let write = &mut self.writes[(number - self.front) as usize];
        write.waiters.push(waiter);
        true
    }

    /// Takes writes from the front while their key and value bytes stay within `max_bytes` (at
    /// least one).
    pub fn take_batch(&mut self, max_bytes: usize) -> Vec<QueuedWrite> {
        let mut bytes = 0;
        let mut batch = Vec::new();
        while let Some(next) = self.writes.front() {
            let size = next.op.op.payload_bytes();
            if !batch.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            batch.extend(self.pop_front());
        }
        batch
    }

    /// Takes every write.
    pub fn take_all(&mut self) -> Vec<QueuedWrite> {
        self.front += self.writes.len() as u64;
        self.by_request.clear();
        self.payload_bytes = 0;
        self.writes.drain(..).collect()
    }

    fn pop_front(&mut self) -> Option<QueuedWrite> {
        let write = self.writes.pop_front()?;
        self.front += 1;
        self.payload_bytes -= write.op.op.payload_bytes();
        if let Some(request) = write.op.request {
            self.by_request.remove(&request.key());
        }
        Some(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_proto::data::WriteOp;
    use aerie_proto::replica::ClientRequest;

    fn write(seq: u64, value: &str) -> QueuedWrite {
        QueuedWrite {
            op: MutationOp {
                request: Some(ClientRequest {
                    client: 7,
                    seq,
                    acked_below: 0,
                }),
                op: WriteOp::Put {
                    hash_key: b"h".to_vec(),
                    sort_key: b"s".to_vec(),
                    value: value.as_bytes().to_vec(),
                    ttl_secs: 0,
                },
            },
            waiters: vec![seq],
            wall_secs: 0,
        }
    }

    #[test]
    fn a_retry_finds_its_write_after_earlier_ones_left_the_queue() {
        let mut queue = WriteQueue::default();
        for seq in 1..=3 {
            queue.push(write(seq, "v"));
        }
        assert_eq!(queue.take_batch(3).len(), 1, "3 bytes each: one fits");
        assert!(!queue.join((7, 1), 10), "proposed already: not in the queue");
        assert!(queue.join((7, 3), 30));
        let rest = queue.take_all();
        assert_eq!(
            rest.iter().map(|w| w.waiters.clone()).collect::<Vec<_>>(),
            vec![vec![2], vec![3, 30]]
        );
        queue.push(write(4, "v"));
        assert!(queue.join((7, 4), 40), "numbering goes on after take_all");
        assert!(!queue.join((7, 3), 31));
    }
}
