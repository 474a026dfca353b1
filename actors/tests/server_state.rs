//! `ServerState` against a meta store that fails on demand: a change is applied only after the store
//! accepted it, a failed write changes nothing, and after a write whose outcome is unknown the meta
//! reloads from the store and shows exactly what the store holds.

use actix::Addr;
use aerie_actors::meta::guardian::CureKnobs;
use aerie_actors::meta::level::FreezeRule;
use aerie_actors::meta::{GetMetaHelpers, MetaParams, ServerState, StoreLayout};
use aerie_common::MetaLevel;
use aerie_common::{ErrorCode, NodeAddr, SystemClock};
use aerie_metastore::{LeaderView, Leadership, MemoryStore, MetaStore, MetaStoreError, StoreOp, Version};
use aerie_proto::meta::{
    Beacon, CreateApp, DropApp, GetMetaLevel, ListApps, ListNodes, NodeMaintenance, NodeStatus, OfflineNodes,
    PartitionChange, QueryConfig, QueryOfflineProgress, Recover, SetMetaLevel, UpdatePartitionConfig,
};
use aerie_rpc::{Inbound, Network, NetworkOptions};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Healthy,
    /// The write is refused; nothing is stored.
    Refuse,
    /// The write is stored, but the caller is told the outcome is unknown.
    AmbiguousStored,
    /// Nothing is stored, and the caller is told the outcome is unknown.
    AmbiguousLost,
}

struct FlakyStore {
    inner: MemoryStore,
    mode: Mutex<Mode>,
}

impl FlakyStore {
    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

#[async_trait]
impl MetaStore for FlakyStore {
    fn describe(&self) -> String {
        "flaky".into()
    }
    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Version)>, MetaStoreError> {
        self.inner.get(path).await
    }
    async fn children(&self, path: &str) -> Result<Vec<String>, MetaStoreError> {
        self.inner.children(path).await
    }
    async fn transaction(&self, ops: Vec<StoreOp>) -> Result<(), MetaStoreError> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Healthy => self.inner.transaction(ops).await,
            Mode::Refuse => Err(MetaStoreError::Unavailable("disk full".into())),
            Mode::AmbiguousStored => {
                self.inner.transaction(ops).await?;
                Err(MetaStoreError::Ambiguous("session lost after the write".into()))
            }
            Mode::AmbiguousLost => Err(MetaStoreError::Ambiguous("session lost before the write".into())),
        }
    }
}

const ROOT: &str = "/aerie/test";

fn node(i: u16) -> NodeAddr {
    format!("127.0.0.1:{}", 40000 + i).parse().unwrap()
}

async fn start(store: Arc<FlakyStore>) -> (Addr<ServerState>, Network) {
    let loaded = StoreLayout::new(ROOT).load(store.as_ref()).await.unwrap();
    start_as(store, Leadership::fixed(LeaderView::Leader), Some(loaded)).await
}

