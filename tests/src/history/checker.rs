//! Linearizability of one key's history against a register model, by the Wing-Gong-Lowe search
//! with memoization (as Porcupine does it).
//!
//! Every operation contributes a call entry at its invocation and a return entry at its completion
//! (at the end for an unknown outcome). The search walks the entries in time order; at a call it
//! tries to linearize that operation now (the model must accept it in the current state), and at a
//! return whose operation is not linearized yet it backtracks. A pair (set of linearized operations,
//! model state) already explored is never explored again, which keeps the search polynomial on the
//! histories real clients make. An operation with an unknown outcome may be linearized last, after
//! every known return: that is the same as never having taken effect.

use super::{Op, OpKind, Value};
use std::collections::HashSet;
use std::fmt;

/// Why a history has no linearization, or why the check gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// No order of the operations explains what the clients saw.
    NotLinearizable {
        /// Operations of the longest order found that explains a prefix of the history.
        linearized: usize,
        total: usize,
        /// The operations the search could not place next (readable), with the model's state then.
        stuck_at: Vec<String>,
        state: String,
    },
    /// The search explored more states than allowed (make the history smaller).
    TooComplex { states: usize },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable {
                linearized,
                total,
                stuck_at,
                state,
            } => write!(
                f,
                "not linearizable: at most {linearized} of {total} operations can be ordered; with the value {state}, none of these can come next: {}",
                stuck_at.join("; ")
            ),
            CheckError::TooComplex { states } => {
                write!(f, "gave up after {states} states: the history is too concurrent to check")
            }
        }
    }
}

