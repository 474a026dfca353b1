//! Failure detection arithmetic, pure: the replica server's lease and the meta's grace period.
//!
//! ```text
//!  replica:  beacon sent at s ──────────────► meta: received at r ≥ s
//!            ack ◄─────────────────────────────
//!            lease valid until  s + lease          node alive until  r + grace
//! ```
//!
//! The lease runs from when the acknowledged beacon was *sent*, the grace from when it was
//! *received*. Since `r ≥ s` and `grace > lease`, a replica server always stops serving before the
//! meta declares it dead and hands its partitions to others, so two primaries never serve one
//! partition. Each side reads only its own monotonic clock; no two clocks are ever compared.

/// The lease as every replica of a server reads it on each request: when it runs out, and the
/// meta's incarnation of the server it was granted to (see [`SharedLease`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseSnapshot {
    pub until_ms: Option<u64>,
    pub incarnation: u64,
}

/// Written by the replica server's beacon loop, read by its replicas before serving anything.
#[derive(Debug, Clone, Default)]
pub struct SharedLease(std::sync::Arc<std::sync::Mutex<LeaseSnapshot>>);

impl SharedLease {
    pub fn get(&self) -> LeaseSnapshot {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, snapshot: LeaseSnapshot) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

/// The replica server's right to serve, renewed by every acknowledged beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    lease_ms: u64,
    /// Send time of the newest acknowledged beacon.
    acked_sent_ms: Option<u64>,
}

impl Lease {
    pub fn new(lease_ms: u64) -> Self {
        Lease {
            lease_ms,
            acked_sent_ms: None,
        }
    }

    /// The meta acknowledged the beacon sent at `sent_ms`. Late acks of older beacons change nothing.
    pub fn on_ack(&mut self, sent_ms: u64) {
        self.acked_sent_ms = Some(self.acked_sent_ms.map_or(sent_ms, |t| t.max(sent_ms)));
    }

    pub fn expires_at(&self) -> Option<u64> {
        self.acked_sent_ms.map(|t| t + self.lease_ms)
    }

    /// Whether the server may serve at `now_ms`.
    pub fn is_valid(&self, now_ms: u64) -> bool {
        self.expires_at().is_some_and(|end| now_ms < end)
    }
}

/// What the replica server must do after an acknowledgement or a check of its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseChange {
    /// The lease ran out (possibly unnoticed until now): every replica steps down.
    pub lost: bool,
    /// The lease is granted again, or for a new incarnation: sync with the meta, for this one.
    pub granted: Option<u64>,
}

/// The replica server's side of failure detection, pure: acknowledgements and checks in, what to
/// do out. A lease that lapsed is noticed at the next acknowledgement even if no check ran in
/// between (a stopped process); a new incarnation (the meta declared the server dead, or a new
/// meta leads) makes the configurations of the old one worthless, so the server syncs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTracker {
    lease: Lease,
    incarnation: u64,
    held: bool,
}

impl LeaseTracker {
    pub fn new(lease_ms: u64) -> Self {
        LeaseTracker {
            lease: Lease::new(lease_ms),
            incarnation: 0,
            held: false,
        }
    }

    /// The leader acknowledged, for `incarnation`, the beacon sent at `sent_ms`.
    pub fn on_ack(&mut self, now_ms: u64, sent_ms: u64, incarnation: u64) -> LeaseChange {
        let lapsed = !self.lease.is_valid(now_ms);
        self.lease.on_ack(sent_ms);
        let mut change = LeaseChange::default();
        if !self.lease.is_valid(now_ms) {
            // An answer so late that the lease it grants is already over.
            return change;
        }
        if lapsed && self.held {
            self.held = false;
            change.lost = true;
        }
        let new_incarnation = incarnation != self.incarnation;
        self.incarnation = incarnation;
        if !self.held || new_incarnation {
            self.held = true;
            change.granted = Some(incarnation);
        }
        change
    }

    /// Whether the lease just ran out (`true` once per lapse).
    pub fn check(&mut self, now_ms: u64) -> bool {
        if self.held && !self.lease.is_valid(now_ms) {
            self.held = false;
            return true;
        }
        false
    }

    pub fn snapshot(&self) -> LeaseSnapshot {
        LeaseSnapshot {
            until_ms: self.lease.expires_at(),
            incarnation: self.incarnation,
        }
    }
}

/// The meta's view of one node: alive while beacons arrive within the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    grace_ms: u64,
    last_beacon_ms: u64,
}

impl Liveness {
    /// A node first seen (or, after a meta restart, first remembered) at `now_ms` gets one grace period.
    pub fn new(grace_ms: u64, now_ms: u64) -> Self {
        Liveness {
            grace_ms,
            last_beacon_ms: now_ms,
        }
    }