async fn start_as(
    store: Arc<FlakyStore>,
    leadership: Leadership,
    loaded: Option<aerie_actors::meta::LoadedState>,
) -> (Addr<ServerState>, Network) {
    let leads = leadership.is_leader();
    let network = Network::new(NetworkOptions::default()).unwrap();
    for i in 0..3 {
        // The replica servers do not exist: configuration pushes fail at once.
        network.faults().block(node(i));
    }
    let params = MetaParams {
        me: "127.0.0.1:34601".parse().unwrap(),
        meta_servers: vec!["127.0.0.1:34601".parse().unwrap()],
        store,
        leadership,
        recover_from_replica_server: false,
        cluster_root: ROOT.into(),
        cluster_name: "test".into(),
        zookeeper_hosts: String::new(),
        network: network.clone(),
        clock: Arc::new(SystemClock::default()),
        level: MetaLevel::Steady,
        fd_grace: Duration::from_secs(10),
        fd_check_interval: Duration::from_secs(1),
        rpc_timeout: Duration::from_secs(1),
        create_wait_ready: Duration::from_millis(200),
        max_partition_count: 64,
        cure_interval: Duration::from_secs(60),
        knobs: CureKnobs {
            assign_delay_ms: 300_000,
            black_list: Default::default(),
            flow_control: true,
            max_adds_per_node: 10,
        },
        maintenance_max: Duration::from_secs(600),
        hold_dropped: Duration::from_secs(600),
        freeze: FreezeRule {
            min_live_node_count_for_unfreeze: 1,
            node_live_percentage_threshold_for_update: 0,
        },
        ready: Default::default(),
    };
    let addr = ServerState::start(params, loaded);
    if !leads {
        return (addr, network);
    }
    let detector = addr.send(GetMetaHelpers).await.unwrap().failure_detector;
    for i in 0..3 {
        detector
            .send(Inbound(Beacon {
                node: node(i),
                boot_id: 0,
            }))
            .await
            .unwrap()
            .unwrap();
    }
    // The detector tells the state about live nodes asynchronously: wait until it knows all three.
    for _ in 0..100 {
        let nodes = addr.send(Inbound(ListNodes {})).await.unwrap().unwrap();
        if nodes.iter().filter(|n| n.status == NodeStatus::Alive).count() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (addr, network)
}

fn create(name: &str) -> Inbound<CreateApp> {
    Inbound(CreateApp {
        app_name: name.into(),
        partition_count: 4,
        replica_count: 3,
        envs: Default::default(),
    })
}

async fn table_names(addr: &Addr<ServerState>) -> Vec<String> {
    // Right after a restart the meta may still be loading; it says so with ERR_SERVICE_NOT_ACTIVE.
    for _ in 0..100 {
        match addr.send(Inbound(ListApps { include_dropped: false })).await.unwrap() {
            Ok(apps) => return apps.into_iter().map(|a| a.info.app_name).collect(),
            Err(e) if e.code == ErrorCode::ERR_SERVICE_NOT_ACTIVE => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the meta never finished loading");
}

fn flaky() -> Arc<FlakyStore> {
    Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        mode: Mutex::new(Mode::Healthy),
    })
}

#[actix_rt::test]
async fn a_created_table_is_in_the_store_before_it_is_served() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;
    let created = addr.send(create("t")).await.unwrap().unwrap();
    assert_eq!(created.app.app_id, 1);
    assert_eq!(created.ready_partitions, 0, "no replica server confirmed");
    assert_eq!(table_names(&addr).await, vec!["t"]);
    let stored = StoreLayout::new(ROOT).load(store.as_ref()).await.unwrap();
    assert_eq!(stored.apps[&1].partitions.len(), 4);
    assert_eq!(stored.next_app_id, 2);
}

#[actix_rt::test]
async fn a_refused_write_changes_nothing() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;
    store.set_mode(Mode::Refuse);
    let err = addr.send(create("t")).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_META_STORE);
    assert!(err.detail.contains("disk full"), "{err}");
    assert!(table_names(&addr).await.is_empty());

    store.set_mode(Mode::Healthy);
    let created = addr.send(create("t")).await.unwrap().unwrap();
    assert_eq!(created.app.app_id, 1, "the refused attempt used no table id");

    store.set_mode(Mode::Refuse);
    let err = addr
        .send(Inbound(DropApp { app_name: "t".into() }))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_META_STORE);
    assert_eq!(table_names(&addr).await, vec!["t"], "a refused drop leaves the table");
}

#[actix_rt::test]
async fn after_an_ambiguous_write_the_meta_shows_what_the_store_holds() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;

    store.set_mode(Mode::AmbiguousStored);
    let err = addr.send(create("stored")).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_META_STORE);
    assert!(err.detail.contains("may or may not"), "{err}");
    store.set_mode(Mode::Healthy);
    assert_eq!(
        table_names(&addr).await,
        vec!["stored"],
        "reloaded: the write had happened"
    );

    store.set_mode(Mode::AmbiguousLost);
    addr.send(create("lost")).await.unwrap().unwrap_err();
    store.set_mode(Mode::Healthy);
    assert_eq!(
        table_names(&addr).await,
        vec!["stored"],
        "reloaded: the write had not happened"
    );

    // The reloaded meta goes on normally, with ids that never collide.
    let created = addr.send(create("next")).await.unwrap().unwrap();
    assert_eq!(created.app.app_id, 2);
}

