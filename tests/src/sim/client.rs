//! Simulated clients: each runs one operation at a time (read, write of a unique value, or
//! check-and-set from the value it last saw) with the real client's session and retry policy
//! (`aerie_client::retry`), and records every operation in the history.

use super::net::{node_index, Endpoint, Request, Response};
use super::{Pending, Process, Sim, Timer};
use crate::history::{OpKind, Outcome, Pending as HistoryOp, Value};
use aerie_client::retry::{classify_answer, Attempts, CallKind, Class};
use aerie_client::session::ClientSession;
use aerie_common::{partition_index, ErrorCode, Gpid, NodeAddr, WireError};
use aerie_proto::data::{CheckAndSet, CheckType, WriteOp, WriteResult};
use rand::Rng;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

const SORT_KEY: &[u8] = b"s";

/// `per_partition` hash keys for each partition (chosen so that they hash to it).
pub(crate) fn keys(partitions: u32, per_partition: usize) -> Vec<(u32, Vec<u8>)> {
    let mut keys = Vec::new();
    for pidx in 0..partitions {
        let mut found = 0;
        let mut i = 0u64;
        while found < per_partition {
            let hash_key = format!("k{i}").into_bytes();
            if partition_index(&hash_key, SORT_KEY, partitions) == pidx {
                keys.push((pidx, hash_key));
                found += 1;
            }
            i += 1;
        }
    }
    keys
}

#[derive(Debug, Clone)]
enum Planned {
    Read,
    Write(Vec<u8>),
    Cas { expect: Value, new: Vec<u8> },
}

struct InFlight {
    key: usize,
    /// One of the final reads: it must succeed.
    last_read: bool,
    planned: Planned,
    recorded: HistoryOp,
    attempts: Attempts,
    seq: Option<u64>,
    deadline: u64,
    backoff: u64,
}

pub(crate) struct Client {
    pub process: Process,
    session: ClientSession,
    routing: BTreeMap<u32, Option<NodeAddr>>,
    timeout_ms: u64,
    op: Option<InFlight>,
    /// Operations to run before any random one (the final reads).
    pub scripted: VecDeque<usize>,
    values: u64,
    last_seen: BTreeMap<usize, Value>,
}

impl Client {
    pub fn new(index: usize, seed: u64) -> Self {
        Client {
            process: Process {
                up: true,
                ..Process::default()
            },
            session: ClientSession::with_id(seed.wrapping_mul(1_000) + index as u64 + 1),
            routing: BTreeMap::new(),
            // Half the clients give up early, half use the library's default.
            timeout_ms: if index % 2 == 0 { 2_000 } else { 10_000 },
            op: None,
            scripted: VecDeque::new(),
            values: 0,
            last_seen: BTreeMap::new(),
        }
    }

    pub fn idle(&self) -> bool {
        self.op.is_none() && self.scripted.is_empty()
    }
}

impl Sim {
    pub(crate) fn client_timer(&mut self, c: usize, timer: Timer) {
        match timer {
            Timer::NextOp => self.next_op(c),
            Timer::Retry => self.attempt(c),
            _ => {}
        }
    }

