//! Starting each role on the shared network: its actors, its endpoint, and its `/health` answer.

use super::lock::DirLock;
use actix::prelude::*;
use aerie_actors::collector::{Collector, CollectorOptions, GetAppStat, GetProbeReport, GetServerStat};
use aerie_actors::commands::CommandRegistry;
use aerie_actors::meta::guardian::CureKnobs;
use aerie_actors::meta::level::FreezeRule;
use aerie_actors::meta::{GetMetaHelpers, MetaCommand, MetaParams, ServerState, StoreLayout, META_COMMANDS};
use aerie_actors::replica::validate::Limits;
use aerie_actors::replica::{
    MetaLocator, ReplicaCommand, ReplicaOptions, ReplicaStub, ReplicaStubParams, Shutdown, REPLICA_COMMANDS,
};
use aerie_client::{Client, ClientOptions};
use aerie_common::{Clock, NodeAddr, WireResult};
use aerie_config::{AerieConfig, LogSyncMode, MetaStoreKind, ReplicationConfig};
use aerie_metastore::zookeeper::election;
use aerie_metastore::{EmbeddedStore, LeaderView, Leadership, MetaStore, ZkSession, ZookeeperStore};
use aerie_proto::admin::{QueryServerInfo, RemoteCommand, ServerInfo};
use aerie_proto::collector::{QueryAppStat, QueryProbes};
use aerie_rpc::{Endpoint, HealthCheck, Network, ServerHandle};
use aerie_storage::{EngineOptions, LogOptions};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MB: u64 = 1024 * 1024;

/// Process-wide facts every endpoint reports through `QueryServerInfo`.
#[derive(Clone)]
pub struct ProcessInfo {
    pub roles: Vec<String>,
    pub started: Instant,
}

/// Which role's commands an endpoint offers besides the common ones.
pub enum RoleCommands {
    Meta(Addr<ServerState>),
    Replica(Addr<ReplicaStub>),
    Collector(Addr<Collector>),
}

fn server_info_text(info: &ProcessInfo, me: NodeAddr) -> String {
    format!(
        "aerie {} at {me}, roles {}, up {} s",
        env!("CARGO_PKG_VERSION"),
        info.roles.join(","),
        info.started.elapsed().as_secs()
    )
}

/// The remote commands of one endpoint: the common ones and its role's.
pub fn command_registry(me: NodeAddr, info: &ProcessInfo, config: &AerieConfig, role: RoleCommands) -> CommandRegistry {
    let mut registry = CommandRegistry::default();
    let for_info = info.clone();
    registry.register("server-info", "version, roles and uptime of this process", move |_| {
        let text = server_info_text(&for_info, me);
        async move { text }
    });
    let dump = toml::to_string(config).unwrap_or_else(|e| format!("ERR: cannot render the configuration: {e}"));
    registry.register("config-dump", "the configuration this process runs with", move |_| {
        let dump = dump.clone();
        async move { dump }
    });
    match role {
        RoleCommands::Meta(state) => {
            for (name, help) in META_COMMANDS
                .iter()
                .copied()
                .chain([("server-stat", "tables, partitions, nodes and level")])
            {
                let state = state.clone();
                registry.register(name, help, move |args| {
                    let (state, name) = (state.clone(), name.to_string());
                    async move {
                        state
                            .send(MetaCommand { name, args })
                            .await
                            .unwrap_or_else(|e| format!("ERR: {e}"))
                    }
                });
            }
        }
        RoleCommands::Replica(stub) => {
            let stat = ("server-stat", "replicas per role, learning counts and bytes, log bytes");
            for (name, help) in REPLICA_COMMANDS.iter().copied().chain([stat]) {
                let stub = stub.clone();
                registry.register(name, help, move |args| {
                    let (stub, name) = (stub.clone(), name.to_string());
                    async move {
                        stub.send(ReplicaCommand { name, args })
                            .await
                            .unwrap_or_else(|e| format!("ERR: {e}"))
                    }
                });
            }
        }
        RoleCommands::Collector(collector) => {
            registry.register(
                "server-stat",
                "probe rounds, availability, failing partitions",
                move |_| {
                    let collector = collector.clone();
                    async move {
                        collector
                            .send(GetServerStat)
                            .await
                            .unwrap_or_else(|e| format!("ERR: {e}"))
                    }
                },
            );
        }
    }
    registry
}

pub fn add_admin(endpoint: &mut Endpoint, info: &ProcessInfo, commands: CommandRegistry) {
    endpoint.handle::<RemoteCommand, _, _>(move |req| {
        let commands = commands.clone();
        async move { commands.run(&req.name, req.args).await }
    });
    let info = info.clone();
    endpoint.handle::<QueryServerInfo, _, _>(move |_| {
        let info = info.clone();
        async move {
            WireResult::Ok(ServerInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                roles: info.roles.clone(),
                uptime_secs: info.started.elapsed().as_secs(),
            })
        }
    });
}