#[actix_rt::test]
async fn a_blind_meta_refuses_every_change_and_says_why() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;
    addr.send(create("before")).await.unwrap().unwrap();
    let old = addr
        .send(Inbound(SetMetaLevel {
            level: MetaLevel::Blind,
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old, MetaLevel::Steady);
    let level = addr.send(Inbound(GetMetaLevel {})).await.unwrap().unwrap();
    assert_eq!((level.stored, level.effective), (MetaLevel::Blind, MetaLevel::Blind));

    let err = addr.send(create("during")).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_STATE_FREEZED);
    assert!(err.detail.contains("blind"), "{err}");
    let err = addr
        .send(Inbound(DropApp {
            app_name: "before".into(),
        }))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_STATE_FREEZED);
    let app = addr
        .send(Inbound(QueryConfig {
            app_name: "before".into(),
        }))
        .await
        .unwrap()
        .unwrap();
    let partition = &app.partitions[0];
    let err = addr
        .send(Inbound(UpdatePartitionConfig {
            gpid: partition.gpid,
            ballot: partition.ballot,
            requester: partition.primary.unwrap(),
            change: PartitionChange::RemoveSecondary(partition.secondaries[0]),
        }))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_STATE_FREEZED);
    assert_eq!(table_names(&addr).await, vec!["before"], "reads still work");

    addr.send(Inbound(SetMetaLevel {
        level: MetaLevel::Steady,
    }))
    .await
    .unwrap()
    .unwrap();
    addr.send(create("after")).await.unwrap().unwrap();
}

#[actix_rt::test]
async fn a_primary_request_is_carried_out_once_and_a_stale_one_is_refused() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;
    addr.send(create("t")).await.unwrap().unwrap();
    let app = addr
        .send(Inbound(QueryConfig { app_name: "t".into() }))
        .await
        .unwrap()
        .unwrap();
    let partition = app.partitions[0].clone();
    let request = UpdatePartitionConfig {
        gpid: partition.gpid,
        ballot: partition.ballot,
        requester: partition.primary.unwrap(),
        change: PartitionChange::RemoveSecondary(partition.secondaries[0]),
    };
    let changed = addr.send(Inbound(request.clone())).await.unwrap().unwrap();
    assert_eq!(changed.ballot, partition.ballot + 1);
    assert!(!changed.is_member(partition.secondaries[0]));
    // The same request again (a resend after a lost answer): OK, and nothing changes twice.
    let again = addr.send(Inbound(request.clone())).await.unwrap().unwrap();
    assert_eq!(again, changed);
    // A request at an older ballot for something else: stale.
    let stale = UpdatePartitionConfig {
        change: PartitionChange::RemoveSecondary(partition.secondaries[1]),
        ..request
    };
    let err = addr.send(Inbound(stale)).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::ERR_INVALID_VERSION);
    assert!(err.detail.contains("is at ballot"), "{err}");
    let stored = StoreLayout::new(ROOT).load(store.as_ref()).await.unwrap();
    assert_eq!(stored.apps[&1].partitions[0], changed, "the store holds the change");
}

async fn not_serving(addr: &Addr<ServerState>) -> bool {
    let answer = addr.send(Inbound(ListApps { include_dropped: false })).await.unwrap();
    matches!(answer, Err(e) if e.code == ErrorCode::ERR_SERVICE_NOT_ACTIVE)
}

#[actix_rt::test]
async fn the_state_is_loaded_only_while_leading_and_dropped_when_the_lead_is_lost() {
    let store = flaky();
    let (first, _network) = start(store.clone()).await;
    first.send(create("t")).await.unwrap().unwrap();

    let (lead, leadership) = Leadership::manual(LeaderView::Unknown("joining".into()));
    let (standby, _network) = start_as(store.clone(), leadership, None).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(not_serving(&standby).await, "a meta that does not lead loads nothing");

    lead.send(LeaderView::Leader).unwrap();
    assert_eq!(table_names(&standby).await, vec!["t"], "leading: the map is loaded");
    let refused = standby
        .send(Inbound(Recover {
            nodes: vec![node(0)],
            skip_bad_nodes: false,
            skip_lost_partitions: false,
        }))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::ERR_INVALID_STATE);
    assert!(refused.detail.contains("recover_from_replica_server"), "{refused}");

    lead.send(LeaderView::Follower(node(9))).unwrap();
    for _ in 0..100 {
        if not_serving(&standby).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the meta kept serving after it lost the lead");
}

