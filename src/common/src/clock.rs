//! The clock seam. Leases, timeouts and delays read monotonic time through [`Clock::now_ms`]; wall
//! time ([`Clock::wall_secs`]) is only for display and TTL. Tests use [`ManualClock`] to move time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds on a monotonic clock with an arbitrary origin.
    fn now_ms(&self) -> u64;
    /// Seconds since the Unix epoch, for display and TTL only.
    fn wall_secs(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock { origin: Instant::now() }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
    fn wall_secs(&self) -> u64 {
        wall_secs_now()
    }
}

/// Current Unix time in seconds.
pub fn wall_secs_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Current Unix time in milliseconds.
pub fn wall_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A clock that only moves when told to.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Arc<AtomicU64>,
    wall_secs: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(start_ms: u64, wall_secs: u64) -> Self {
        ManualClock {
            now_ms: Arc::new(AtomicU64::new(start_ms)),
            wall_secs: Arc::new(AtomicU64::new(wall_secs)),
        }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
        self.wall_secs.fetch_add(ms / 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
    fn wall_secs(&self) -> u64 {
        self.wall_secs.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(100, 1_000);
        assert_eq!(clock.now_ms(), 100);
        clock.advance_ms(2_500);
        assert_eq!(clock.now_ms(), 2_600);
        assert_eq!(clock.wall_secs(), 1_002);
    }
}
