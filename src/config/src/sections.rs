//! The configuration sections and their validation.

pub use aerie_common::MetaLevel;
use aerie_common::NodeAddr;
use serde::{Deserialize, Serialize};

/// Declares the text names of a config enum: parsing lists the choices when a value is unknown.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                match text.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("unknown value '{}', expected one of: {}", text, [$($text),+].join(", "))),
                }
            }
        }
        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                Self::try_from(text.to_string())
            }
        }
    };
}

text_enum!(MetaStoreKind { Embedded => "embedded", Zookeeper => "zookeeper" });
text_enum!(LogSyncMode { Fsync => "fsync", None => "none" });

/// The whole configuration of one `aerie` process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AerieConfig {
    pub meta_server: MetaServerConfig,
    pub replication: ReplicationConfig,
    pub collector: CollectorConfig,
    pub zookeeper: ZookeeperConfig,
    pub network: NetworkConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MetaStoreKind {
    /// A local store under `meta_server.data_dir`; for development and single-meta clusters.
    Embedded,
    /// ZooKeeper at `zookeeper.hosts_list`, under `meta_server.cluster_root`.
    Zookeeper,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaServerConfig {
    pub address: String,
    pub server_list: String,
    pub cluster_name: String,
    pub cluster_root: String,
    pub meta_store: MetaStoreKind,
    pub data_dir: String,
    pub node_live_percentage_threshold_for_update: u32,
    pub min_live_node_count_for_unfreeze: u32,
    pub recover_from_replica_server: bool,
    pub meta_function_level_on_start: MetaLevel,
    pub replica_assign_delay_ms_for_dropouts: u64,
    pub add_secondary_enable_flow_control: bool,
    pub add_secondary_max_count_for_one_node: u32,
    pub lb_interval_ms: u64,
    pub hold_seconds_for_dropped_app: u64,
    pub max_partition_count: u32,
    pub create_wait_ready_ms: u64,
    /// The longest a replica server stays in maintenance (`node_maintenance`); normal cure
    /// applies after it.
    pub maintenance_max_seconds: u64,
}

impl Default for MetaServerConfig {
    fn default() -> Self {
        MetaServerConfig {
            address: "127.0.0.1:34601".into(),
            server_list: "127.0.0.1:34601".into(),
            cluster_name: "aerie".into(),
            cluster_root: "/aerie/default".into(),
            meta_store: MetaStoreKind::Embedded,
            data_dir: "./data/meta".into(),
            node_live_percentage_threshold_for_update: 50,
            min_live_node_count_for_unfreeze: 3,
            recover_from_replica_server: false,
            meta_function_level_on_start: MetaLevel::Steady,
            replica_assign_delay_ms_for_dropouts: 300_000,
            add_secondary_enable_flow_control: true,
            add_secondary_max_count_for_one_node: 10,
            lb_interval_ms: 10_000,
            hold_seconds_for_dropped_app: 604_800,
            max_partition_count: 4096,
            create_wait_ready_ms: 10_000,
            maintenance_max_seconds: 3_600,
        }
    }
}

impl MetaServerConfig {
    pub fn address(&self) -> NodeAddr {
        self.address.parse().expect("validated")
    }
    pub fn server_list(&self) -> Vec<NodeAddr> {
        NodeAddr::parse_list(&self.server_list).expect("validated")
    }
}

/// How the mutation log makes a group commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogSyncMode {
    /// `fdatasync` once per group commit before anything is acknowledged.
    Fsync,
    /// Leave the data in the OS page cache: survives a process crash, not a machine crash.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    pub address: String,
    pub data_dirs: String,
    pub fd_check_interval_seconds: u64,
    pub fd_beacon_interval_seconds: u64,
    pub fd_lease_seconds: u64,
    pub fd_grace_seconds: u64,
    pub config_sync_interval_ms: u64,
    pub mutation_2pc_min_replica_count: u32,
    pub log_sync_mode: LogSyncMode,
    pub log_segment_size_mb: u64,
    pub log_gc_threshold_mb: u64,
    pub log_gc_interval_ms: u64,
    pub prepare_timeout_ms: u64,
    pub group_check_interval_ms: u64,
    pub max_value_bytes: u64,
    pub max_key_bytes: u64,
    pub worker_threads: u32,
    pub rocksdb_block_cache_mb: u64,
    pub rocksdb_write_buffer_mb: u64,
    pub rocksdb_memtable_budget_mb: u64,
    /// Files one replica's RocksDB keeps open at most; the process's open-file limit (systemd
    /// `LimitNOFILE`) must cover it times the replicas a server holds, plus sockets and logs.
    pub rocksdb_max_open_files: u32,
    pub learn_cache_mutations: u64,
    pub learn_rate_limit_mb: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            address: "127.0.0.1:34801".into(),
            data_dirs: "default:./data/replica".into(),
            fd_check_interval_seconds: 1,
            fd_beacon_interval_seconds: 1,
            fd_lease_seconds: 8,
            fd_grace_seconds: 10,
            config_sync_interval_ms: 30_000,
            mutation_2pc_min_replica_count: 2,
            log_sync_mode: LogSyncMode::Fsync,
            log_segment_size_mb: 64,
            log_gc_threshold_mb: 256,
            log_gc_interval_ms: 10_000,
            prepare_timeout_ms: 5_000,
            group_check_interval_ms: 10_000,
            max_value_bytes: 4 * 1024 * 1024,
            max_key_bytes: 32 * 1024,
            worker_threads: 0,
            rocksdb_block_cache_mb: 256,
            rocksdb_write_buffer_mb: 16,
            rocksdb_memtable_budget_mb: 512,
            rocksdb_max_open_files: 256,
            learn_cache_mutations: 10_000,
            learn_rate_limit_mb: 100,
        }
    }
}

