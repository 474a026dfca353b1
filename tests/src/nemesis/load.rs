//! The client load of the fault tests: clients that read, write and check-and-set a set of keys
//! and record every operation, with its outcome, in a [`History`].

use crate::history::{History, OpKind, Outcome, Value};
use aerie_client::{Client, ClientOptions, Table};
use aerie_common::{ErrorCode, NodeAddr};
use aerie_proto::data::{CheckAndSet, CheckType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The sort key of every key the load touches.
pub const SORT_KEY: &[u8] = b"s";

/// What the clients of one load share.
#[derive(Clone)]
struct Shared {
    keys: Arc<Vec<Vec<u8>>>,
    history: History,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
}

/// A client's operations on the keys, recorded in the history, until stopped.
async fn client_loop(id: u64, table: Table, shared: Shared, asleep: Option<Arc<AtomicBool>>) {
    let Shared {
        keys,
        history,
        stop,
        done,
    } = shared;
    let mut last_seen: HashMap<usize, Value> = HashMap::new();
    let mut n = 0u64;
    let mut rng = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while !stop.load(Ordering::Relaxed) {
        if asleep.as_ref().is_some_and(|a| a.load(Ordering::Relaxed)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        // A small xorshift: no shared generator, nothing to lock.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = (rng % keys.len() as u64) as usize;
        let hash_key = keys[key].clone();
        n += 1;
        let value = format!("c{id}-{n}").into_bytes();
        match (rng >> 32) % 10 {
            0..=3 => {
                let pending = history.invoke(id, &hash_key, OpKind::Read { value: None });
                let outcome = match table.get(&hash_key, SORT_KEY).await {
                    Ok(value) => {
                        last_seen.insert(key, value.clone());
                        Outcome::Ok(OpKind::Read { value })
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                history.complete(pending, outcome);
            }
            4..=7 => {
                let pending = history.invoke(id, &hash_key, OpKind::Write { value: value.clone() });
                let outcome = match table.set(&hash_key, SORT_KEY, &value, 0).await {
                    Ok(()) => Outcome::Ok(OpKind::Write { value }),
                    Err(e) => write_failure(&e),
                };
                history.complete(pending, outcome);
            }
            _ => {
                let expect = last_seen.get(&key).cloned().unwrap_or(None);
                let kind = OpKind::Cas {
                    expect: expect.clone(),
                    new: value.clone(),
                    succeeded: None,
                };
                let pending = history.invoke(id, &hash_key, kind.clone());
                let cas = CheckAndSet {
                    hash_key: hash_key.clone(),
                    check_sort_key: SORT_KEY.to_vec(),
                    check: match &expect {
                        None => CheckType::ValueNotExist,
                        Some(v) => CheckType::ValueBytesEqual(v.clone()),
                    },
                    set_sort_key: SORT_KEY.to_vec(),
                    set_value: value.clone(),
                    set_ttl_secs: 0,
                    return_check_value: false,
                };
                let outcome = match table.check_and_set(cas).await {
                    Ok((succeeded, _)) => {
                        if succeeded {
                            last_seen.insert(key, Some(value.clone()));
                        }
                        Outcome::Ok(OpKind::Cas {
                            expect,
                            new: value,
                            succeeded: Some(succeeded),
                        })
                    }
                    Err(e) => write_failure(&e),
                };
                history.complete(pending, outcome);
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a failed write goes into the history: unknown when it may have been applied.
fn write_failure(e: &aerie_common::WireError) -> Outcome {
    if e.code == ErrorCode::ERR_OUTCOME_UNKNOWN {
        Outcome::Unknown
    } else {
        Outcome::Failed(e.to_string())
    }
}

/// Clients making operations and recording them, until stopped.
pub struct HistoryLoad {
    shared: Shared,
    /// Set while the sleeping clients make no operation (see [`HistoryLoad::start`]).
    asleep: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl HistoryLoad {
    /// `clients` clients on `table` (each its own session), half of them with a 1 s timeout and
    /// half with the library's default (10 s): retries after long timeouts are where writes were
    /// applied twice. `sleepers` more clients stop making operations while the load is put to
    /// sleep ([`HistoryLoad::sleep`]) and start again when woken: they come back with the routing
    /// they cached before a fault, as most clients of a real cluster do.
    pub async fn start(metas: Vec<NodeAddr>, table: &str, keys: Vec<Vec<u8>>, clients: u64, sleepers: u64) -> Self {
        let shared = Shared {
            keys: Arc::new(keys),
            history: History::new(),
            stop: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicU64::new(0)),
        };
        let asleep = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for id in 0..clients + sleepers {
            let timeout = if id % 2 == 0 {
                Duration::from_secs(1)
            } else {
                ClientOptions::default().timeout
            };
            let client = Client::new(
                metas.clone(),
                ClientOptions {
                    timeout,
                    meta_timeout: Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .expect("client");
            let table = client.table(table).await.expect("open the table");
            let sleeps = (id >= clients).then(|| asleep.clone());
            tasks.push(tokio::spawn(client_loop(id, table, shared.clone(), sleeps)));
        }
        HistoryLoad { shared, asleep, tasks }
    }

    /// The keys the clients touch.
    pub fn keys(&self) -> Arc<Vec<Vec<u8>>> {
        self.shared.keys.clone()
    }

    /// The sleeping clients make no new operation until [`HistoryLoad::wake`].
    pub fn sleep(&self) {
        self.asleep.store(true, Ordering::Relaxed);
    }

    pub fn wake(&self) {
        self.asleep.store(false, Ordering::Relaxed);
    }

    /// Operations finished so far (whatever their outcome).
    pub fn done(&self) -> u64 {
        self.shared.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `more` operations beyond those done now have finished.
    pub async fn wait_for_more(&self, more: u64, timeout: Duration) {
        let target = self.done() + more;
        let done = self.shared.done.clone();
        crate::wait_until("the clients to make progress", timeout, || {
            let now = done.load(Ordering::Relaxed);
            async move {
                if now >= target {
                    Ok(())
                } else {
                    Err(format!("{now} of {target} operations"))
                }
            }
        })
        .await
    }

    /// Stops the clients, letting each finish its operation under way.
    pub async fn stop(self) -> History {
        self.shared.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("client task");
        }
        self.shared.history
    }
}
