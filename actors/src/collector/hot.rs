//! Hot partitions, Pegasus's way: each round, a partition's score is ceil((qps - mean) / stddev)
//! over its table's partitions (0 when negative, and when all are alike); a partition whose score
//! reaches the threshold for `occurrence` rounds in a row is hot. Read and write QPS are judged
//! apart. A partition under [`MIN_HOT_QPS`] is never hot: with almost no traffic a single request
//! would stand out. With n partitions one outlier scores at most ceil(sqrt(n - 1)), so a threshold
//! of 3 needs a table of at least 6 partitions.

use aerie_common::AppId;
use aerie_proto::collector::{HotKind, HotPartition, PartitionStat};
use std::collections::HashMap;

pub const MIN_HOT_QPS: f64 = 10.0;

/// Scores of each value against the others (Pegasus's formula).
pub fn scores(qps: &[f64]) -> Vec<u32> {
    if qps.is_empty() {
        return Vec::new();
    }
    let n = qps.len() as f64;
    let mean = qps.iter().sum::<f64>() / n;
    let stddev = (qps.iter().map(|q| (q - mean).powi(2)).sum::<f64>() / n).sqrt();
    qps.iter()
        .map(|q| match stddev > f64::EPSILON {
            true => ((q - mean) / stddev).ceil().max(0.0) as u32,
            false => 0,
        })
        .collect()
}

/// Rounds in a row each (table, partition, kind) scored at or above the threshold.
#[derive(Debug, Default)]
pub struct HotTracker {
    streaks: HashMap<(AppId, u32, HotKind), u32>,
}

impl HotTracker {
    /// Judges one round of a table's partitions; returns the partitions hot now.
    pub fn observe(
        &mut self,
        app_id: AppId,
        partitions: &[PartitionStat],
        threshold: u32,
        occurrence: u32,
    ) -> Vec<HotPartition> {
        let mut hot = Vec::new();
        for kind in [HotKind::Read, HotKind::Write] {
            let qps: Vec<f64> = partitions
                .iter()
                .map(|p| match kind {
                    HotKind::Read => p.read_qps(),
                    HotKind::Write => p.write_qps(),
                })
                .collect();
            for ((p, score), q) in partitions.iter().zip(scores(&qps)).zip(&qps) {
                let key = (app_id, p.gpid.pidx, kind);
                if score < threshold || *q < MIN_HOT_QPS {
                    self.streaks.remove(&key);
                    continue;
                }
                let rounds = self.streaks.entry(key).or_default();
                *rounds += 1;
                if *rounds >= occurrence {
                    hot.push(HotPartition {
                        partition_index: p.gpid.pidx,
                        kind,
                        score,
                        rounds: *rounds,
                        qps: *q,
                    });
                }
            }
        }
        hot
    }

    /// Forgets the tables not in `app_ids` (dropped since).
    pub fn retain(&mut self, app_ids: &[AppId]) {
        self.streaks.retain(|(app, _, _), _| app_ids.contains(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_common::Gpid;

    fn partitions(write_qps: &[f64]) -> Vec<PartitionStat> {
        write_qps
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let mut qps = [0.0; 9];
                qps[2] = *q; // PUT
                PartitionStat {
                    gpid: Gpid::new(1, i as u32),
                    primary: None,
                    counts: [0; 9],
                    qps,
                    read_bytes: 0,
                    write_bytes: 0,
                    read_bytes_per_sec: 0.0,
                    write_bytes_per_sec: 0.0,
                    storage_bytes: 0,
                    file_count: 0,
                }
            })
            .collect()
    }

    #[test]
    fn scores_follow_pegasus() {
        assert_eq!(scores(&[100.0; 8]), vec![0; 8]);
        let s = scores(&[100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 1000.0]);
        assert_eq!(s[7], 3, "{s:?}");
        assert!(s[..7].iter().all(|x| *x == 0), "{s:?}");
        assert_eq!(scores(&[]), Vec::<u32>::new());
    }

    #[test]
    fn hot_after_occurrence_rounds_in_a_row_and_cold_again() {
        let mut tracker = HotTracker::default();
        let skewed = partitions(&[50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 900.0]);
        assert!(tracker.observe(1, &skewed, 3, 3).is_empty());
        assert!(tracker.observe(1, &skewed, 3, 3).is_empty());
        let hot = tracker.observe(1, &skewed, 3, 3);
        assert_eq!(hot.len(), 1, "{hot:?}");
        assert_eq!(
            (hot[0].partition_index, hot[0].kind, hot[0].rounds),
            (7, HotKind::Write, 3)
        );
        let even = partitions(&[50.0; 8]);
        assert!(tracker.observe(1, &even, 3, 3).is_empty());
        assert!(tracker.observe(1, &skewed, 3, 3).is_empty(), "the streak starts again");
    }

    #[test]
    fn a_trickle_is_never_hot() {
        let mut tracker = HotTracker::default();
        let trickle = partitions(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3]);
        for _ in 0..5 {
            assert!(tracker.observe(1, &trickle, 3, 3).is_empty());
        }
    }
}
