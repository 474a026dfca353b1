//! The meta service: tables and partition configurations (the cluster map), node liveness (beacons),
//! configuration sync with replica servers, and the operator requests behind the shell.

use aerie_common::{AppId, Ballot, Decree, Gpid, MetaLevel, NodeAddr, WireResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppStatus {
    Available,
    Dropped,
}

impl fmt::Display for AppStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppStatus::Available => "AVAILABLE",
            AppStatus::Dropped => "DROPPED",
        })
    }
}

/// A table (Pegasus: app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub app_id: AppId,
    pub app_name: String,
    pub status: AppStatus,
    pub partition_count: u32,
    pub max_replica_count: u32,
    pub create_time_secs: u64,
    pub drop_time_secs: Option<u64>,
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
}

/// Who serves a partition, at which ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionConfig {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub primary: Option<NodeAddr>,
    pub secondaries: Vec<NodeAddr>,
    pub max_replica_count: u32,
    #[serde(default)]
    pub last_drops: Vec<NodeAddr>,
    pub last_committed_decree: Decree,
}

/// The five health classes of SPEC.md section 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionHealth {
    FullyHealthy,
    WritableUnhealthy,
    ReadableUnwritable,
    Unreadable,
    Dead,
}

impl PartitionConfig {
    /// A partition with no replica yet.
    pub fn empty(gpid: Gpid, max_replica_count: u32) -> Self {
        PartitionConfig {
            gpid,
            ballot: 0,
            primary: None,
            secondaries: Vec::new(),
            max_replica_count,
            last_drops: Vec::new(),
            last_committed_decree: 0,
        }
    }

    /// Every node serving this partition, primary first.
    pub fn members(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.primary.into_iter().chain(self.secondaries.iter().copied())
    }

    pub fn replica_count(&self) -> usize {
        self.primary.iter().count() + self.secondaries.len()
    }

    pub fn is_member(&self, node: NodeAddr) -> bool {
        self.primary == Some(node) || self.secondaries.contains(&node)
    }

    pub fn health(&self) -> PartitionHealth {
        match (self.primary, self.secondaries.len()) {
            (None, 0) => PartitionHealth::Dead,
            (None, _) => PartitionHealth::Unreadable,
            (Some(_), n) if n + 1 >= self.max_replica_count as usize => PartitionHealth::FullyHealthy,
            (Some(_), 0) => PartitionHealth::ReadableUnwritable,
            (Some(_), _) => PartitionHealth::WritableUnhealthy,
        }
    }
}

/// Health counts of one table, as `ls -d` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    pub fully_healthy: u32,
    pub unhealthy: u32,
    pub write_unhealthy: u32,
    pub read_unhealthy: u32,
}

impl HealthCounts {
    pub fn of(partitions: &[PartitionConfig]) -> Self {
        let mut counts = HealthCounts::default();
        for partition in partitions {
            let health = partition.health();
            match health {
                PartitionHealth::FullyHealthy => counts.fully_healthy += 1,
                _ => counts.unhealthy += 1,
            }
            if matches!(
                health,
                PartitionHealth::ReadableUnwritable | PartitionHealth::Unreadable | PartitionHealth::Dead
            ) {
                counts.write_unhealthy += 1;
            }
            if matches!(health, PartitionHealth::Unreadable | PartitionHealth::Dead) {
                counts.read_unhealthy += 1;
            }
        }
        counts
    }
}

/// A table and its partition configurations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub info: AppInfo,
    pub partitions: Vec<PartitionConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    Alive,
    Unalive,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeStatus::Alive => "ALIVE",
            NodeStatus::Unalive => "UNALIVE",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub address: NodeAddr,
    pub status: NodeStatus,
    pub primary_count: u32,
    pub secondary_count: u32,
    /// In maintenance until this wall-clock time (seconds since the epoch), if it is.
    #[serde(default)]
    pub maintenance_until_secs: Option<u64>,
}

/// Puts a replica server in maintenance (`on`), for `seconds` (at most, and by default,
/// `meta_server.maintenance_max_seconds`), or takes it out. While on, no new replica goes to it, and
/// its replicas wait for it however long it is down instead of being copied elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeMaintenance {
    pub node: NodeAddr,
    pub on: bool,
    pub seconds: Option<u64>,
}

