//! Fault tests on real processes: a cluster where every process has its own loopback address,
//! clients that record every operation in a [`History`], the faults (SIGKILL, SIGSTOP past the
//! grace period, links cut with nftables, a meta leader killed, a rolling restart), and the checks
//! at the end: every key's history linearizable, nothing acknowledged lost, replicas identical.
//!
//! ```text
//!   HistoryLoad: clients (short and default timeouts) ── read / write / check_and_set ──► History
//!   FaultCluster: SIGKILL | SIGSTOP / SIGCONT | Firewall::cut(a, b) | restart ──► heal
//!   finish(): wait fully healthy ─► read every key ─► check_all(history) ─► replica checksums
//! ```

use crate::history::{check_all, History, OpKind, Outcome, Report, Value};
use crate::{assert_replicas_identical, wait_fully_healthy, Firewall, ProcessCluster, ProcessClusterOptions};
use aerie_client::{Client, ClientOptions, Table};
use aerie_common::{partition_index, ErrorCode, NodeAddr};
use aerie_proto::data::{CheckAndSet, CheckType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Failure detection of the fault tests: beacons every second, lease 3 s, grace 5 s.
pub fn fault_settings() -> Vec<String> {
    [
        "replication.fd_beacon_interval_seconds=1",
        "replication.fd_lease_seconds=3",
        "replication.fd_grace_seconds=5",
        "replication.prepare_timeout_ms=1000",
        "meta_server.lb_interval_ms=500",
        "meta_server.replica_assign_delay_ms_for_dropouts=2000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const SORT_KEY: &[u8] = b"s";

/// `per_partition` hash keys in each of `partitions` partitions.
pub fn keys(partitions: u32, per_partition: usize) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for pidx in 0..partitions {
        keys.extend(
            (0..)
                .map(|i| format!("key{i}").into_bytes())
                .filter(|k| partition_index(k, SORT_KEY, partitions) == pidx)
                .take(per_partition),
        );
    }
    keys
}

/// A client's operations on the keys, recorded in the history, until stopped.
async fn client_loop(
    id: u64,
    table: Table,
    keys: Arc<Vec<Vec<u8>>>,
    history: History,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    asleep: Option<Arc<AtomicBool>>,
) {
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
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    /// Set while the sleeping clients make no operation (see [`HistoryLoad::start`]).
    asleep: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    pub history: History,
}

impl HistoryLoad {
    /// `clients` clients on `table` (each its own session), half of them with a 1 s timeout and
    /// half with the library's default (10 s): retries after long timeouts are where writes were
    /// applied twice. `sleepers` more clients stop making operations while the load is put to
    /// sleep ([`HistoryLoad::sleep`]) and start again when woken: they come back with the routing
    /// they cached before a fault, as most clients of a real cluster do.
    pub async fn start(metas: Vec<NodeAddr>, table: &str, keys: Vec<Vec<u8>>, clients: u64, sleepers: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let asleep = Arc::new(AtomicBool::new(false));
        let history = History::new();
        let keys = Arc::new(keys);
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
            tasks.push(tokio::spawn(client_loop(
                id,
                table,
                keys.clone(),
                history.clone(),
                stop.clone(),
                done.clone(),
                sleeps,
            )));
        }
        HistoryLoad {
            stop,
            done,
            asleep,
            tasks,
            history,
        }
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
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until `more` operations beyond those done now have finished.
    pub async fn wait_for_more(&self, more: u64, timeout: Duration) {
        let target = self.done() + more;
        let done = self.done.clone();
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
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("client task");
        }
        self.history
    }
}

/// A cluster for fault tests: own addresses per process, a firewall, a table, the keys.
pub struct FaultCluster {
    pub cluster: ProcessCluster,
    pub firewall: Firewall,
    pub admin: Client,
    pub table: String,
    pub keys: Vec<Vec<u8>>,
}

async fn app_partitions(admin: &Client, table: &str) -> u32 {
    admin.query_config(table).await.map_or(1, |a| a.info.partition_count)
}

/// What a fault test found.
pub struct FaultReport {
    pub history: Report,
    pub ops_ok: usize,
    pub ops_unknown: usize,
    pub records: u64,
}

impl FaultCluster {
    /// Starts the cluster with `options` (own addresses forced on) and creates the table.
    pub async fn start(mut options: ProcessClusterOptions, partitions: u32) -> Self {
        options.own_addresses = true;
        let firewall = Firewall::new();
        let cluster = ProcessCluster::start(options);
        let admin = cluster.client(Duration::from_secs(30));
        cluster.wait_all_alive(&admin, Duration::from_secs(60)).await;
        let table = "faults".to_string();
        admin
            .create_table(&table, partitions, 3)
            .await
            .expect("create the table");
        wait_fully_healthy(&admin, &table, Duration::from_secs(60)).await;
        FaultCluster {
            cluster,
            firewall,
            admin,
            table,
            keys: keys(partitions, 3),
        }
    }

    /// `clients` clients that never pause, and as many that sleep through faults.
    pub async fn load(&self, clients: u64) -> HistoryLoad {
        HistoryLoad::start(
            self.cluster.meta_addrs.clone(),
            &self.table,
            self.keys.clone(),
            clients,
            clients,
        )
        .await
    }

    /// Waits (bounded) until the meta has moved every primary away from replica server `i` and
    /// declared it dead: the fault reached past the grace period.
    pub async fn wait_primaries_moved_off(&self, i: usize, timeout: Duration) {
        let addr = self.cluster.replica_addrs[i];
        let (admin, table) = (&self.admin, &self.table);
        crate::wait_until(
            "the meta to move every primary off the faulty server",
            timeout,
            || async move {
                let app = admin.query_config(table).await.map_err(|e| e.to_string())?;
                let left = app.partitions.iter().filter(|p| p.primary == Some(addr)).count();
                let nodes = admin.list_nodes().await.map_err(|e| e.to_string())?;
                let dead = nodes
                    .iter()
                    .any(|n| n.address == addr && n.status == aerie_proto::meta::NodeStatus::Unalive);
                if left == 0 && dead {
                    Ok(())
                } else {
                    Err(format!("{left} primaries still on {addr}; declared dead: {dead}"))
                }
            },
        )
        .await
    }

    /// Waits (bounded) until every partition led by another server no longer has replica server
    /// `i` as a secondary: their primaries reconfigured around the cut.
    pub async fn wait_removed_as_secondary(&self, i: usize, timeout: Duration) {
        let addr = self.cluster.replica_addrs[i];
        let (admin, table) = (&self.admin, &self.table);
        crate::wait_until("the other primaries to remove the cut server", timeout, || async move {
            let app = admin.query_config(table).await.map_err(|e| e.to_string())?;
            let left: Vec<String> = app
                .partitions
                .iter()
                .filter(|p| p.primary != Some(addr) && p.secondaries.contains(&addr))
                .map(|p| p.gpid.to_string())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{addr} is still a secondary of {}", left.join(", ")))
            }
        })
        .await
    }

    /// The replica server holding the most primaries.
    pub async fn busiest_replica(&self) -> usize {
        let app = self.admin.query_config(&self.table).await.expect("the table");
        let count = |addr: &NodeAddr| app.partitions.iter().filter(|p| p.primary == Some(*addr)).count();
        (0..self.cluster.replica_addrs.len())
            .max_by_key(|i| count(&self.cluster.replica_addrs[*i]))
            .expect("replica servers")
    }

    fn ip(addr: NodeAddr) -> std::net::IpAddr {
        addr.socket_addr().ip()
    }

    /// Cuts replica server `i` from every meta server (its peers still reach it).
    pub fn cut_from_meta(&self, i: usize) {
        for meta in &self.cluster.meta_addrs {
            self.firewall
                .cut(Self::ip(self.cluster.replica_addrs[i]), Self::ip(*meta));
        }
    }

    /// Cuts replica server `i` from every other replica server (the meta still reaches it).
    pub fn cut_from_peers(&self, i: usize) {
        let me = Self::ip(self.cluster.replica_addrs[i]);
        for (j, peer) in self.cluster.replica_addrs.iter().enumerate() {
            if j != i {
                self.firewall.cut(me, Self::ip(*peer));
            }
        }
    }

    /// Ends the faults: heals every link, resumes and restarts what is stopped; then stops the
    /// load, waits until the table is fully healthy, reads every key once more (recorded), and
    /// checks the history and the replicas.
    pub async fn finish(mut self, load: HistoryLoad) -> FaultReport {
        self.firewall.heal();
        for replica in &mut self.cluster.replicas {
            replica.resume();
            if !replica.is_running() {
                replica.restart();
            }
        }
        let history = load.stop().await;
        wait_fully_healthy(&self.admin, &self.table, Duration::from_secs(120)).await;
        let reader = Client::new(
            self.cluster.meta_addrs.clone(),
            ClientOptions {
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .expect("client");
        let table = reader.table(&self.table).await.expect("the table");
        for key in &self.keys {
            let pending = history.invoke(u64::MAX, key, OpKind::Read { value: None });
            match table.get(key, SORT_KEY).await {
                Ok(value) => history.complete(pending, Outcome::Ok(OpKind::Read { value })),
                Err(e) => panic!("reading {} after healing failed: {e}", String::from_utf8_lossy(key)),
            }
        }
        // A crash must never leave a replica that cannot be opened again.
        for replica in &self.cluster.replicas {
            let log = replica.log_tail(100_000);
            let failed: Vec<&str> = log.lines().filter(|l| l.contains("cannot open replica")).collect();
            assert!(
                failed.is_empty(),
                "{} could not reopen a replica: {failed:?}",
                replica.name
            );
        }
        let (ops_ok, ops_unknown) = history.counts();
        let report = check_all(&history.per_key(), 5_000_000);
        for (key, _) in &report.violations {
            let pidx = partition_index(key, SORT_KEY, app_partitions(&self.admin, &self.table).await);
            eprintln!(
                "operations on {} (partition {pidx}):\n{}",
                String::from_utf8_lossy(key),
                history.dump_key(key)
            );
            if let Some(crate::history::CheckError::NotLinearizable { stuck_at, .. }) =
                report.violations.iter().find(|(k, _)| k == key).map(|(_, e)| e)
            {
                for line in stuck_at {
                    if let Some(value) = line.split("read -> \"").nth(1).and_then(|v| v.split('"').next()) {
                        eprintln!("who wrote {value}:\n{}", history.find_value(value.as_bytes()));
                    }
                }
            }
        }
        let app = self.admin.query_config(&self.table).await.expect("the table");
        let records = assert_replicas_identical(&self.admin, &app).await;
        FaultReport {
            history: report,
            ops_ok,
            ops_unknown,
            records,
        }
    }
}

impl FaultReport {
    /// Panics unless the history is linearizable; returns a line of figures.
    pub fn assert_linearizable(&self, what: &str) -> String {
        assert!(self.history.is_linearizable(), "{what}: {}", self.history.describe());
        assert!(self.ops_ok > 0, "{what}: no operation succeeded");
        format!(
            "{what}: {} keys linearizable, {} operations ok, {} with unknown outcome, replicas identical ({} records)",
            self.history.keys, self.ops_ok, self.ops_unknown, self.records
        )
    }
}
