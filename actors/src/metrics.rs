//! Metrics of the meta server and the replica servers, registered once per process. Replica metrics
//! carry a `node` label because `--role all` runs several replica servers in one process.

use prometheus::{
    exponential_buckets, register_counter_vec, register_gauge_vec, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec, CounterVec, GaugeVec, HistogramVec,
    IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

pub static REPLICA_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_requests_total",
        "Client requests served by primaries, by operation and outcome.",
        &["node", "op", "outcome"]
    )
    .expect("metric registers once")
});

pub static REPLICA_REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "aerie_replica_request_duration_seconds",
        "Time from a client request's arrival at the primary to its answer, by table and operation.",
        &["table", "op"],
        exponential_buckets(0.000_05, 2.0, 18).expect("valid buckets")
    )
    .expect("metric registers once")
});

pub static REPLICA_COUNT: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_replica_replicas",
        "Replicas hosted by a replica server, by role.",
        &["node", "role"]
    )
    .expect("metric registers once")
});

pub static LOG_WRITTEN_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_log_written_bytes_total",
        "Bytes appended to mutation logs.",
        &["node"]
    )
    .expect("metric registers once")
});

pub static LOG_GROUP_COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_log_group_commits_total",
        "Group commits (one write and, in fsync mode, one fdatasync each) of mutation logs.",
        &["node"]
    )
    .expect("metric registers once")
});

pub static MUTATIONS_COMMITTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_mutations_committed_total",
        "Mutations committed and applied, by role of the replica that applied them.",
        &["node", "role"]
    )
    .expect("metric registers once")
});

pub static LEARN_ROUNDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_learn_rounds_total",
        "Learning rounds of learners on this node, by source (cache, log, checkpoint).",
        &["node", "source"]
    )
    .expect("metric registers once")
});

pub static LEARN_BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_learn_bytes_total",
        "Bytes learners on this node received, by source (a checkpoint copy counts each chunk as it arrives).",
        &["node", "source"]
    )
    .expect("metric registers once")
});

pub static LEARN_COMPLETED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_replica_learn_completed_total",
        "Learners on this node that caught up and asked to become secondaries.",
        &["node"]
    )
    .expect("metric registers once")
});

pub static META_LEADER: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aerie_meta_leader",
        "1 while this meta server leads (serves the cluster map), 0 while it stands by."
    )
    .expect("metric registers once")
});

pub static META_STORE_AVAILABLE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aerie_meta_store_available",
        "1 while the meta store takes writes (ZooKeeper connected), 0 otherwise."
    )
    .expect("metric registers once")
});

pub static META_LEVEL: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_meta_function_level",
        "1 for the meta level in force (fl_blind, fl_freezed, fl_steady, fl_lively), 0 for the others.",
        &["level"]
    )
    .expect("metric registers once")
});

pub static META_CURE_ACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_meta_cure_actions_total",
        "Actions the cure decided, by kind, and whether it took them or the meta level held them back.",
        &["action", "outcome"]
    )
    .expect("metric registers once")
});

pub static META_TABLES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("aerie_meta_tables", "Available tables known to the meta server.")
        .expect("metric registers once")
});

pub static META_PARTITIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("aerie_meta_partitions", "Partitions of available tables.").expect("metric registers once")
});

pub static META_PARTITION_HEALTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_meta_partitions_by_health",
        "Partitions of each available table by health class.",
        &["table", "health"]
    )
    .expect("metric registers once")
});

pub static META_NODES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_meta_nodes",
        "Replica servers known to the meta server, by status.",
        &["status"]
    )
    .expect("metric registers once")
});

pub static META_STORE_WRITES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_meta_store_writes_total",
        "Transactions written to the meta store, by outcome.",
        &["outcome"]
    )
    .expect("metric registers once")
});

pub static META_REPLICA_STDDEV: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "aerie_meta_replicas_per_node_stddev",
        "Standard deviation of replica counts across alive nodes, by kind (primary, total).",
        &["kind"]
    )
    .expect("metric registers once")
});

pub static META_BALANCE_OPERATIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "aerie_meta_balance_operations",
        "Moves the balancer would still make (planned and under way); -1 while a node has not reported."
    )
    .expect("metric registers once")
});

