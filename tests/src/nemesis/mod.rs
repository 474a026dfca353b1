//! Fault tests on real processes: a cluster where every process has its own loopback address,
//! clients that record every operation in a [`History`], the faults (SIGKILL, SIGSTOP past the
//! grace period, links cut with nftables, a meta leader killed, a rolling restart), and the checks
//! at the end: every key's history linearizable, nothing acknowledged lost, replicas identical.
//!
//! ```text
//!   HistoryLoad: clients (short and default timeouts) ── read / write / check_and_set ──► History
//!   FaultCluster::inject(Fault): SIGKILL | SIGSTOP / SIGCONT | Firewall::cut(a, b) | restart ──► heal
//!   check(load): wait fully healthy ─► read every key ─► check_all(history) ─► replica checksums
//! ```
//!
//! A cluster lives through many checks: `scripts/chaos.sh` starts a fresh load on fresh keys for
//! every round of faults and checks each round's history on its own.

mod faults;
mod load;

pub use faults::Fault;
pub use load::{HistoryLoad, SORT_KEY};

use crate::history::{check_all, OpKind, Outcome, Report};
use crate::{assert_replicas_identical, wait_fully_healthy, Firewall, ProcessCluster, ProcessClusterOptions};
use aerie_client::{Client, ClientOptions};
use aerie_common::{partition_index, NodeAddr};
use std::time::Duration;

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

/// `per_partition` hash keys in each of `partitions` partitions, named `{prefix}{i}`.
pub fn keys_named(prefix: &str, partitions: u32, per_partition: usize) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for pidx in 0..partitions {
        keys.extend(
            (0..)
                .map(|i| format!("{prefix}{i}").into_bytes())
                .filter(|k| partition_index(k, SORT_KEY, partitions) == pidx)
                .take(per_partition),
        );
    }
    keys
}

/// `per_partition` hash keys in each of `partitions` partitions.
pub fn keys(partitions: u32, per_partition: usize) -> Vec<Vec<u8>> {
    keys_named("key", partitions, per_partition)
}

/// A cluster for fault tests: own addresses per process, a firewall, a table, the keys.
pub struct FaultCluster {
    pub cluster: ProcessCluster,
    pub firewall: Firewall,
    pub admin: Client,
    pub table: String,
    pub keys: Vec<Vec<u8>>,
    /// The replica servers' grace period (from the settings; 5 s when not set).
    pub grace: Duration,
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
        let grace = options
            .settings
            .iter()
            .rev()
            .find_map(|s| s.strip_prefix("replication.fd_grace_seconds="))
            .map_or(Duration::from_secs(5), |v| {
                Duration::from_secs(v.parse().expect("fd_grace_seconds is a number"))
            });
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
            grace,
        }
    }

    /// The cluster of most fault tests: one meta and `replica_servers` replica servers with
    /// [`fault_settings`], and a table of 8 partitions.
    pub async fn with_replica_servers(replica_servers: usize) -> Self {
        let options = ProcessClusterOptions {
            replica_servers,
            settings: fault_settings(),
            ..Default::default()
        };
        Self::start(options, 8).await
    }

    /// `clients` clients that never pause, and as many that sleep through faults.
    pub async fn load(&self, clients: u64) -> HistoryLoad {
        self.load_on(self.keys.clone(), clients).await
    }

    /// The same on other keys (a round of `scripts/chaos.sh`).
    pub async fn load_on(&self, keys: Vec<Vec<u8>>, clients: u64) -> HistoryLoad {
        HistoryLoad::start(self.cluster.meta_addrs.clone(), &self.table, keys, clients, clients).await
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
        self.busiest_replica_with_count().await.0
    }

    /// The replica server holding the most primaries, and how many it holds.
    pub async fn busiest_replica_with_count(&self) -> (usize, usize) {
        let app = self.admin.query_config(&self.table).await.expect("the table");
        let count = |addr: &NodeAddr| app.partitions.iter().filter(|p| p.primary == Some(*addr)).count();
        (0..self.cluster.replica_addrs.len())
            .map(|i| (i, count(&self.cluster.replica_addrs[i])))
            .max_by_key(|(_, n)| *n)
            .expect("replica servers")
    }

    /// A replica server's name and address, for log lines.
    pub fn replica_name(&self, i: usize) -> String {
        format!("{} ({})", self.cluster.replicas[i].name, self.cluster.replica_addrs[i])
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

    /// Ends the faults (heals every link, resumes and restarts what is stopped) and checks, as
    /// [`FaultCluster::check`] does.
    pub async fn finish(mut self, load: HistoryLoad) -> FaultReport {
        self.firewall.heal();
        for replica in &mut self.cluster.replicas {
            replica.resume();
            if !replica.is_running() {
                replica.restart();
            }
        }
        self.check(load).await
    }

    /// Stops the load, waits until the table is fully healthy, reads every key of the load once
    /// more (recorded), and checks the history and the replicas; panics if a replica server
    /// logged that it could not reopen a replica.
    pub async fn check(&self, load: HistoryLoad) -> FaultReport {
        let keys = load.keys();
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
        for key in keys.iter() {
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