    pub fn on_beacon(&mut self, received_ms: u64) {
        self.last_beacon_ms = self.last_beacon_ms.max(received_ms);
    }

    pub fn is_alive(&self, now_ms: u64) -> bool {
        now_ms < self.last_beacon_ms + self.grace_ms
    }

    pub fn silent_for(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_beacon_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::{Clock, ManualClock};

    const LEASE: u64 = 8_000;
    const GRACE: u64 = 10_000;

    #[test]
    fn no_lease_before_the_first_ack() {
        let lease = Lease::new(LEASE);
        assert!(!lease.is_valid(0));
        assert_eq!(lease.expires_at(), None);
    }

    #[test]
    fn lease_runs_from_the_send_time_of_the_acked_beacon() {
        let clock = ManualClock::new(1_000, 0);
        let mut lease = Lease::new(LEASE);
        let sent = clock.now_ms();
        clock.advance_ms(3_000); // a slow ack
        lease.on_ack(sent);
        assert_eq!(lease.expires_at(), Some(9_000));
        clock.advance_ms(4_999);
        assert!(lease.is_valid(clock.now_ms()));
        clock.advance_ms(1);
        assert!(
            !lease.is_valid(clock.now_ms()),
            "expires exactly lease ms after the send"
        );
    }

    #[test]
    fn an_old_ack_never_shortens_the_lease() {
        let mut lease = Lease::new(LEASE);
        lease.on_ack(5_000);
        lease.on_ack(2_000);
        assert_eq!(lease.expires_at(), Some(13_000));
    }

    #[test]
    fn grace_counts_from_the_last_beacon_received() {
        let clock = ManualClock::new(0, 0);
        let mut node = Liveness::new(GRACE, clock.now_ms());
        clock.advance_ms(9_999);
        assert!(node.is_alive(clock.now_ms()), "a new node gets one grace period");
        node.on_beacon(clock.now_ms());
        clock.advance_ms(GRACE - 1);
        assert!(node.is_alive(clock.now_ms()));
        clock.advance_ms(1);
        assert!(!node.is_alive(clock.now_ms()));
        assert_eq!(node.silent_for(clock.now_ms()), GRACE);
    }

    #[test]
    fn a_lapse_noticed_only_at_the_next_ack_still_counts_as_lost() {
        let mut tracker = LeaseTracker::new(LEASE);
        let first = tracker.on_ack(100, 0, 7);
        assert_eq!(
            first,
            LeaseChange {
                lost: false,
                granted: Some(7)
            }
        );
        assert_eq!(
            tracker.on_ack(1_100, 1_000, 7),
            LeaseChange::default(),
            "renewed in time"
        );
        // Stopped from 1_100 to 20_000: no check ran; the next ack shows the lapse.
        let resumed = tracker.on_ack(20_050, 20_000, 7);
        assert_eq!(
            resumed,
            LeaseChange {
                lost: true,
                granted: Some(7)
            }
        );
        assert_eq!(tracker.snapshot().until_ms, Some(28_000));
    }

    #[test]
    fn a_new_incarnation_asks_for_a_sync_and_a_check_notices_expiry_once() {
        let mut tracker = LeaseTracker::new(LEASE);
        tracker.on_ack(0, 0, 7);
        assert_eq!(
            tracker.on_ack(1_000, 1_000, 9),
            LeaseChange {
                lost: false,
                granted: Some(9)
            }
        );
        assert!(!tracker.check(8_999));
        assert!(tracker.check(9_000));
        assert!(!tracker.check(9_500), "once per lapse");
        assert_eq!(
            tracker.on_ack(9_600, 9_500, 9),
            LeaseChange {
                lost: false,
                granted: Some(9)
            }
        );
        // A very late answer grants nothing.
        let mut late = LeaseTracker::new(LEASE);
        assert_eq!(late.on_ack(10_000, 1_000, 3), LeaseChange::default());
    }

    #[test]
    fn the_replica_always_stops_before_the_meta_declares_it_dead() {
        // Whatever the network delay d of the last acknowledged beacon, the meta's clock reading of
        // its arrival is at least its send time on the replica's clock shifted by d ≥ 0, so the
        // lease end (s + lease) comes before the grace end (s + d + grace) on a common timeline.
        for delay in [0, 1, 500, 7_999, 20_000] {
            for sent in [0u64, 1_000, 123_456] {
                let mut lease = Lease::new(LEASE);
                lease.on_ack(sent);
                let mut node = Liveness::new(GRACE, 0);
                node.on_beacon(sent + delay);
                let replica_stops = lease.expires_at().unwrap();
                let first_dead_instant = (sent..).find(|t| !node.is_alive(*t)).unwrap();
                assert!(replica_stops < first_dead_instant, "delay {delay} sent {sent}");
                assert!(!lease.is_valid(first_dead_instant));
            }
        }
    }
}