pub static META_BALANCE_MOVES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_meta_balance_moves_total",
        "Balance moves (balancer, operator and node evacuation), by kind and outcome (started, done, given_up).",
        &["kind", "outcome"]
    )
    .expect("metric registers once")
});

pub static META_SELF_FREEZES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "aerie_meta_self_freezes_total",
        "Times the meta froze itself because too few nodes were alive."
    )
    .expect("metric registers once")
});

pub static ROCKSDB_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_rocksdb_size_bytes",
        "RocksDB sizes summed over a replica server's replicas: memtables, SST files, and the bytes compaction is estimated to rewrite.",
        &["node", "kind"]
    )
    .expect("metric registers once")
});

pub static ROCKSDB_WRITE_STOPPED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_rocksdb_stalled_replicas",
        "Replicas whose RocksDB stops or slows writes right now (too many L0 files, memtables or pending compaction bytes).",
        &["node"]
    )
    .expect("metric registers once")
});

pub static ROCKSDB_STALL_SECONDS: LazyLock<CounterVec> = LazyLock::new(|| {
    register_counter_vec!(
        "aerie_rocksdb_write_stall_seconds_total",
        "Time writes spent stalled by RocksDB, summed over a replica server's replicas.",
        &["node"]
    )
    .expect("metric registers once")
});

pub static ROCKSDB_BLOCK_CACHE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "aerie_rocksdb_block_cache_lookups_total",
        "Block cache lookups of a replica server's replicas, by outcome (hit, miss).",
        &["node", "outcome"]
    )
    .expect("metric registers once")
});

pub static ROCKSDB_BLOCK_CACHE_USAGE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_rocksdb_block_cache_usage_bytes",
        "Bytes in the block cache the replica servers of this process share.",
        &["node"]
    )
    .expect("metric registers once")
});

pub static DISK_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_replica_disk_bytes",
        "Capacity and available bytes of the file system of each data dir.",
        &["node", "dir", "kind"]
    )
    .expect("metric registers once")
});

pub static META_NODE_ALIVE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_meta_node_alive",
        "Whether the meta server sees each replica server it knows alive (1) or not (0).",
        &["node"]
    )
    .expect("metric registers once")
});

pub static META_WORK_IN_PROGRESS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "aerie_meta_work_in_progress",
        "Partitions with work under way: moves (balancer and operator) and secondaries being added (learning).",
        &["kind"]
    )
    .expect("metric registers once")
});

/// Makes the meta server's labelled counters exist at zero before the first event, so that a rate
/// or an increase over them sees it begin.
pub fn register_meta_series() {
    for action in [
        "assign_primary",
        "downgrade_to_secondary",
        "upgrade_to_primary",
        "drop_primary",
        "add_secondary",
        "remove_secondary",
    ] {
        for outcome in ["taken", "held_back"] {
            META_CURE_ACTIONS.with_label_values(&[action, outcome]);
        }
    }
    for outcome in ["ok", "ambiguous", "failed"] {
        META_STORE_WRITES.with_label_values(&[outcome]);
    }
    for kind in ["move_pri", "copy_pri", "copy_sec"] {
        for outcome in ["done", "given_up"] {
            META_BALANCE_MOVES.with_label_values(&[kind, outcome]);
        }
    }
    META_SELF_FREEZES.get();
    for kind in ["moves", "adding_secondaries"] {
        META_WORK_IN_PROGRESS.with_label_values(&[kind]).set(0);
    }
}

/// The same for one replica server's series.
pub fn register_replica_series(node: &str) {
    for source in ["cache", "log", "checkpoint"] {
        LEARN_ROUNDS.with_label_values(&[node, source]);
        LEARN_BYTES.with_label_values(&[node, source]);
    }
    LEARN_COMPLETED.with_label_values(&[node]);
    LOG_WRITTEN_BYTES.with_label_values(&[node]);
    LOG_GROUP_COMMITS.with_label_values(&[node]);
    for role in ["primary", "secondary", "inactive", "learner"] {
        REPLICA_COUNT.with_label_values(&[node, role]);
    }
    for role in ["primary", "secondary"] {
        MUTATIONS_COMMITTED.with_label_values(&[node, role]);
    }
}
