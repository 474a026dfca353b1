//! Client histories and the per-key linearizability check (Knossos / Porcupine style).
//!
//! A test records every operation its clients make: when it was invoked, when it completed, and
//! what it returned. An operation that certainly had no effect (refused before it was proposed) is
//! left out; one whose outcome is unknown (a timeout, an `ERR_OUTCOME_UNKNOWN`) is kept with no
//! completion: it may take effect at any moment after its invocation, or never.
//!
//! ```text
//!  clients ── invoke ──► History (one logical clock) ◄── complete ── clients
//!                             │ per key
//!                             ▼
//!                     check_key(ops) ─► Ok | Violation (the operations no order can explain)
//! ```
//!
//! Times come from one logical clock shared by every client of a test (an atomic counter): if an
//! operation completed before another was invoked, its completion tick is smaller, which is all
//! that real-time order needs.

mod checker;
#[cfg(test)]
mod tests;

pub use checker::{check_key, CheckError};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A register's value: absent, or bytes.
pub type Value = Option<Vec<u8>>;

/// What an operation did to (or saw of) one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A read that returned `value` (only successful reads are recorded).
    Read {
        value: Value,
    },
    Write {
        value: Vec<u8>,
    },
    Delete,
    /// Set `new` if the current value equals `expect` (`None`: the key must be absent).
    /// `succeeded` is `None` when the outcome is unknown.
    Cas {
        expect: Value,
        new: Vec<u8>,
        succeeded: Option<bool>,
    },
    /// Add `delta` to an integer value (absent counts as 0); `result` is the new value when known.
    Incr {
        delta: i64,
        result: Option<i64>,
    },
}

/// One operation on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: u64,
    pub invoke: u64,
    /// `None`: the outcome is unknown; the operation may take effect at any time after `invoke`.
    pub complete: Option<u64>,
    pub kind: OpKind,
}

/// How an operation ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect and returned this (the kind, with what a read saw or a CAS / incr returned).
    Ok(OpKind),
    /// It certainly did not take effect (refused before it was proposed); why, for reports.
    Failed(String),
    /// It may or may not have taken effect.
    Unknown,
}

#[derive(Debug)]
struct Recorded {
    key: Vec<u8>,
    op: Op,
    done: bool,
    /// Wall-clock milliseconds of invocation and completion, to line a failure up with logs.
    invoked_ms: u128,
    completed_ms: Option<u128>,
    /// Why it failed, when it certainly had no effect (kept for reports, never checked).
    failed: Option<String>,
}

fn wall_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A thread-safe recorder of the operations of many clients on many keys.
#[derive(Debug, Clone, Default)]
pub struct History {
    clock: Arc<AtomicU64>,
    ops: Arc<Mutex<Vec<Option<Recorded>>>>,
}

/// An operation under way, returned by [`History::invoke`].
#[derive(Debug, Clone, Copy)]
pub struct Pending(usize);

