//! The client's session: a random id and a sequence number per write, so that a retried write
//! takes effect at most once (see the storage crate's `session` module for the replica's side).
//!
//! `acked_below` tells replicas which answers the client no longer needs: every write numbered
//! below it has been answered or given up. It is the smallest sequence number still in flight.

use aerie_proto::replica::ClientRequest;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug)]
pub struct ClientSession {
    id: u64,
    next_seq: AtomicU64,
    in_flight: Mutex<BTreeSet<u64>>,
}

/// A write under way; ends (leaves the in-flight set) when dropped.
pub struct WriteTicket<'a> {
    session: &'a ClientSession,
    pub seq: u64,
}

impl ClientSession {
    /// A session with a random id.
    pub fn new() -> Self {
        Self::with_id(rand::random::<u64>().max(1))
    }

    /// A session with a chosen id (the simulator's clients, which must be deterministic).
    pub fn with_id(id: u64) -> Self {
        ClientSession {
            id,
            next_seq: AtomicU64::new(1),
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Starts a write: its sequence number is in flight until the ticket is dropped.
    pub fn begin(&self) -> WriteTicket<'_> {
        WriteTicket {
            session: self,
            seq: self.start(),
        }
    }

    /// Starts a write and returns its sequence number, in flight until [`ClientSession::finish`].
    pub fn start(&self) -> u64 {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        in_flight.insert(seq);
        seq
    }

    /// The write numbered `seq` got its answer (or was given up).
    pub fn finish(&self, seq: u64) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&seq);
    }

    /// The request identity of an attempt of `seq`, with the session's acknowledged point now.
    pub fn request(&self, seq: u64) -> ClientRequest {
        let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let acked_below = in_flight
            .first()
            .copied()
            .unwrap_or_else(|| self.next_seq.load(Ordering::SeqCst));
        ClientRequest {
            client: self.id,
            seq,
            acked_below: acked_below.min(seq),
        }
    }
}

impl Default for ClientSession {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        self.session.finish(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acknowledged_point_is_the_oldest_write_in_flight() {
        let session = ClientSession::new();
        let first = session.begin();
        let second = session.begin();
        assert_eq!(session.request(second.seq).acked_below, first.seq);
        let second_seq = second.seq;
        drop(first);
        assert_eq!(session.request(second_seq).acked_below, second_seq);
        let third = session.begin();
        assert_eq!(
            session.request(third.seq).acked_below,
            second_seq,
            "second is still in flight"
        );
        drop(second);
        assert_eq!(session.request(third.seq).acked_below, third.seq);
        assert_ne!(ClientSession::new().id(), session.id(), "sessions are distinct");
    }
}
