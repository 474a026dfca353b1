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
    /// It certainly did not take effect (refused before it was proposed).
    Failed,
    /// It may or may not have taken effect.
    Unknown,
}

#[derive(Debug)]
struct Recorded {
    key: Vec<u8>,
    op: Op,
    done: bool,
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
        match outcome {
            // A read that failed, or whose answer never came, had no effect: nothing to check.
            Outcome::Failed => *slot = None,
            Outcome::Unknown if is_read => *slot = None,
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
        for recorded in ops.iter().flatten() {
            keys.entry(recorded.key.clone()).or_default().push(recorded.op.clone());
        }
        keys
    }

    /// Counts of operations by how they ended: (ok, unknown).
    pub fn counts(&self) -> (usize, usize) {
        let ops = self.ops.lock().expect("history");
        let ok = ops.iter().flatten().filter(|r| r.op.complete.is_some()).count();
        let unknown = ops.iter().flatten().filter(|r| r.op.complete.is_none()).count();
        (ok, unknown)
    }
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