/// One entry of `data_dirs`: a tag and a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    pub tag: String,
    pub path: String,
}

impl ReplicationConfig {
    pub fn address(&self) -> NodeAddr {
        self.address.parse().expect("validated")
    }

    /// `data_dirs` parsed: `tag:/path,tag2:/path2` (a bare path gets the tag `default`).
    pub fn data_dirs(&self) -> Result<Vec<DataDir>, String> {
        let mut dirs: Vec<DataDir> = Vec::new();
        for entry in self.data_dirs.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tag, path) = match entry.split_once(':') {
                Some((tag, path)) => (tag.trim(), path.trim()),
                None => ("default", entry),
            };
            if tag.is_empty() || path.is_empty() {
                return Err(format!("entry '{entry}' must be tag:/path"));
            }
            if dirs.iter().any(|d| d.tag == tag || d.path == path) {
                return Err(format!("entry '{entry}' repeats a tag or a path"));
            }
            dirs.push(DataDir {
                tag: tag.to_string(),
                path: path.to_string(),
            });
        }
        if dirs.is_empty() {
            return Err("at least one data dir is needed".into());
        }
        Ok(dirs)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    pub address: String,
    /// The probe table: created by the collector if missing, one probe key per partition.
    pub available_detect_app: String,
    /// Partitions of the probe table when the collector creates it.
    pub available_detect_partition_count: u32,
    /// Seconds between probe rounds (a set, then a get, on every partition of the probe table).
    pub available_detect_interval_seconds: u64,
    /// Bound on one probe call (the set, and the get, each), in milliseconds.
    pub available_detect_timeout_ms: u64,
    /// Failed probes in a row after which a partition is reported at warn.
    pub available_detect_alert_fail_count: u32,
    /// Seconds between gatherings of table statistics from the replica servers.
    pub app_stat_interval_seconds: u64,
    /// Score (standard deviations above the table's mean QPS, rounded up) that makes a round hot.
    pub hot_partition_threshold: u32,
    /// Hot rounds in a row after which a partition is reported hot.
    pub occurrence_threshold: u32,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            address: "127.0.0.1:34101".into(),
            available_detect_app: "__detect".into(),
            available_detect_partition_count: 8,
            available_detect_interval_seconds: 3,
            available_detect_timeout_ms: 1_000,
            available_detect_alert_fail_count: 30,
            app_stat_interval_seconds: 10,
            hot_partition_threshold: 3,
            occurrence_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZookeeperConfig {
    pub hosts_list: String,
    pub timeout_ms: u64,
}