impl History {
    pub fn new() -> Self {
        History::default()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Records the start of an operation, just before it is sent.
    pub fn invoke(&self, client: u64, key: &[u8], kind: OpKind) -> Pending {
        let invoke = self.tick();
        let mut ops = self.ops.lock().expect("history");
        ops.push(Some(Recorded {
            key: key.to_vec(),
            op: Op {
                client,
                invoke,
                complete: None,
                kind,
            },
            done: false,
            invoked_ms: wall_ms(),
            completed_ms: None,
            failed: None,
        }));
        Pending(ops.len() - 1)
    }

    /// Records how an operation ended, just after the answer arrived.
    pub fn complete(&self, pending: Pending, outcome: Outcome) {
        let tick = self.tick();
        let mut ops = self.ops.lock().expect("history");
        let slot = &mut ops[pending.0];
        let is_read = matches!(
            slot,
            Some(Recorded {
                op: Op {
                    kind: OpKind::Read { .. },
                    ..
                },
                ..
            })
        );
        if let Some(recorded) = slot.as_mut() {
            recorded.completed_ms = Some(wall_ms());
        }
        match outcome {
            // A read that failed, or whose answer never came, had no effect: nothing to check.
            Outcome::Failed(why) => {
                if let Some(recorded) = slot {
                    recorded.failed = Some(why);
                    recorded.done = true;
                }
            }
            Outcome::Unknown if is_read => {
                if let Some(recorded) = slot {
                    recorded.failed = Some("no answer".into());
                    recorded.done = true;
                }
            }
            Outcome::Unknown => {
                if let Some(recorded) = slot {
                    recorded.done = true;
                }
            }
            Outcome::Ok(kind) => {
                if let Some(recorded) = slot {
                    recorded.op.complete = Some(tick);
                    recorded.op.kind = kind;
                    recorded.done = true;
                }
            }
        }
    }

    /// Every recorded operation, per key. Operations still under way count as unknown.
    pub fn per_key(&self) -> BTreeMap<Vec<u8>, Vec<Op>> {
        let ops = self.ops.lock().expect("history");
        let mut keys: BTreeMap<Vec<u8>, Vec<Op>> = BTreeMap::new();
        for recorded in ops.iter().flatten().filter(|r| r.failed.is_none()) {
            keys.entry(recorded.key.clone()).or_default().push(recorded.op.clone());
        }
        keys
    }

    /// Every operation on `key` in invocation order, one line each with wall-clock times (UTC,
    /// as the servers log them), for a failure report.
    pub fn dump_key(&self, key: &[u8]) -> String {
        let ops = self.ops.lock().expect("history");
        let mut lines: Vec<(u128, String)> = ops
            .iter()
            .flatten()
            .filter(|r| r.key == key)
            .map(|r| {
                let until = match (&r.failed, r.op.complete, r.completed_ms) {
                    (Some(why), _, Some(ms)) => format!("{} FAILED ({why})", clock_time(ms)),
                    (None, Some(_), Some(ms)) => clock_time(ms),
                    (_, None, _) => "unknown".to_string(),
                    _ => "?".to_string(),
                };
                (
                    r.invoked_ms,
                    format!(
                        "{} .. {}  client {:>3}  {:?}",
                        clock_time(r.invoked_ms),
                        until,
                        r.op.client,
                        r.op.kind
                    ),
                )
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|(_, l)| l).collect::<Vec<_>>().join("\n")
    }

    /// Every operation whose (intended) value is `value`, on any key, for a failure report.
    pub fn find_value(&self, value: &[u8]) -> String {
        let ops = self.ops.lock().expect("history");
        ops.iter()
            .flatten()
            .filter(|r| match &r.op.kind {
                OpKind::Write { value: v } | OpKind::Cas { new: v, .. } => v == value,
                _ => false,
            })
            .map(|r| {
                format!(
                    "key {} {} .. {}: {:?} {}",
                    String::from_utf8_lossy(&r.key),
                    clock_time(r.invoked_ms),
                    r.completed_ms.map(clock_time).unwrap_or_default(),
                    r.op.kind,
                    r.failed.as_deref().map(|f| format!("FAILED ({f})")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Counts of operations by how they ended: (ok, unknown).
    pub fn counts(&self) -> (usize, usize) {
        let ops = self.ops.lock().expect("history");
        let checked = || ops.iter().flatten().filter(|r| r.failed.is_none());
        let ok = checked().filter(|r| r.op.complete.is_some()).count();
        let unknown = checked().filter(|r| r.op.complete.is_none()).count();
        (ok, unknown)
    }
}

/// `HH:MM:SS.mmm` of a wall-clock millisecond (UTC).
fn clock_time(ms: u128) -> String {
    let secs = (ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

/// The result of checking a whole history.
#[derive(Debug, Default)]
pub struct Report {
    pub keys: usize,
    pub ops: usize,
    pub unknown: usize,
    /// Keys with no linearization, with the explanation.
    pub violations: Vec<(Vec<u8>, CheckError)>,
}

impl Report {
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty()
    }

    /// A readable account of the violations, for a failing test.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "{} of {} keys not linearizable ({} ops, {} unknown)",
            self.violations.len(),
            self.keys,
            self.ops,
            self.unknown
        );
        for (key, error) in self.violations.iter().take(5) {
            out.push_str(&format!("\n  key {}: {error}", String::from_utf8_lossy(key)));
        }
        out
    }
}

/// Checks every key's history; `max_states` bounds the search per key.
pub fn check_all(per_key: &BTreeMap<Vec<u8>, Vec<Op>>, max_states: usize) -> Report {
    let mut report = Report {
        keys: per_key.len(),
        ..Report::default()
    };
    for (key, ops) in per_key {
        report.ops += ops.len();
        report.unknown += ops.iter().filter(|o| o.complete.is_none()).count();
        if let Err(error) = check_key(ops, max_states) {
            report.violations.push((key.clone(), error));
        }
    }
    report
}
