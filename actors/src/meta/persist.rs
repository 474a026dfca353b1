//! How the cluster map sits in the meta store (readable with `zkCli` when the store is ZooKeeper):
//!
//! ```text
//!  <cluster_root>                    {"next_app_id": 3}
//!  <cluster_root>/apps/<app_id>      AppInfo as JSON
//!  <cluster_root>/apps/<app_id>/<i>  PartitionConfig of partition i as JSON
//!  <cluster_root>/offline            {"leaving": ["host:port", ...]}: nodes `offline_node` empties
//!  <cluster_root>/meta_level         {"level": "lively"}: the level the operator set
//!  <cluster_root>/maintenance        {"nodes": {"host:port": until_secs, ...}}: `node_maintenance`
//! ```
//!
//! Creating a table is one transaction (root, table and every partition); every later change of a
//! partition is one write of its node.

use aerie_common::{AppId, Gpid, NodeAddr};
use aerie_metastore::{MetaStore, MetaStoreError, StoreOp};
use aerie_proto::meta::{AppInfo, AppState, PartitionConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct StoreLayout {
    root: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RootData {
    next_app_id: AppId,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OfflineData {
    leaving: Vec<NodeAddr>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct MaintenanceData {
    nodes: BTreeMap<NodeAddr, u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LevelData {
    level: aerie_common::MetaLevel,
}

/// What the meta loads when it starts leading.
#[derive(Debug, Clone, Default)]
pub struct LoadedState {
    pub apps: BTreeMap<AppId, AppState>,
    pub next_app_id: AppId,
    /// Nodes being taken out of service (`offline_node`), so that a new leader goes on emptying them.
    pub leaving: std::collections::BTreeSet<NodeAddr>,
    /// The meta level the operator set, if one was ever set (otherwise the configured start level).
    pub level: Option<aerie_common::MetaLevel>,
    /// Nodes in maintenance, with the wall-clock second it ends.
    pub maintenance: BTreeMap<NodeAddr, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] MetaStoreError),
    #[error("meta store node {path} holds invalid data: {reason}")]
    Invalid { path: String, reason: String },
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("meta types serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(path: &str, bytes: &[u8]) -> Result<T, LoadError> {
    serde_json::from_slice(bytes).map_err(|e| LoadError::Invalid {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

impl StoreLayout {
    pub fn new(root: &str) -> Self {
        StoreLayout { root: root.to_string() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn offline(&self) -> String {
        format!("{}/offline", self.root)
    }

    /// Records the nodes being taken out of service (the node exists once the state was loaded).
    pub fn set_leaving_op(&self, leaving: &std::collections::BTreeSet<NodeAddr>) -> StoreOp {
        StoreOp::Set {
            path: self.offline(),
            data: to_json(&OfflineData {
                leaving: leaving.iter().copied().collect(),
            }),
            expected: None,
        }
    }

    fn level(&self) -> String {
        format!("{}/meta_level", self.root)
    }

    fn maintenance(&self) -> String {
        format!("{}/maintenance", self.root)
    }

    /// Records the nodes in maintenance and when each one's ends (the node exists once loaded).
    pub fn set_maintenance_op(&self, nodes: &BTreeMap<NodeAddr, u64>) -> StoreOp {
        StoreOp::Set {
            path: self.maintenance(),
            data: to_json(&MaintenanceData { nodes: nodes.clone() }),
            expected: None,
        }
    }

    /// Records the meta level the operator set (the node exists once the state was loaded).
    pub fn set_level_op(&self, level: aerie_common::MetaLevel) -> StoreOp {
        StoreOp::Set {
            path: self.level(),
            data: to_json(&LevelData { level }),
            expected: None,
        }
    }

    fn apps(&self) -> String {
        format!("{}/apps", self.root)
    }

    fn app(&self, app_id: AppId) -> String {
        format!("{}/apps/{app_id}", self.root)
    }

    fn partition(&self, gpid: Gpid) -> String {
        format!("{}/apps/{}/{}", self.root, gpid.app_id, gpid.pidx)
    }

    /// One transaction that records a new table with all its partitions.
    pub fn create_app_ops(&self, app: &AppInfo, partitions: &[PartitionConfig], next_app_id: AppId) -> Vec<StoreOp> {
        let mut ops = vec![
            StoreOp::Set {
                path: self.root.clone(),
                data: to_json(&RootData { next_app_id }),
                expected: None,
            },
            StoreOp::Create {
                path: self.app(app.app_id),
                data: to_json(app),
            },
        ];
        ops.extend(partitions.iter().map(|p| StoreOp::Create {
            path: self.partition(p.gpid),
            data: to_json(p),
        }));
        ops
    }

    pub fn set_app_op(&self, app: &AppInfo) -> StoreOp {
        StoreOp::Set {
            path: self.app(app.app_id),
            data: to_json(app),
            expected: None,
        }
    }

    pub fn set_partition_op(&self, config: &PartitionConfig) -> StoreOp {
        StoreOp::Set {
            path: self.partition(config.gpid),
            data: to_json(config),
            expected: None,
        }
    }

    /// Reads every table and partition configuration.
    pub async fn load(&self, store: &dyn MetaStore) -> Result<LoadedState, LoadError> {
        store.ensure_path(&self.apps()).await?;
        let root_data = match store.get(&self.root).await? {
            Some((bytes, _)) if !bytes.is_empty() => from_json::<RootData>(&self.root, &bytes)?,
            _ => RootData { next_app_id: 1 },
        };
        store.ensure_path(&self.offline()).await?;
        let leaving = match store.get(&self.offline()).await? {
            Some((bytes, _)) if !bytes.is_empty() => from_json::<OfflineData>(&self.offline(), &bytes)?.leaving,
            _ => Vec::new(),
        };
        store.ensure_path(&self.level()).await?;
        let level = match store.get(&self.level()).await? {
            Some((bytes, _)) if !bytes.is_empty() => Some(from_json::<LevelData>(&self.level(), &bytes)?.level),
            _ => None,
        };
        store.ensure_path(&self.maintenance()).await?;
        let maintenance = match store.get(&self.maintenance()).await? {
            Some((bytes, _)) if !bytes.is_empty() => from_json::<MaintenanceData>(&self.maintenance(), &bytes)?.nodes,
            _ => BTreeMap::new(),
        };
        let mut state = LoadedState {
            apps: BTreeMap::new(),
            next_app_id: root_data.next_app_id.max(1),
            leaving: leaving.into_iter().collect(),
            level,
            maintenance,
        };
        for child in store.children(&self.apps()).await? {
            let app_path = format!("{}/{child}", self.apps());
            let app_id: AppId = child.parse().map_err(|_| LoadError::Invalid {
                path: app_path.clone(),
                reason: "not a table id".into(),
            })?;
            let Some((bytes, _)) = store.get(&app_path).await? else {
                continue;
            };
            let info: AppInfo = from_json(&app_path, &bytes)?;
            let mut partitions = Vec::with_capacity(info.partition_count as usize);
            for pidx in 0..info.partition_count {
                let path = self.partition(Gpid::new(app_id, pidx));
                let Some((bytes, _)) = store.get(&path).await? else {
                    return Err(LoadError::Invalid {
                        path,
                        reason: "partition configuration is missing".into(),
                    });
                };
                partitions.push(from_json::<PartitionConfig>(&path, &bytes)?);
            }
            state.next_app_id = state.next_app_id.max(app_id + 1);
            state.apps.insert(app_id, AppState { info, partitions });
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aerie_metastore::MemoryStore;
    use aerie_proto::meta::AppStatus;

    #[tokio::test]
    async fn created_tables_load_back() {
        let store = MemoryStore::new();
        let layout = StoreLayout::new("/aerie/test");
        assert_eq!(layout.load(&store).await.unwrap().next_app_id, 1);
        let app = AppInfo {
            app_id: 1,
            app_name: "t".into(),
            status: AppStatus::Available,
            partition_count: 2,
            max_replica_count: 3,
            create_time_secs: 5,
            drop_time_secs: None,
            envs: Default::default(),
        };
        let partitions: Vec<_> = (0..2).map(|i| PartitionConfig::empty(Gpid::new(1, i), 3)).collect();
        store
            .transaction(layout.create_app_ops(&app, &partitions, 2))
            .await
            .unwrap();
        let mut changed = partitions[1].clone();
        changed.ballot = 7;
        store
            .transaction(vec![layout.set_partition_op(&changed)])
            .await
            .unwrap();

        let leaving = [NodeAddr("127.0.0.1:34801".parse().unwrap())].into_iter().collect();
        store.transaction(vec![layout.set_leaving_op(&leaving)]).await.unwrap();
        assert_eq!(layout.load(&store).await.unwrap().level, None, "no level set yet");
        store
            .transaction(vec![layout.set_level_op(aerie_common::MetaLevel::Lively)])
            .await
            .unwrap();

        let maintenance: BTreeMap<NodeAddr, u64> = [(NodeAddr("127.0.0.1:34802".parse().unwrap()), 1_900_000_000)]
            .into_iter()
            .collect();
        store
            .transaction(vec![layout.set_maintenance_op(&maintenance)])
            .await
            .unwrap();

        let loaded = layout.load(&store).await.unwrap();
        assert_eq!(loaded.maintenance, maintenance, "a new leader honours maintenance");
        assert_eq!(loaded.leaving, leaving);
        assert_eq!(loaded.level, Some(aerie_common::MetaLevel::Lively));
        assert_eq!(loaded.next_app_id, 2);
        assert_eq!(loaded.apps[&1].info, app);
        assert_eq!(loaded.apps[&1].partitions[1].ballot, 7);
        let (json, _) = store.get("/aerie/test/apps/1/1").await.unwrap().unwrap();
        assert!(
            String::from_utf8(json).unwrap().contains("\"ballot\": 7"),
            "stored as readable JSON"
        );
    }
}