#[actix_rt::test]
async fn a_new_leader_goes_on_emptying_the_nodes_being_taken_out() {
    let store = flaky();
    let (first, _network) = start(store.clone()).await;
    let check = first
        .send(Inbound(OfflineNodes {
            nodes: vec![node(2)],
            check_only: false,
        }))
        .await
        .unwrap()
        .unwrap();
    assert!(check.started, "{check:?}");

    let (lead, leadership) = Leadership::manual(LeaderView::Unknown("joining".into()));
    let (next, _network) = start_as(store.clone(), leadership, None).await;
    lead.send(LeaderView::Leader).unwrap();
    table_names(&next).await;
    let progress = next.send(Inbound(QueryOfflineProgress {})).await.unwrap().unwrap();
    let leaving: Vec<NodeAddr> = progress.nodes.iter().map(|n| n.node).collect();
    assert_eq!(leaving, vec![node(2)], "the leaving set came from the store");
}

async fn maintenance_of(addr: &Addr<ServerState>, n: NodeAddr) -> Option<u64> {
    let nodes = addr.send(Inbound(ListNodes {})).await.unwrap().unwrap();
    nodes
        .iter()
        .find(|i| i.address == n)
        .and_then(|i| i.maintenance_until_secs)
}

#[actix_rt::test]
async fn a_new_leader_honours_a_nodes_maintenance_until_it_ends() {
    let store = flaky();
    let (first, _network) = start(store.clone()).await;
    let maintain = |on: bool, seconds: Option<u64>| {
        Inbound(NodeMaintenance {
            node: node(1),
            on,
            seconds,
        })
    };
    let too_long = first.send(maintain(true, Some(601))).await.unwrap().unwrap_err();
    assert!(too_long.detail.contains("maintenance_max_seconds"), "{too_long}");
    let stranger = first
        .send(Inbound(NodeMaintenance {
            node: "127.0.0.9:1".parse().unwrap(),
            on: true,
            seconds: None,
        }))
        .await
        .unwrap()
        .unwrap_err();
    assert!(stranger.detail.contains("not a replica server"), "{stranger}");
    let until = first.send(maintain(true, None)).await.unwrap().unwrap().expect("on");
    let now = aerie_common::clock::wall_secs_now();
    assert!(
        (now + 599..=now + 601).contains(&until),
        "the longest maintenance by default"
    );
    assert_eq!(maintenance_of(&first, node(1)).await, Some(until));
    assert_eq!(maintenance_of(&first, node(0)).await, None);

    let (lead, leadership) = Leadership::manual(LeaderView::Unknown("joining".into()));
    let (next, _network) = start_as(store.clone(), leadership, None).await;
    lead.send(LeaderView::Leader).unwrap();
    table_names(&next).await;
    assert_eq!(maintenance_of(&next, node(1)).await, Some(until), "kept in the store");
    assert_eq!(next.send(maintain(false, None)).await.unwrap().unwrap(), None);
    assert_eq!(maintenance_of(&next, node(1)).await, None);
    // A maintenance that ended counts for nothing.
    next.send(maintain(true, Some(1))).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(maintenance_of(&next, node(1)).await, None, "ended by itself");
}

#[actix_rt::test]
async fn the_meta_level_outlives_a_restart_and_a_refused_write_changes_it_not() {
    let store = flaky();
    let (addr, _network) = start(store.clone()).await;
    for level in [MetaLevel::Lively, MetaLevel::Blind] {
        addr.send(Inbound(SetMetaLevel { level })).await.unwrap().unwrap();
        // A new meta (a restart, or a new leader) loads the state from the store.
        let (restarted, _network) = start(store.clone()).await;
        let loaded = restarted.send(Inbound(GetMetaLevel {})).await.unwrap().unwrap();
        assert_eq!(loaded.stored, level, "the level set before the restart");
    }
    // Blind is left the same way it is entered: by setting a level.
    addr.send(Inbound(SetMetaLevel {
        level: MetaLevel::Steady,
    }))
    .await
    .unwrap()
    .unwrap();
    store.set_mode(Mode::Refuse);
    let refused = addr
        .send(Inbound(SetMetaLevel {
            level: MetaLevel::Lively,
        }))
        .await
        .unwrap();
    assert_eq!(refused.unwrap_err().code, ErrorCode::ERR_META_STORE);
    let level = addr.send(Inbound(GetMetaLevel {})).await.unwrap().unwrap();
    assert_eq!(
        level.stored,
        MetaLevel::Steady,
        "nothing changes when the store refuses"
    );
}