fn show_value(value: &Value) -> String {
    match value {
        None => "absent".to_string(),
        Some(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
    }
}

fn show_op(op: &Op) -> String {
    let what = match &op.kind {
        OpKind::Read { value } => format!("read -> {}", show_value(value)),
        OpKind::Write { value } => format!("write {}", show_value(&Some(value.clone()))),
        OpKind::Delete => "delete".to_string(),
        OpKind::Cas { expect, new, succeeded } => format!(
            "cas {} -> {} ({})",
            show_value(expect),
            show_value(&Some(new.clone())),
            match succeeded {
                Some(true) => "set",
                Some(false) => "not set",
                None => "unknown",
            }
        ),
        OpKind::Incr { delta, result } => match result {
            Some(r) => format!("incr {delta} -> {r}"),
            None => format!("incr {delta} (unknown)"),
        },
    };
    let until = op.complete.map_or("?".to_string(), |c| c.to_string());
    format!("client {} [{}..{}] {what}", op.client, op.invoke, until)
}

fn as_int(value: &Value) -> Option<i64> {
    match value {
        None => Some(0),
        Some(bytes) if bytes.is_empty() => Some(0),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
    }
}

/// The register model: whether `op` may happen in `state`, and the state after it.
fn step(state: &Value, op: &OpKind) -> Option<Value> {
    match op {
        OpKind::Read { value } => (value == state).then(|| state.clone()),
        OpKind::Write { value } => Some(Some(value.clone())),
        OpKind::Delete => Some(None),
        OpKind::Cas {
            expect,
            new,
            succeeded: Some(true),
        } => (state == expect).then(|| Some(new.clone())),
        OpKind::Cas {
            expect,
            succeeded: Some(false),
            ..
        } => (state != expect).then(|| state.clone()),
        OpKind::Cas {
            expect,
            new,
            succeeded: None,
        } => Some(if state == expect {
            Some(new.clone())
        } else {
            state.clone()
        }),
        OpKind::Incr {
            delta,
            result: Some(result),
        } => {
            let current = as_int(state)?;
            (current.checked_add(*delta) == Some(*result)).then(|| Some(result.to_string().into_bytes()))
        }
        OpKind::Incr { delta, result: None } => Some(match as_int(state).and_then(|v| v.checked_add(*delta)) {
            Some(next) => Some(next.to_string().into_bytes()),
            // An incr of a non-integer fails and changes nothing.
            None => state.clone(),
        }),
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// The index of the matching call / return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// A doubly linked list of entries with a sentinel head at index 0 (entries start at 1).
struct Entries {
    list: Vec<Entry>,
}

const NIL: usize = usize::MAX;

impl Entries {
    fn new(ops: &[Op]) -> Self {
        // (time, is_return, op): calls sort before returns at equal times, unknown returns last.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoke, false, i));
            events.push((op.complete.unwrap_or(u64::MAX), true, i));
        }
        events.sort();
        let head = Entry {
            op: NIL,
            is_call: false,
            partner: NIL,
            prev: NIL,
            next: NIL,
        };
        let mut list = vec![head];
        let mut call_of = vec![NIL; ops.len()];
        for (_, is_return, op) in events {
            let index = list.len();
            let partner = if is_return { call_of[op] } else { NIL };
            if is_return {
                list[partner].partner = index;
            } else {
                call_of[op] = index;
            }
            list.push(Entry {
                op,
                is_call: !is_return,
                partner,
                prev: index - 1,
                next: NIL,
            });
            list[index - 1].next = index;
        }
        Entries { list }
    }

    fn first(&self) -> usize {
        self.list[0].next
    }

    fn unlink(&mut self, index: usize) {
        let Entry { prev, next, .. } = self.list[index];
        self.list[prev].next = next;
        if next != NIL {
            self.list[next].prev = prev;
        }
    }

    fn relink(&mut self, index: usize) {
        let Entry { prev, next, .. } = self.list[index];
        self.list[prev].next = index;
        if next != NIL {
            self.list[next].prev = index;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.list[call].partner);
    }

    /// Puts them back (in reverse order of `lift`).
    fn unlift(&mut self, call: usize) {
        self.relink(self.list[call].partner);
        self.relink(call);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// Checks one key's operations, starting from an absent value; explores at most `max_states`.
pub fn check_key(ops: &[Op], max_states: usize) -> Result<(), CheckError> {
    let mut entries = Entries::new(ops);
    let mut linearized = Bits::new(ops.len());
    let mut state: Value = None;
    let mut seen: HashSet<(Bits, Value)> = HashSet::new();
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut best: (usize, Bits, Value) = (0, linearized.clone(), None);
    let mut entry = entries.first();
    while entries.first() != NIL {
        if entry == NIL {
            // Only unknown operations are left, and none fits: back off.
            entry =
                backtrack(&mut entries, &mut stack, &mut linearized, &mut state).ok_or_else(|| stuck(ops, &best))?;
            continue;
        }
        let current = entries.list[entry];
        if current.is_call {
            if let Some(next_state) = step(&state, &ops[current.op].kind) {
                let mut next_bits = linearized.clone();
                next_bits.set(current.op);
                if seen.insert((next_bits.clone(), next_state.clone())) {
                    if seen.len() > max_states {
                        return Err(CheckError::TooComplex { states: seen.len() });
                    }
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = next_bits;
                    entries.lift(entry);
                    if stack.len() > best.0 {
                        best = (stack.len(), linearized.clone(), state.clone());
                    }
                    entry = entries.first();
                    continue;
                }
            }
            entry = current.next;
        } else {
            // The return of an operation not linearized yet: what came before must be undone.
            entry =
                backtrack(&mut entries, &mut stack, &mut linearized, &mut state).ok_or_else(|| stuck(ops, &best))?;
        }
    }
    Ok(())
}

/// Undoes the last linearized operation; returns the entry to continue from, or `None` when
/// nothing is left to undo.
fn backtrack(
    entries: &mut Entries,
    stack: &mut Vec<(usize, Value)>,
    linearized: &mut Bits,
    state: &mut Value,
) -> Option<usize> {
    let (call, previous) = stack.pop()?;
    linearized.clear(entries.list[call].op);
    *state = previous;
    entries.unlift(call);
    Some(entries.list[call].next)
}

/// The explanation of a failure: the ops left out of the longest linearized prefix that had
/// completed first (where the search got stuck), and the state there.
fn stuck(ops: &[Op], best: &(usize, Bits, Value)) -> CheckError {
    let (count, bits, state) = best;
    let mut left: Vec<&Op> = (0..ops.len()).filter(|i| !bits.get(*i)).map(|i| &ops[i]).collect();
    left.sort_by_key(|op| op.complete.unwrap_or(u64::MAX));
    let first_return = left.first().and_then(|op| op.complete).unwrap_or(u64::MAX);
    // The blocked operation and those concurrent with it.
    let stuck_at = left
        .iter()
        .filter(|op| op.invoke <= first_return)
        .take(8)
        .map(|op| show_op(op))
        .collect();
    CheckError::NotLinearizable {
        linearized: *count,
        total: ops.len(),
        stuck_at,
        state: show_value(state),
    }
}