pub struct MetaRole {
    _server: ServerHandle,
    /// What `/health` answers (readiness for systemd too).
    pub health: HealthCheck,
    _lock: Option<DirLock>,
    /// Keeps the ZooKeeper session (and with it the election node) alive.
    session: Option<ZkSession>,
}

impl MetaRole {
    /// A clean stop: with ZooKeeper, leave the election and close the session now, so that another
    /// meta leads at once instead of after the session timeout.
    pub async fn shutdown(&self) {
        if let Some(session) = &self.session {
            session.close(Duration::from_secs(3)).await;
        }
    }
}

/// Where the ZooKeeper election nodes of the meta servers live.
pub fn election_dir(cluster_root: &str) -> String {
    format!("{}/meta_leader", cluster_root.trim_end_matches('/'))
}

pub async fn start_meta(
    config: &AerieConfig,
    network: &Network,
    clock: Arc<dyn Clock>,
    info: &ProcessInfo,
) -> Result<MetaRole> {
    let meta = &config.meta_server;
    let me = meta.address();
    let (store, lock, session, leadership, loaded): (Arc<dyn MetaStore>, _, _, _, _) = match meta.meta_store {
        MetaStoreKind::Embedded => {
            let dir = Path::new(&meta.data_dir);
            let lock = DirLock::acquire(dir)?;
            let store = EmbeddedStore::open(&dir.join("store")).context("opening the embedded meta store")?;
            // One meta, which always leads; its state is loaded before it serves.
            let loaded = StoreLayout::new(&meta.cluster_root)
                .load(&store)
                .await
                .with_context(|| format!("loading the meta state from {}", store.describe()))?;
            let leadership = Leadership::fixed(LeaderView::Leader);
            (Arc::new(store), Some(lock), None, leadership, Some(loaded))
        }
        MetaStoreKind::Zookeeper => {
            let zk = &config.zookeeper;
            let timeout = Duration::from_millis(zk.timeout_ms);
            let lease_ms = config.replication.fd_lease_seconds * 1000;
            if zk.timeout_ms + 2000 > lease_ms {
                tracing::warn!(
                    zookeeper_timeout_ms = zk.timeout_ms,
                    fd_lease_ms = lease_ms,
                    "a leader failover takes about zookeeper.timeout_ms; with so short a lease, replica servers stop serving until a new leader answers"
                );
            }
            let session = ZkSession::start(&zk.hosts_list, timeout).context("starting the ZooKeeper session thread")?;
            let (leadership, fence) = election::elect(&session, &election_dir(&meta.cluster_root), me);
            let op_timeout = timeout.clamp(Duration::from_secs(2), Duration::from_secs(10));
            let store = ZookeeperStore::new(session.clone(), op_timeout).fenced_by(fence);
            tracing::info!(hosts = %zk.hosts_list, root = %meta.cluster_root, "meta store on ZooKeeper; joining the leader election");
            (Arc::new(store), None, Some(session), leadership, None)
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    let repl = &config.replication;
    let params = MetaParams {
        me,
        meta_servers: meta.server_list(),
        store,
        leadership: leadership.clone(),
        recover_from_replica_server: meta.recover_from_replica_server,
        cluster_root: meta.cluster_root.clone(),
        cluster_name: meta.cluster_name.clone(),
        zookeeper_hosts: match meta.meta_store {
            MetaStoreKind::Zookeeper => config.zookeeper.hosts_list.clone(),
            MetaStoreKind::Embedded => String::new(),
        },
        network: network.clone(),
        clock,
        level: meta.meta_function_level_on_start,
        fd_grace: Duration::from_secs(repl.fd_grace_seconds),
        fd_check_interval: Duration::from_secs(repl.fd_check_interval_seconds),
        rpc_timeout: Duration::from_millis(config.network.rpc_timeout_ms),
        create_wait_ready: Duration::from_millis(meta.create_wait_ready_ms),
        max_partition_count: meta.max_partition_count,
        cure_interval: Duration::from_millis(meta.lb_interval_ms),
        knobs: CureKnobs {
            assign_delay_ms: meta.replica_assign_delay_ms_for_dropouts,
            black_list: Default::default(),
            flow_control: meta.add_secondary_enable_flow_control,
            max_adds_per_node: meta.add_secondary_max_count_for_one_node,
        },
        maintenance_max: Duration::from_secs(meta.maintenance_max_seconds),
        hold_dropped: Duration::from_secs(meta.hold_seconds_for_dropped_app),
        freeze: FreezeRule {
            min_live_node_count_for_unfreeze: meta.min_live_node_count_for_unfreeze,
            node_live_percentage_threshold_for_update: meta.node_live_percentage_threshold_for_update,
        },
        ready: ready.clone(),
    };
    let addr = ServerState::start(params, loaded);
    let helpers = addr
        .send(GetMetaHelpers)
        .await
        .context("the meta state actor did not start")?;
    let mut endpoint = ServerState::endpoint(me, addr.clone(), helpers, leadership.clone());
    add_admin(
        &mut endpoint,
        info,
        command_registry(me, info, config, RoleCommands::Meta(addr)),
    );
    let health: HealthCheck = Arc::new(move || match leadership.current() {
        LeaderView::Leader if ready.load(Ordering::Acquire) => (true, "meta: serving".to_string()),
        LeaderView::Leader => (false, "meta: leading, loading state".to_string()),
        LeaderView::Follower(leader) => (true, format!("meta: standby, following the leader {leader}")),
        LeaderView::Unknown(why) => (false, format!("meta: no known leader ({why})")),
    });
    let server = network
        .serve(endpoint, health.clone())
        .with_context(|| format!("cannot listen on {me} (meta_server.address)"))?;
    tracing::info!(address = %me, store = %meta.meta_store_name(), "meta server started");
    Ok(MetaRole {
        _server: server,
        health,
        _lock: lock,
        session,
    })
}

trait StoreName {
    fn meta_store_name(&self) -> &'static str;
}

impl StoreName for aerie_config::MetaServerConfig {
    fn meta_store_name(&self) -> &'static str {
        match self.meta_store {
            MetaStoreKind::Embedded => "embedded",
            MetaStoreKind::Zookeeper => "zookeeper",
        }
    }
}

/// Resources every replica server of the process shares.
pub struct ReplicaShared {
    pub engine_options: EngineOptions,
    pub arbiters: Vec<ArbiterHandle>,
}

impl ReplicaShared {
    pub fn new(repl: &ReplicationConfig, arbiters: Vec<ArbiterHandle>) -> Self {
        ReplicaShared {
            engine_options: EngineOptions::new(
                (repl.rocksdb_block_cache_mb * MB) as usize,
                (repl.rocksdb_memtable_budget_mb * MB) as usize,
                (repl.rocksdb_write_buffer_mb * MB) as usize,
            )
            .with_max_open_files(repl.rocksdb_max_open_files as i32),
            arbiters,
        }
    }
}

pub struct ReplicaRole {
    pub stub: Addr<ReplicaStub>,
    pub server: ServerHandle,
    pub health: HealthCheck,
    _locks: Vec<DirLock>,
}

impl ReplicaRole {
    /// Closes every replica (logs synced, memtables flushed), waiting at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.stub.send(Shutdown)).await.is_err() {
            tracing::warn!(node = %self.server.addr(), "replica server did not stop within {timeout:?}");
        }
    }
}

