//! What the availability probes found: per partition of the probe table, tries, failures, failures
//! in a row and the last error, and availability windows per partition and for the whole table.
//! Pure bookkeeping; the collector feeds it each round's outcomes and logs the events it returns.

use super::availability::{Availability, DAY, HOUR, MINUTE};
use aerie_proto::collector::{PartitionProbes, ProbeReport};

/// What a recorded probe changed that an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The partition just reached `alert_fail_count` failures in a row.
    Alert {
        pidx: u32,
        failures_in_a_row: u32,
        last_error: String,
    },
    /// The partition answered again after an alert.
    Recovered { pidx: u32, failed_for: u32 },
}

#[derive(Debug, Clone)]
struct PartitionBook {
    tries: u64,
    failures: u64,
    failures_in_a_row: u32,
    last_error: Option<String>,
    minute: Availability,
}

impl PartitionBook {
    fn new() -> Self {
        PartitionBook {
            tries: 0,
            failures: 0,
            failures_in_a_row: 0,
            last_error: None,
            minute: Availability::keeping(MINUTE),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeBook {
    table: String,
    alert_fail_count: u32,
    rounds: u64,
    partitions: Vec<PartitionBook>,
    overall: Availability,
}

impl ProbeBook {
    pub fn new(table: &str, alert_fail_count: u32) -> Self {
        ProbeBook {
            table: table.to_string(),
            alert_fail_count,
            rounds: 0,
            partitions: Vec::new(),
            overall: Availability::keeping(DAY),
        }
    }

    /// Records one round: `outcomes[i]` is partition i's probe (Err: why it failed).
    pub fn record_round(&mut self, now_secs: u64, outcomes: &[Result<(), String>]) -> Vec<ProbeEvent> {
        if self.partitions.len() != outcomes.len() {
            self.partitions = vec![PartitionBook::new(); outcomes.len()];
        }
        self.rounds += 1;
        let mut events = Vec::new();
        for (pidx, (book, outcome)) in self.partitions.iter_mut().zip(outcomes).enumerate() {
            let pidx = pidx as u32;
            book.tries += 1;
            book.minute.record(now_secs, outcome.is_ok());
            self.overall.record(now_secs, outcome.is_ok());
            match outcome {
                Ok(()) => {
                    if book.failures_in_a_row >= self.alert_fail_count {
                        events.push(ProbeEvent::Recovered {
                            pidx,
                            failed_for: book.failures_in_a_row,
                        });
                    }
                    book.failures_in_a_row = 0;
                }
                Err(e) => {
                    book.failures += 1;
                    book.failures_in_a_row += 1;
                    book.last_error = Some(e.clone());
                    if book.failures_in_a_row == self.alert_fail_count {
                        events.push(ProbeEvent::Alert {
                            pidx,
                            failures_in_a_row: book.failures_in_a_row,
                            last_error: e.clone(),
                        });
                    }
                }
            }
        }
        events
    }

    /// Partitions whose last probe failed, and those failing at least `alert_fail_count` in a row.
    pub fn failing(&self) -> (usize, usize) {
        let failing = self.partitions.iter().filter(|p| p.failures_in_a_row > 0).count();
        let alerting = self
            .partitions
            .iter()
            .filter(|p| p.failures_in_a_row >= self.alert_fail_count)
            .count();
        (failing, alerting)
    }

    pub fn availability(&self, now_secs: u64, window_secs: u64) -> Option<f64> {
        self.overall.ratio(now_secs, window_secs)
    }

    pub fn report(&self, now_secs: u64, waiting: Option<String>) -> ProbeReport {
        ProbeReport {
            table: self.table.clone(),
            waiting,
            rounds: self.rounds,
            partitions: self
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| PartitionProbes {
                    partition_index: i as u32,
                    tries: p.tries,
                    failures: p.failures,
                    failures_in_a_row: p.failures_in_a_row,
                    last_error: p.last_error.clone(),
                    availability_1m: p.minute.ratio(now_secs, MINUTE),
                })
                .collect(),
            availability_1m: self.availability(now_secs, MINUTE),
            availability_1h: self.availability(now_secs, HOUR),
            availability_1d: self.availability(now_secs, DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(book: &mut ProbeBook, t: u64, failed: &[u32]) -> Vec<ProbeEvent> {
        let outcomes: Vec<Result<(), String>> = (0..4)
            .map(|i| match failed.contains(&i) {
                true => Err(format!("timeout at {t}")),
                false => Ok(()),
            })
            .collect();
        book.record_round(t, &outcomes)
    }

    #[test]
    fn a_partition_failing_in_a_row_alerts_once_and_recovers() {
        let mut book = ProbeBook::new("__detect", 3);
        assert!(round(&mut book, 0, &[2]).is_empty());
        assert!(round(&mut book, 3, &[2]).is_empty());
        let events = round(&mut book, 6, &[2]);
        assert_eq!(
            events,
            vec![ProbeEvent::Alert {
                pidx: 2,
                failures_in_a_row: 3,
                last_error: "timeout at 6".into()
            }]
        );
        assert!(round(&mut book, 9, &[2]).is_empty(), "the alert is not repeated");
        assert_eq!(book.failing(), (1, 1));
        let events = round(&mut book, 12, &[]);
        assert_eq!(events, vec![ProbeEvent::Recovered { pidx: 2, failed_for: 4 }]);
        assert_eq!(book.failing(), (0, 0));
        let report = book.report(12, None);
        assert_eq!(report.rounds, 5);
        let p2 = &report.partitions[2];
        assert_eq!((p2.tries, p2.failures, p2.failures_in_a_row), (5, 4, 0));
        assert_eq!(p2.last_error.as_deref(), Some("timeout at 9"));
        assert_eq!(report.partitions[0].availability_1m, Some(1.0));
        assert_eq!(report.availability_1m, Some(16.0 / 20.0));
    }
}