    fn next_op(&mut self, c: usize) {
        if self.clients[c].op.is_some() {
            return;
        }
        let scripted = self.clients[c].scripted.pop_front();
        let (key, planned, timeout) = if let Some(key) = scripted {
            (key, Planned::Read, 30_000)
        } else if self.load_running {
            let key = self.rng.random_range(0..self.keys.len());
            let client = &mut self.clients[c];
            client.values += 1;
            let value = format!("c{c}-{}", client.values).into_bytes();
            let planned = match self.rng.random_range(0..10) {
                0..=3 => Planned::Read,
                4..=7 => Planned::Write(value),
                _ => Planned::Cas {
                    expect: client.last_seen.get(&key).cloned().unwrap_or(None),
                    new: value,
                },
            };
            (key, planned, self.clients[c].timeout_ms)
        } else {
            return;
        };
        let hash_key = self.keys[key].1.clone();
        let kind = match &planned {
            Planned::Read => OpKind::Read { value: None },
            Planned::Write(value) => OpKind::Write { value: value.clone() },
            Planned::Cas { expect, new } => OpKind::Cas {
                expect: expect.clone(),
                new: new.clone(),
                succeeded: None,
            },
        };
        let recorded = self.history.invoke(c as u64, &hash_key, kind);
        let call_kind = match planned {
            Planned::Read => CallKind::Read,
            _ => CallKind::Write,
        };
        let seq = (call_kind == CallKind::Write).then(|| self.clients[c].session.start());
        self.clients[c].op = Some(InFlight {
            key,
            last_read: scripted.is_some(),
            planned,
            recorded,
            attempts: Attempts::new(call_kind, Duration::from_millis(timeout)),
            seq,
            deadline: self.now + timeout,
            backoff: 20,
        });
        self.attempt(c);
    }

    fn attempt(&mut self, c: usize) {
        let now = self.now;
        let Some(op) = &self.clients[c].op else {
            return;
        };
        let (pidx, hash_key) = self.keys[op.key].clone();
        let gpid = Gpid::new(1, pidx);
        let remaining = Duration::from_millis(op.deadline.saturating_sub(now));
        let timeout = op.attempts.attempt_timeout(remaining).as_millis() as u64;
        let Some(primary) = self.clients[c].routing.get(&pidx).copied().flatten() else {
            let error = WireError::new(ErrorCode::ERR_INVALID_STATE, format!("no primary known for {gpid}"));
            return self.attempt_failed(c, error, Class::NotApplied);
        };
        let request = match &op.planned {
            Planned::Read => Request::ClientRead {
                gpid,
                hash_key,
                sort_key: SORT_KEY.to_vec(),
            },
            planned => Request::ClientWrite {
                gpid,
                request: self.clients[c].session.request(op.seq.expect("a write")),
                op: match planned {
                    Planned::Write(value) => WriteOp::Put {
                        hash_key,
                        sort_key: SORT_KEY.to_vec(),
                        value: value.clone(),
                        ttl_secs: 0,
                    },
                    Planned::Cas { expect, new } => WriteOp::CheckAndSet(CheckAndSet {
                        hash_key,
                        check_sort_key: SORT_KEY.to_vec(),
                        check: match expect {
                            None => CheckType::ValueNotExist,
                            Some(v) => CheckType::ValueBytesEqual(v.clone()),
                        },
                        set_sort_key: SORT_KEY.to_vec(),
                        set_value: new.clone(),
                        set_ttl_secs: 0,
                        return_check_value: false,
                    }),
                    Planned::Read => unreachable!(),
                },
            },
        };
        self.call(
            Endpoint::Client(c),
            Endpoint::Node(node_index(primary)),
            request,
            timeout.max(1),
            Pending::ClientOp,
        );
    }

    fn attempt_failed(&mut self, c: usize, error: WireError, class: Class) {
        let now = self.now;
        let Some(op) = self.clients[c].op.as_mut() else {
            return;
        };
        let gpid = Gpid::new(1, self.keys[op.key].0);
        if let Some(error) = op.attempts.failed(error, class, gpid) {
            return self.finish(c, Err(error));
        }
        if now + op.backoff >= op.deadline {
            let error = op.attempts.give_up(gpid);
            return self.finish(c, Err(error));
        }
        let backoff = op.backoff;
        op.backoff = (op.backoff * 2).min(1_000);
        // The routing may be stale: refresh it while waiting to try again.
        self.call(
            Endpoint::Client(c),
            Endpoint::Meta,
            Request::QueryConfig,
            1_000,
            Pending::ClientConfig,
        );
        self.schedule_timer(Endpoint::Client(c), backoff, Timer::Retry);
    }