pub fn start_replica(
    repl: &ReplicationConfig,
    config: &AerieConfig,
    shared: &ReplicaShared,
    network: &Network,
    clock: Arc<dyn Clock>,
    info: &ProcessInfo,
) -> Result<ReplicaRole> {
    let me: NodeAddr = repl.address();
    let data_dirs: Vec<PathBuf> = repl
        .data_dirs()
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .map(|d| PathBuf::from(d.path))
        .collect();
    let locks = data_dirs
        .iter()
        .map(|d| DirLock::acquire(d))
        .collect::<Result<Vec<_>>>()?;
    let options = Arc::new(ReplicaOptions {
        prepare_timeout: Duration::from_millis(repl.prepare_timeout_ms),
        prepare_retry_delay: Duration::from_secs(1),
        group_check_delay: Duration::from_millis(20),
        group_check_interval: Duration::from_millis(repl.group_check_interval_ms.max(100)),
        min_replicas_for_write: repl.mutation_2pc_min_replica_count as usize,
        max_uncommitted: 4096,
        limits: Limits {
            max_key_bytes: repl.max_key_bytes as usize,
            max_value_bytes: repl.max_value_bytes as usize,
        },
        log_gc_threshold_bytes: repl.log_gc_threshold_mb * MB,
        log_gc_interval: Duration::from_millis(repl.log_gc_interval_ms),
        log_options: LogOptions {
            segment_bytes: repl.log_segment_size_mb * MB,
            sync: repl.log_sync_mode == LogSyncMode::Fsync,
        },
        engine_options: shared.engine_options.clone(),
        meta: MetaLocator::new(config.meta_server.server_list()),
        rpc_timeout: Duration::from_millis(config.network.rpc_timeout_ms),
        learn_cache_mutations: repl.learn_cache_mutations as usize,
        learn_join_gap: (repl.learn_cache_mutations / 2).max(1) as i64,
        learn_batch_bytes: 4 * 1024 * 1024,
        learn_rate_limit_bytes: repl.learn_rate_limit_mb * MB,
        lease: Default::default(),
        clock: clock.clone(),
        sync_soon: Default::default(),
    });
    let last_beacon_ack_ms = Arc::new(AtomicU64::new(0));
    let stub = ReplicaStub::new(ReplicaStubParams {
        me,
        data_dirs,
        network: network.clone(),
        options,
        arbiters: shared.arbiters.clone(),
        beacon_interval: Duration::from_secs(repl.fd_beacon_interval_seconds),
        lease: Duration::from_secs(repl.fd_lease_seconds),
        config_sync_interval: Duration::from_millis(repl.config_sync_interval_ms),
        rpc_timeout: Duration::from_millis(config.network.rpc_timeout_ms),
        clock: clock.clone(),
        last_beacon_ack_ms: last_beacon_ack_ms.clone(),
    });
    let router = stub.router();
    // The stub runs only once its address is bound: a server that cannot listen stops before
    // any replica opens.
    let context = actix::Context::<ReplicaStub>::new();
    let stub_addr = context.address();
    let mut endpoint = ReplicaStub::endpoint(me, stub_addr.clone(), router);
    let commands = command_registry(me, info, config, RoleCommands::Replica(stub_addr));
    add_admin(&mut endpoint, info, commands);
    let lease_ms = repl.fd_lease_seconds * 1000;
    let health: HealthCheck = Arc::new(move || {
        let last = last_beacon_ack_ms.load(Ordering::Acquire);
        if last == 0 {
            return (
                false,
                "replica: no beacon acknowledged by a meta server yet".to_string(),
            );
        }
        let age = clock.now_ms().saturating_sub(last);
        if age <= lease_ms {
            (true, format!("replica: beacon acknowledged {age} ms ago"))
        } else {
            (
                false,
                format!("replica: no beacon acknowledged for {age} ms (lease {lease_ms} ms)"),
            )
        }
    });
    let server = network
        .serve(endpoint, health.clone())
        .with_context(|| format!("cannot listen on {me} (replication.address)"))?;
    let stub = context.run(stub);
    tracing::info!(address = %me, "replica server started");
    Ok(ReplicaRole {
        stub,
        server,
        health,
        _locks: locks,
    })
}

