//! Availability over sliding windows: probe tries and failures kept in 10-second buckets for up to
//! a day, so the ratio of successful probes over the last minute, hour or day is a sum of buckets.

use std::collections::VecDeque;

/// Width of one bucket; windows are rounded to whole buckets.
pub const BUCKET_SECS: u64 = 10;
pub const MINUTE: u64 = 60;
pub const HOUR: u64 = 3_600;
pub const DAY: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    start: u64,
    tries: u64,
    failures: u64,
}

/// Tries and failures over time; buckets older than `keep_secs` are dropped.
#[derive(Debug, Clone)]
pub struct Availability {
    keep_secs: u64,
    buckets: VecDeque<Bucket>,
}

impl Availability {
    pub fn keeping(keep_secs: u64) -> Self {
        Availability {
            keep_secs,
            buckets: VecDeque::new(),
        }
    }

    /// Counts one probe at `now_secs` (seconds on any monotonic scale).
    pub fn record(&mut self, now_secs: u64, ok: bool) {
        let start = now_secs - now_secs % BUCKET_SECS;
        match self.buckets.back_mut() {
            Some(last) if last.start == start => {
                last.tries += 1;
                last.failures += u64::from(!ok);
            }
            _ => self.buckets.push_back(Bucket {
                start,
                tries: 1,
                failures: u64::from(!ok),
            }),
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + self.keep_secs + BUCKET_SECS <= now_secs)
        {
            self.buckets.pop_front();
        }
    }

    /// (tries, failures) in the buckets that overlap the last `window_secs` before `now_secs`.
    pub fn counts(&self, now_secs: u64, window_secs: u64) -> (u64, u64) {
        let from = now_secs.saturating_sub(window_secs);
        self.buckets
            .iter()
            .rev()
            .take_while(|b| b.start + BUCKET_SECS > from)
            .fold((0, 0), |(t, f), b| (t + b.tries, f + b.failures))
    }

    /// Successful / total probes over the window; None when no probe fell in it.
    pub fn ratio(&self, now_secs: u64, window_secs: u64) -> Option<f64> {
        let (tries, failures) = self.counts(now_secs, window_secs);
        (tries > 0).then(|| (tries - failures) as f64 / tries as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_cover_only_their_window() {
        let mut a = Availability::keeping(DAY);
        // An hour of good probes every 3 s, then a minute of failures.
        for t in (0..HOUR).step_by(3) {
            a.record(t, true);
        }
        for t in (HOUR..HOUR + MINUTE).step_by(3) {
            a.record(t, false);
        }
        let now = HOUR + MINUTE;
        assert!(a.ratio(now, MINUTE).unwrap() < 0.2, "{:?}", a.ratio(now, MINUTE));
        let hour = a.ratio(now, HOUR).unwrap();
        assert!((0.95..0.99).contains(&hour), "{hour}");
        assert_eq!(a.ratio(now + 2 * DAY, MINUTE), None);
    }

    #[test]
    fn old_buckets_are_dropped() {
        let mut a = Availability::keeping(MINUTE);
        a.record(0, false);
        a.record(5 * MINUTE, true);
        assert_eq!(a.counts(5 * MINUTE, DAY), (1, 0));
        assert!(a.buckets.len() <= (MINUTE / BUCKET_SECS + 2) as usize);
    }
}