    /// Records how the operation ended and starts the next one after a short pause.
    fn finish(&mut self, c: usize, result: Result<Answer, WireError>) {
        let Some(op) = self.clients[c].op.take() else {
            return;
        };
        if let Some(seq) = op.seq {
            self.clients[c].session.finish(seq);
        }
        let outcome = match (result, &op.planned) {
            (Ok(Answer::Read(value)), Planned::Read) => {
                self.clients[c].last_seen.insert(op.key, value.clone());
                Outcome::Ok(OpKind::Read { value })
            }
            (Ok(Answer::Write), Planned::Write(value)) => Outcome::Ok(OpKind::Write { value: value.clone() }),
            (Ok(Answer::Cas(succeeded)), Planned::Cas { expect, new }) => {
                if succeeded {
                    self.clients[c].last_seen.insert(op.key, Some(new.clone()));
                }
                Outcome::Ok(OpKind::Cas {
                    expect: expect.clone(),
                    new: new.clone(),
                    succeeded: Some(succeeded),
                })
            }
            (Ok(_), planned) => {
                // The real client turns this into ERR_OUTCOME_UNKNOWN; here it is a bug to report.
                self.wrong_answers.push(format!(
                    "client {c}: {planned:?} answered with the wrong kind of result"
                ));
                Outcome::Unknown
            }
            (Err(e), _) if e.code == ErrorCode::ERR_OUTCOME_UNKNOWN => Outcome::Unknown,
            (Err(e), _) => {
                if op.last_read {
                    let key = String::from_utf8_lossy(&self.keys[op.key].1).into_owned();
                    self.final_failures.push(format!("final read of {key} failed: {e}"));
                }
                Outcome::Failed(e.to_string())
            }
        };
        self.history.complete(op.recorded, outcome);
        let think = self.rng.random_range(0..30);
        self.schedule_timer(Endpoint::Client(c), think, Timer::NextOp);
    }

    pub(crate) fn client_response(&mut self, c: usize, pending: Pending, response: Option<Response>) {
        match pending {
            Pending::ClientConfig => {
                if let Some(Response::Configs(configs)) = response {
                    self.clients[c].routing = configs.into_iter().map(|p| (p.gpid.pidx, p.primary)).collect();
                }
            }
            Pending::ClientOp => match response {
                Some(Response::Read(Ok(value))) => self.finish(c, Ok(Answer::Read(value))),
                Some(Response::Write(Ok(WriteResult::CheckAndSet { set_succeeded, .. }))) => {
                    self.finish(c, Ok(Answer::Cas(set_succeeded)))
                }
                Some(Response::Write(Ok(_))) => self.finish(c, Ok(Answer::Write)),
                Some(Response::Read(Err(e))) | Some(Response::Write(Err(e))) => {
                    let class = classify_answer(&e);
                    self.attempt_failed(c, e, class)
                }
                _ => {
                    let error = WireError::new(ErrorCode::ERR_TIMEOUT, "the attempt timed out");
                    self.attempt_failed(c, error, Class::MaybeApplied)
                }
            },
            _ => {}
        }
    }

    /// Every key read once more by a client with a long timeout: what the cluster holds at the end.
    pub(crate) fn final_reads(&mut self) -> Result<(), String> {
        for key in 0..self.keys.len() {
            let c = key % self.clients.len();
            self.clients[c].scripted.push_back(key);
        }
        for c in 0..self.clients.len() {
            self.schedule_timer(Endpoint::Client(c), 0, Timer::NextOp);
        }
        let deadline = self.now + 60_000;
        while self.now < deadline {
            self.run_until(self.now + 200);
            if self.clients.iter().all(|c| c.idle()) {
                return match self.final_failures.first() {
                    None => Ok(()),
                    Some(first) => Err(format!(
                        "{} final reads failed, e.g. {first}",
                        self.final_failures.len()
                    )),
                };
            }
        }
        Err("the final reads did not finish within 60 s".to_string())
    }
}

enum Answer {
    Read(Value),
    Write,
    Cas(bool),
}