pub fn start_collector(
    config: &AerieConfig,
    network: &Network,
    info: &ProcessInfo,
) -> Result<(ServerHandle, HealthCheck)> {
    let col = &config.collector;
    let me: NodeAddr = col.address.parse().expect("validated");
    let client_options = ClientOptions {
        timeout: Duration::from_millis(col.available_detect_timeout_ms),
        meta_timeout: Duration::from_millis(config.network.rpc_timeout_ms),
        network: Default::default(),
    };
    let client = Client::with_network(config.meta_server.server_list(), client_options, network.clone())
        .map_err(|e| anyhow::anyhow!("collector: {e}"))?;
    let collector_actor = Collector::new(
        client,
        CollectorOptions {
            probe_table: col.available_detect_app.clone(),
            probe_partitions: col.available_detect_partition_count,
            probe_interval: Duration::from_secs(col.available_detect_interval_seconds),
            alert_fail_count: col.available_detect_alert_fail_count,
            stat_interval: Duration::from_secs(col.app_stat_interval_seconds),
            hot_threshold: col.hot_partition_threshold,
            hot_occurrence: col.occurrence_threshold,
        },
    );
    // Run only once the address is bound (as the replica stub).
    let context = actix::Context::<Collector>::new();
    let collector = context.address();
    let mut endpoint = Endpoint::new(me);
    add_admin(
        &mut endpoint,
        info,
        command_registry(me, info, config, RoleCommands::Collector(collector.clone())),
    );
    let for_probes = collector.clone();
    endpoint.handle::<QueryProbes, _, _>(move |_| {
        let collector = for_probes.clone();
        async move { collector.send(GetProbeReport).await.unwrap_or_default() }
    });
    endpoint.handle::<QueryAppStat, _, _>(move |_| {
        let collector = collector.clone();
        async move { collector.send(GetAppStat).await.unwrap_or_default() }
    });
    let health: HealthCheck = Arc::new(|| (true, "collector: up".to_string()));
    let server = network
        .serve(endpoint, health.clone())
        .with_context(|| format!("cannot listen on {me} (collector.address)"))?;
    context.run(collector_actor);
    tracing::info!(address = %me, "collector started");
    Ok((server, health))
}