impl Default for ZookeeperConfig {
    fn default() -> Self {
        ZookeeperConfig {
            hosts_list: "127.0.0.1:2181".into(),
            timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    pub max_frame_bytes: u32,
    pub connect_timeout_ms: u64,
    pub rpc_timeout_ms: u64,
    /// The local address outgoing connections are bound to (empty: the system chooses).
    pub source_address: String,
    /// Threads that read and write sockets. 0: in a process with one replica actor thread, the
    /// sockets run on that thread (a frame reaches its actor without waking another thread),
    /// otherwise on one thread of their own. 1..=64: that many threads of their own.
    pub io_threads: u32,
}

impl NetworkConfig {
    /// The validated source address, if one is set.
    pub fn source_ip(&self) -> Option<std::net::IpAddr> {
        self.source_address.parse().ok()
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            max_frame_bytes: 64 * 1024 * 1024,
            connect_timeout_ms: 3_000,
            rpc_timeout_ms: 10_000,
            source_address: String::new(),
            io_threads: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `info,aerie_actors=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

/// A rule of the configuration that does not hold; `key` names the setting to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for '{key}': {reason}")]
pub struct Invalid {
    pub key: &'static str,
    pub reason: String,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> Invalid {
    Invalid {
        key,
        reason: reason.into(),
    }
}

impl AerieConfig {
    /// Checks every cross-field rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), Invalid> {
        let meta = &self.meta_server;
        meta.address
            .parse::<NodeAddr>()
            .map_err(|e| invalid("meta_server.address", e.to_string()))?;
        let list =
            NodeAddr::parse_list(&meta.server_list).map_err(|e| invalid("meta_server.server_list", e.to_string()))?;
        if list.is_empty() {
            return Err(invalid("meta_server.server_list", "at least one meta server is needed"));
        }
        if !meta.cluster_root.starts_with('/') || meta.cluster_root.ends_with('/') {
            return Err(invalid(
                "meta_server.cluster_root",
                format!("'{}' must start with '/' and not end with '/'", meta.cluster_root),
            ));
        }
        if meta.node_live_percentage_threshold_for_update > 100 {
            return Err(invalid(
                "meta_server.node_live_percentage_threshold_for_update",
                "a percentage must be within 0..=100",
            ));
        }
        if meta.max_partition_count == 0 || !meta.max_partition_count.is_power_of_two() {
            return Err(invalid("meta_server.max_partition_count", "must be a power of two"));
        }
        if meta.data_dir.trim().is_empty() {
            return Err(invalid("meta_server.data_dir", "must not be empty"));
        }

        let repl = &self.replication;
        repl.address
            .parse::<NodeAddr>()
            .map_err(|e| invalid("replication.address", e.to_string()))?;
        repl.data_dirs().map_err(|e| invalid("replication.data_dirs", e))?;
        if repl.fd_beacon_interval_seconds == 0 {
            return Err(invalid("replication.fd_beacon_interval_seconds", "must be at least 1"));
        }
        if repl.fd_check_interval_seconds == 0 {
            return Err(invalid("replication.fd_check_interval_seconds", "must be at least 1"));
        }
        if repl.fd_lease_seconds <= 2 * repl.fd_beacon_interval_seconds {
            return Err(invalid(
                "replication.fd_lease_seconds",
                format!(
                    "fd_lease_seconds ({}) must be greater than 2 x fd_beacon_interval_seconds ({})",
                    repl.fd_lease_seconds, repl.fd_beacon_interval_seconds
                ),
            ));
        }
        if repl.fd_grace_seconds <= repl.fd_lease_seconds {
            return Err(invalid(
                "replication.fd_grace_seconds",
                format!(
                    "fd_grace_seconds ({}) must be greater than fd_lease_seconds ({})",
                    repl.fd_grace_seconds, repl.fd_lease_seconds
                ),
            ));
        }
        if repl.mutation_2pc_min_replica_count == 0 {
            return Err(invalid(
                "replication.mutation_2pc_min_replica_count",
                "must be at least 1",
            ));
        }
        if repl.log_gc_interval_ms < 100 {
            return Err(invalid("replication.log_gc_interval_ms", "must be at least 100"));
        }
        if repl.log_segment_size_mb == 0 {
            return Err(invalid("replication.log_segment_size_mb", "must be at least 1"));
        }
        if repl.max_key_bytes == 0 || repl.max_key_bytes > 65_000 {
            return Err(invalid("replication.max_key_bytes", "must be within 1..=65000"));
        }
        if repl.max_value_bytes == 0 || repl.max_value_bytes >= self.network.max_frame_bytes as u64 {
            return Err(invalid(
                "replication.max_value_bytes",
                "must be at least 1 and below network.max_frame_bytes",
            ));
        }
        for (key, value) in [
            ("replication.group_check_interval_ms", repl.group_check_interval_ms),
            ("replication.config_sync_interval_ms", repl.config_sync_interval_ms),
        ] {
            if value < 100 {
                return Err(invalid(key, format!("{value} ms is too short; use at least 100")));
            }
        }
        if meta.lb_interval_ms < 100 {
            return Err(invalid("meta_server.lb_interval_ms", "use at least 100 ms"));
        }
        if !(16..=1_000_000).contains(&repl.rocksdb_max_open_files) {
            return Err(invalid("replication.rocksdb_max_open_files", "use 16 to 1000000"));
        }
        if meta.maintenance_max_seconds == 0 {
            return Err(invalid("meta_server.maintenance_max_seconds", "must be at least 1"));
        }
        if repl.prepare_timeout_ms == 0 {
            return Err(invalid("replication.prepare_timeout_ms", "must be at least 1"));
        }
        if meta.meta_store == MetaStoreKind::Zookeeper {
            let zk = &self.zookeeper;
            if zk.hosts_list.split(',').all(|h| h.trim().is_empty()) {
                return Err(invalid("zookeeper.hosts_list", "name at least one host:port"));
            }
            if !(1_000..=120_000).contains(&zk.timeout_ms) {
                return Err(invalid(
                    "zookeeper.timeout_ms",
                    format!("{} ms is outside 1000..=120000", zk.timeout_ms),
                ));
            }
        }

        self.collector
            .address
            .parse::<NodeAddr>()
            .map_err(|e| invalid("collector.address", e.to_string()))?;
        let col = &self.collector;
        if col.available_detect_app.is_empty() {
            return Err(invalid("collector.available_detect_app", "name the probe table"));
        }
        if !(1..=1024).contains(&col.available_detect_partition_count) {
            return Err(invalid(
                "collector.available_detect_partition_count",
                "must be within 1..=1024",
            ));
        }
        for (key, value) in [
            (
                "collector.available_detect_interval_seconds",
                col.available_detect_interval_seconds,
            ),
            ("collector.available_detect_timeout_ms", col.available_detect_timeout_ms),
            ("collector.app_stat_interval_seconds", col.app_stat_interval_seconds),
            (
                "collector.available_detect_alert_fail_count",
                col.available_detect_alert_fail_count.into(),
            ),
            ("collector.hot_partition_threshold", col.hot_partition_threshold.into()),
            ("collector.occurrence_threshold", col.occurrence_threshold.into()),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.network.max_frame_bytes < 1024 || self.network.max_frame_bytes > 64 * 1024 * 1024 {
            return Err(invalid(
                "network.max_frame_bytes",
                "must be within 1024..=67108864 (64 MiB)",
            ));
        }
        if self.network.rpc_timeout_ms == 0 || self.network.connect_timeout_ms == 0 {
            return Err(invalid("network.rpc_timeout_ms", "timeouts must be at least 1 ms"));
        }
        if self.network.io_threads > 64 {
            return Err(invalid("network.io_threads", "must be within 0..=64"));
        }
        if !self.network.source_address.is_empty() && self.network.source_ip().is_none() {
            return Err(invalid(
                "network.source_address",
                "must be an IP address (e.g. 127.0.0.11), or empty",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zookeeper_meta_needs_hosts_and_a_sane_session_timeout() {
        let mut config = AerieConfig::default();
        config.meta_server.meta_store = MetaStoreKind::Zookeeper;
        assert!(config.validate().is_ok());
        config.zookeeper.timeout_ms = 10;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("zookeeper.timeout_ms"));
        config.zookeeper.timeout_ms = 5_000;
        config.zookeeper.hosts_list = " ".into();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("zookeeper.hosts_list"));
    }

    #[test]
    fn defaults_are_valid() {
        AerieConfig::default().validate().unwrap();
    }

    #[test]
    fn grace_must_exceed_lease() {
        let mut config = AerieConfig::default();
        config.replication.fd_grace_seconds = 8;
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "replication.fd_grace_seconds");
        assert!(err.to_string().contains("must be greater than fd_lease_seconds"));
    }

    #[test]
    fn io_threads_must_be_within_bounds() {
        let mut config = AerieConfig::default();
        config.network.io_threads = 65;
        assert_eq!(config.validate().unwrap_err().key, "network.io_threads");
        for good in [0, 1, 64] {
            config.network.io_threads = good;
            assert!(config.validate().is_ok());
        }
    }

    #[test]
    fn lease_must_exceed_two_beacons() {
        let mut config = AerieConfig::default();
        config.replication.fd_beacon_interval_seconds = 4;
        assert_eq!(config.validate().unwrap_err().key, "replication.fd_lease_seconds");
    }

    #[test]
    fn data_dirs_parse_with_and_without_tags() {
        let repl = ReplicationConfig {
            data_dirs: "ssd1:/a, ssd2:/b".into(),
            ..Default::default()
        };
        let dirs = repl.data_dirs().unwrap();
        assert_eq!(
            dirs[1],
            DataDir {
                tag: "ssd2".into(),
                path: "/b".into()
            }
        );
        let bare = ReplicationConfig {
            data_dirs: "/only".into(),
            ..Default::default()
        };
        assert_eq!(bare.data_dirs().unwrap()[0].tag, "default");
        let dup = ReplicationConfig {
            data_dirs: "a:/x,a:/y".into(),
            ..Default::default()
        };
        assert!(dup.data_dirs().is_err());
    }

    #[test]
    fn bad_addresses_name_their_key() {
        let mut config = AerieConfig::default();
        config.meta_server.server_list = "127.0.0.1:1,garbage".into();
        assert_eq!(config.validate().unwrap_err().key, "meta_server.server_list");
    }
}