/// Liveness beacon from a replica server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Beacon {
    pub node: NodeAddr,
    /// Chosen at random when the sending process starts (0: not said): a new value from a node the
    /// meta thinks alive tells it the process restarted within the grace period.
    #[serde(default)]
    pub boot_id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BeaconAck {
    pub is_leader: bool,
    pub leader: Option<NodeAddr>,
    /// The leader's name for this life of the server: it changes whenever the meta declared the
    /// server dead in between (and with every new leader). Configurations made for another
    /// incarnation are ignored.
    #[serde(default)]
    pub incarnation: u64,
}

/// What a replica server holds for one partition, reported in config sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub last_committed_decree: Decree,
    pub last_prepared_decree: Decree,
    /// Bytes the replica's data takes on disk (what a copy of it would move).
    #[serde(default)]
    pub data_bytes: u64,
    /// Set when the replica cannot serve (it failed to open, or its storage failed): the meta
    /// replaces it.
    #[serde(default)]
    pub broken: Option<String>,
}

/// A replica server asks which partitions it should serve, and in which role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigSync {
    pub node: NodeAddr,
    pub replicas: Vec<ReplicaReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigSyncResponse {
    /// Every partition that names this node, with its table.
    pub partitions: Vec<(AppInfo, PartitionConfig)>,
    /// Tables that are gone: the node should close and set aside their replicas.
    pub dropped_apps: Vec<AppId>,
    /// Replicas the node reported that their fully healthy partitions no longer need.
    #[serde(default)]
    pub gc_replicas: Vec<Gpid>,
    /// The incarnation of the node this answer was made for (see [`BeaconAck`]).
    #[serde(default)]
    pub incarnation: u64,
}

/// A change a primary asks the meta to make to its partition's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionChange {
    /// A secondary failed to acknowledge a prepare: go on without it.
    RemoveSecondary(NodeAddr),
    /// A learner caught up: make it a secondary.
    UpgradeLearner(NodeAddr),
    /// Learning on this node was given up; the meta may try again (no configuration change).
    LearnerFailed(NodeAddr),
}

/// From a partition's primary, at the ballot it serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdatePartitionConfig {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub requester: NodeAddr,
    pub change: PartitionChange,
}

/// The current configuration of one partition, with its table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryPartition {
    pub gpid: Gpid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateApp {
    pub app_name: String,
    pub partition_count: u32,
    pub replica_count: u32,
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateAppResponse {
    pub app: AppInfo,
    /// Partitions whose replicas all confirmed they are open and serving.
    pub ready_partitions: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropApp {
    pub app_name: String,
}

/// Brings a dropped table back (within `hold_seconds_for_dropped_app`), under its old name or
/// `new_name`; answers the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecallApp {
    pub app_id: AppId,
    pub new_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListApps {
    pub include_dropped: bool,
}

/// Routing information of one table, for clients and `app NAME -d`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryConfig {
    pub app_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListNodes {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryClusterInfo {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub meta_servers: Vec<NodeAddr>,
    pub primary_meta_server: NodeAddr,
    pub meta_store: String,
    /// `ok`, or why the meta store takes no writes now (e.g. ZooKeeper unreachable).
    pub meta_store_status: String,
    pub zookeeper_hosts: String,
    pub zookeeper_root: String,
    pub meta_function_level: String,
    /// Moves the balancer would make to balance the cluster (-1: not computed yet).
    pub balance_operation_count: i64,
    /// Moves (balancer or operator) under way now, and secondaries being added by the cure.
    #[serde(default)]
    pub moves_in_progress: u32,
    #[serde(default)]
    pub adding_secondaries: u32,
    pub primary_replica_count_stddev: f64,
    pub total_replica_count_stddev: f64,
    pub cluster_name: String,
}

/// The meta level: as set (`stored`) and in force (`effective`, freezed when too few nodes live).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetMetaLevel {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaLevelInfo {
    pub stored: MetaLevel,
    pub effective: MetaLevel,
    /// Why the effective level differs, if it does.
    pub reason: Option<String>,
}

/// Sets the stored meta level; answers the previous one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetMetaLevel {
    pub level: MetaLevel,
}

/// The low-level configuration proposals of the shell's `propose` (Pegasus names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalType {
    AssignPrimary,
    UpgradeToPrimary,
    AddSecondary,
    UpgradeToSecondary,
    DowngradeToSecondary,
    DowngradeToInactive,
    Remove,
}

