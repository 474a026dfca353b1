//! The faults of the fault tests and of `scripts/chaos.sh`, each injected the same way everywhere:
//! the fault, a wait (bounded) for the cluster to react, the clients' progress through it, and the
//! end of the fault, after which the table is fully healthy again.

use super::{FaultCluster, HistoryLoad};
use crate::{wait_fully_healthy, wait_until};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// SIGKILL of the replica server holding the most primaries; restarted once they moved.
    Kill,
    /// SIGSTOP of the replica server holding the most primaries until the meta moved its roles
    /// and for longer than the grace period; then SIGCONT.
    Stop,
    /// The replica server holding the most primaries cut from every meta until its roles moved.
    CutFromMeta,
    /// The replica server holding the most primaries cut from every other replica server until
    /// the other primaries removed it.
    CutFromPeers,
    /// SIGKILL of the meta leader (needs several metas on ZooKeeper); restarted once another leads.
    MetaLeaderKill,
    /// Every replica server stopped cleanly (SIGTERM) and started again, one at a time.
    RollingRestart,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Kill,
        Fault::Stop,
        Fault::CutFromMeta,
        Fault::CutFromPeers,
        Fault::MetaLeaderKill,
        Fault::RollingRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::CutFromMeta => "cut-meta",
            Fault::CutFromPeers => "cut-peers",
            Fault::MetaLeaderKill => "meta-kill",
            Fault::RollingRestart => "rolling-restart",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Fault::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
            format!("unknown fault {s:?}: one of {}", names.join(", "))
        })
    }
}

/// Long enough for anything the cluster does after a fault.
const REACT: Duration = Duration::from_secs(60);
const PROGRESS: Duration = Duration::from_secs(90);
const HEAL: Duration = Duration::from_secs(120);

impl FaultCluster {
    /// Injects `fault` once under `load` and ends it; returns what was done, for a log line.
    /// Panics (saying what it waited for) when the cluster does not react within the bounds.
    pub async fn inject(&mut self, fault: Fault, load: &HistoryLoad) -> String {
        let what = match fault {
            Fault::Kill => self.kill_busiest(load).await,
            Fault::Stop => self.stop_busiest(load).await,
            Fault::CutFromMeta => self.cut_busiest_from_meta(load).await,
            Fault::CutFromPeers => self.cut_busiest_from_peers(load).await,
            Fault::MetaLeaderKill => self.kill_meta_leader(load).await,
            Fault::RollingRestart => self.rolling_restart(load).await,
        };
        wait_fully_healthy(&self.admin, &self.table, HEAL).await;
        what
    }

    async fn kill_busiest(&mut self, load: &HistoryLoad) -> String {
        let (busiest, primaries) = self.busiest_replica_with_count().await;
        load.sleep();
        self.cluster.replicas[busiest].kill();
        self.wait_primaries_moved_off(busiest, REACT).await;
        load.wake();
        load.wait_for_more(1_000, PROGRESS).await;
        self.cluster.replicas[busiest].restart();
        format!("SIGKILL of {} ({primaries} primaries)", self.replica_name(busiest))
    }

    async fn stop_busiest(&mut self, load: &HistoryLoad) -> String {
        let (busiest, primaries) = self.busiest_replica_with_count().await;
        let stopped = Instant::now();
        load.sleep();
        self.cluster.replicas[busiest].pause();
        self.wait_primaries_moved_off(busiest, REACT).await;
        // The sleeping clients wake with routing from before the fault: their requests queue up
        // in the stopped server's sockets while the new primaries acknowledge newer writes.
        load.wake();
        load.wait_for_more(300, PROGRESS).await;
        // Past the grace period by a few seconds in all, as in the report t42 reproduces.
        let at_least = self.grace + Duration::from_secs(3);
        if let Some(rest) = at_least.checked_sub(stopped.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        self.cluster.replicas[busiest].resume();
        load.wait_for_more(1_000, PROGRESS).await;
        format!(
            "SIGSTOP of {} ({primaries} primaries) for {:.1} s",
            self.replica_name(busiest),
            stopped.elapsed().as_secs_f64()
        )
    }

    async fn cut_busiest_from_meta(&mut self, load: &HistoryLoad) -> String {
        let (busiest, primaries) = self.busiest_replica_with_count().await;
        load.sleep();
        self.cut_from_meta(busiest);
        self.wait_primaries_moved_off(busiest, REACT).await;
        load.wake();
        load.wait_for_more(1_000, PROGRESS).await;
        self.firewall.heal();
        load.wait_for_more(1_000, PROGRESS).await;
        format!(
            "{} ({primaries} primaries) cut from the meta",
            self.replica_name(busiest)
        )
    }

    async fn cut_busiest_from_peers(&mut self, load: &HistoryLoad) -> String {
        let (busiest, primaries) = self.busiest_replica_with_count().await;
        self.cut_from_peers(busiest);
        // The partitions led elsewhere go on without it. (Those it leads cannot write meanwhile:
        // it holds its lease, and its secondaries cannot hear it.)
        self.wait_removed_as_secondary(busiest, REACT).await;
        load.wait_for_more(300, PROGRESS).await;
        self.firewall.heal();
        load.wait_for_more(1_000, PROGRESS).await;
        format!(
            "{} ({primaries} primaries) cut from its peers",
            self.replica_name(busiest)
        )
    }

    async fn kill_meta_leader(&mut self, load: &HistoryLoad) -> String {
        assert!(
            self.cluster.metas.len() > 1,
            "a meta leader failover needs several meta servers on ZooKeeper"
        );
        let leader = self
            .admin
            .cluster_info()
            .await
            .expect("cluster info")
            .primary_meta_server;
        let index = self
            .cluster
            .meta_addrs
            .iter()
            .position(|m| *m == leader)
            .expect("the leader is one of the metas");
        self.cluster.metas[index].kill();
        let admin = &self.admin;
        wait_until("another meta to lead", REACT, || async move {
            match admin.cluster_info().await {
                Ok(info) if info.primary_meta_server != leader => Ok(()),
                Ok(_) => Err("the dead leader is still named".to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        load.wait_for_more(1_000, PROGRESS).await;
        self.cluster.metas[index].restart();
        load.wait_for_more(500, PROGRESS).await;
        format!("SIGKILL of the meta leader {leader}")
    }

    async fn rolling_restart(&mut self, load: &HistoryLoad) -> String {
        for i in 0..self.cluster.replicas.len() {
            let stopped = self.cluster.replicas[i].terminate(Duration::from_secs(30));
            assert!(
                stopped.is_some_and(|s| s.success()),
                "replica server {i} did not stop cleanly: {stopped:?}"
            );
            self.cluster.replicas[i].restart();
            wait_fully_healthy(&self.admin, &self.table, HEAL).await;
            load.wait_for_more(300, PROGRESS).await;
        }
        format!("rolling restart of {} replica servers", self.cluster.replicas.len())
    }
}