impl std::str::FromStr for ProposalType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "ASSIGN_PRIMARY" => ProposalType::AssignPrimary,
            "UPGRADE_TO_PRIMARY" => ProposalType::UpgradeToPrimary,
            "ADD_SECONDARY" => ProposalType::AddSecondary,
            "UPGRADE_TO_SECONDARY" => ProposalType::UpgradeToSecondary,
            "DOWNGRADE_TO_SECONDARY" => ProposalType::DowngradeToSecondary,
            "DOWNGRADE_TO_INACTIVE" => ProposalType::DowngradeToInactive,
            "REMOVE" => ProposalType::Remove,
            _ => {
                return Err(format!(
                    "unknown proposal '{text}': ASSIGN_PRIMARY, UPGRADE_TO_PRIMARY, ADD_SECONDARY, UPGRADE_TO_SECONDARY, DOWNGRADE_TO_SECONDARY, DOWNGRADE_TO_INACTIVE or REMOVE"
                ))
            }
        })
    }
}

/// An operator's proposal for one partition, carried out through the cure's path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Propose {
    pub gpid: Gpid,
    pub kind: ProposalType,
    /// The node that would carry it out (normally the primary).
    pub target: NodeAddr,
    /// The node it is about.
    pub node: NodeAddr,
    /// Skip the checks that the target is the primary and that the meta level allows it.
    pub force: bool,
}

/// The balancer's moves (SPEC.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MoveKind {
    /// The primary and a secondary swap roles: no data copied.
    MovePri,
    /// The primary moves to a node that does not serve the partition: it learns, then takes over.
    CopyPri,
    /// A secondary moves to a node that does not serve the partition: it learns, then replaces it.
    CopySec,
}

impl MoveKind {
    pub fn name(self) -> &'static str {
        match self {
            MoveKind::MovePri => "move_pri",
            MoveKind::CopyPri => "copy_pri",
            MoveKind::CopySec => "copy_sec",
        }
    }

    /// Whether the move copies the partition's data to a new node.
    pub fn copies_data(self) -> bool {
        self != MoveKind::MovePri
    }
}

impl fmt::Display for MoveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MoveKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "move_pri" => Ok(MoveKind::MovePri),
            "copy_pri" => Ok(MoveKind::CopyPri),
            "copy_sec" => Ok(MoveKind::CopySec),
            _ => Err(format!("unknown move '{text}': move_pri, copy_pri or copy_sec")),
        }
    }
}

/// One move of one partition's replica from a node to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BalanceMove {
    pub gpid: Gpid,
    pub kind: MoveKind,
    pub from: NodeAddr,
    pub to: NodeAddr,
}

impl fmt::Display for BalanceMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} -> {}", self.kind, self.gpid, self.from, self.to)
    }
}

/// The shell's `balance`: one manual move, carried out at level steady.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Balance {
    pub the_move: BalanceMove,
}

/// What the balancer would do now, without doing it (the shell's `balance_plan`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryBalancePlan {}

/// A planned move and the data it would copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMove {
    pub the_move: BalanceMove,
    pub app_name: String,
    /// The partition's size as its primary last reported it, for moves that copy data.
    pub copy_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancePlan {
    /// Why the balancer would not act on this plan now, if it would not (level, unhealthy partitions).
    pub blocked: Option<String>,
    pub moves: Vec<PlannedMove>,
    /// Moves under way now.
    pub in_progress: Vec<BalanceMove>,
    /// The fewest copies any plan needs, per table summed (a planner that copies more wastes work).
    pub copy_lower_bound: u64,
}

/// Empties replica servers so that they can be stopped (`offline_node`): black-lists them for new
/// replicas, moves their primaries away and copies their replicas elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfflineNodes {
    pub nodes: Vec<NodeAddr>,
    /// Only run the pre-flight checks.
    pub check_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineCheck {
    /// What stops the operation; empty when it may go ahead.
    pub problems: Vec<String>,
    /// What the operator should know.
    pub notes: Vec<String>,
    /// Whether the nodes are now being emptied.
    pub started: bool,
}

/// Stops emptying nodes and takes them off the black list (they may receive replicas again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelOffline {
    pub nodes: Vec<NodeAddr>,
}

/// How far the nodes being emptied are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryOfflineProgress {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeavingNode {
    pub node: NodeAddr,
    pub alive: bool,
    pub primaries: u32,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineProgress {
    pub nodes: Vec<LeavingNode>,
    pub moves_in_progress: u32,
    /// Partitions, over every table, that are not fully healthy.
    pub unhealthy_partitions: u32,
    /// Why nothing moves now, if nothing can.
    pub blocked: Option<String>,
}

/// Forgets a replica server that is not alive and holds no replica (`remove_node`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveNode {
    pub node: NodeAddr,
}

/// Dead partitions (no replica alive), what their former replicas reported, and which to trust.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DddDiagnose {
    pub gpid: Option<Gpid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedReplica {
    pub node: NodeAddr,
    pub alive: bool,
    /// (ballot, last committed decree, last prepared decree), if the node reported its replica.
    pub reported: Option<(Ballot, Decree, Decree)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DddPartition {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub dropped: Vec<DroppedReplica>,
    pub recommended_primary: Option<NodeAddr>,
    /// What the cure does or waits for.
    pub state: String,
}

/// Rebuild the cluster map from the replica servers' replicas (`recover`); only a meta started with
/// `recover_from_replica_server = true` over an empty store accepts it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recover {
    pub nodes: Vec<NodeAddr>,
    /// Go on without nodes that do not answer (otherwise any such node fails the recovery).
    pub skip_bad_nodes: bool,
    /// Recover the tables even if some partitions have no replica left (they come back empty).
    pub skip_lost_partitions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverNode {
    pub node: NodeAddr,
    /// Replicas it reported, or why it could not be asked.
    pub result: Result<usize, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverReport {
    pub nodes: Vec<RecoverNode>,
    pub tables: Vec<String>,
    pub partitions: u32,
    pub lost_partitions: Vec<Gpid>,
    pub next_app_id: AppId,
}

crate::rpc! { "meta";
    Beacon => WireResult<BeaconAck>,
    UpdatePartitionConfig => WireResult<PartitionConfig>,
    QueryPartition => WireResult<(AppInfo, PartitionConfig)>,
    ConfigSync => WireResult<ConfigSyncResponse>,
    CreateApp => WireResult<CreateAppResponse>,
    DropApp => WireResult<()>,
    RecallApp => WireResult<AppInfo>,
    ListApps => WireResult<Vec<AppState>>,
    QueryConfig => WireResult<AppState>,
    ListNodes => WireResult<Vec<NodeInfo>>,
    QueryClusterInfo => WireResult<ClusterInfo>,
    GetMetaLevel => WireResult<MetaLevelInfo>,
    SetMetaLevel => WireResult<MetaLevel>,
    Propose => WireResult<()>,
    DddDiagnose => WireResult<Vec<DddPartition>>,
    Balance => WireResult<()>,
    QueryBalancePlan => WireResult<BalancePlan>,
    OfflineNodes => WireResult<OfflineCheck>,
    CancelOffline => WireResult<()>,
    QueryOfflineProgress => WireResult<OfflineProgress>,
    RemoveNode => WireResult<()>,
    Recover => WireResult<RecoverReport>,
    NodeMaintenance => WireResult<Option<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> NodeAddr {
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    fn config(primary: Option<u16>, secondaries: &[u16]) -> PartitionConfig {
        PartitionConfig {
            primary: primary.map(node),
            secondaries: secondaries.iter().copied().map(node).collect(),
            ..PartitionConfig::empty(Gpid::new(1, 0), 3)
        }
    }

    #[test]
    fn health_classes_follow_the_spec() {
        assert_eq!(config(Some(1), &[2, 3]).health(), PartitionHealth::FullyHealthy);
        assert_eq!(config(Some(1), &[2]).health(), PartitionHealth::WritableUnhealthy);
        assert_eq!(config(Some(1), &[]).health(), PartitionHealth::ReadableUnwritable);
        assert_eq!(config(None, &[2]).health(), PartitionHealth::Unreadable);
        assert_eq!(config(None, &[]).health(), PartitionHealth::Dead);
    }

    #[test]
    fn a_single_replica_table_is_healthy_with_its_primary() {
        let mut single = config(Some(1), &[]);
        single.max_replica_count = 1;
        assert_eq!(single.health(), PartitionHealth::FullyHealthy);
        single.primary = None;
        assert_eq!(single.health(), PartitionHealth::Dead);
    }

    #[test]
    fn health_counts_add_up() {
        let partitions = vec![
            config(Some(1), &[2, 3]),
            config(Some(1), &[2]),
            config(Some(1), &[]),
            config(None, &[2]),
            config(None, &[]),
        ];
        let counts = HealthCounts::of(&partitions);
        assert_eq!(
            counts,
            HealthCounts {
                fully_healthy: 1,
                unhealthy: 4,
                write_unhealthy: 3,
                read_unhealthy: 2
            }
        );
    }
}
