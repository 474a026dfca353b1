//! Rebuilding the cluster map from what the replica servers hold (`recover`), for a meta whose store
//! is empty (a new ZooKeeper, a lost one). Pure: the inventories in, the tables and partition
//! configurations out.
//!
//! For each partition the best replica becomes the primary: highest ballot, then highest committed
//! decree, then the one its latest configuration named primary, then highest prepared decree. Replicas at the same ballot that prepared everything the
//! primary committed become its secondaries (nothing to copy); the others are listed as last drops,
//! so that the cure adds them back first, learning only what they miss. When that is exactly the
//! configuration the best replica last applied (same primary, same secondaries), it is restored at
//! its own ballot: the replicas take their roles back as after a meta restart. Otherwise the new
//! configuration's ballot is one above every ballot seen, so that every replica accepts it.
//! Learners are not candidates: their data is incomplete; nor are replicas out of service.

use aerie_common::{AppId, Gpid, NodeAddr};
use aerie_proto::meta::{AppInfo, AppState, AppStatus, PartitionConfig};
use aerie_proto::replica::{ReplicaInfo, ReplicaStatus};
use std::collections::BTreeMap;

/// What the rebuild found and made.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub apps: BTreeMap<AppId, AppState>,
    pub next_app_id: AppId,
    /// Partitions no node holds (left without replicas when lost partitions are skipped).
    pub lost: Vec<Gpid>,
    /// Replicas that were candidates (not learners).
    pub replicas: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("no replica found on any node: nothing to recover")]
    Nothing,
    #[error("{} partitions have no replica on any node ({}); pass --skip_lost_partitions to recover the rest", .0.len(), list(.0))]
    LostPartitions(Vec<Gpid>),
}

fn list(gpids: &[Gpid]) -> String {
    let mut shown: Vec<String> = gpids.iter().take(10).map(|g| g.to_string()).collect();
    if gpids.len() > 10 {
        shown.push(format!("and {} more", gpids.len() - 10));
    }
    shown.join(", ")
}

/// Rebuilds tables and partition configurations from every node's replicas.
pub fn rebuild(inventories: &[(NodeAddr, Vec<ReplicaInfo>)], skip_lost: bool) -> Result<Recovered, RecoveryError> {
    let mut tables: BTreeMap<AppId, AppInfo> = BTreeMap::new();
    let mut holders: BTreeMap<Gpid, Vec<(NodeAddr, &ReplicaInfo)>> = BTreeMap::new();
    let mut replicas = 0;
    for (node, infos) in inventories {
        for info in infos
            .iter()
            .filter(|i| i.status != ReplicaStatus::Learner && i.broken.is_none())
        {
            replicas += 1;
            let app_id = info.gpid.app_id;
            // The replica with the highest ballot knows the table best (names and envs may change).
            let newer = holders
                .iter()
                .filter(|(g, _)| g.app_id == app_id)
                .flat_map(|(_, h)| h.iter().map(|(_, r)| r.ballot))
                .all(|b| b <= info.ballot);
            if newer || !tables.contains_key(&app_id) {
                let mut app = info.app.clone();
                app.status = AppStatus::Available;
                app.drop_time_secs = None;
                tables.insert(app_id, app);
            }
            holders.entry(info.gpid).or_default().push((*node, info));
        }
    }
    if tables.is_empty() {
        return Err(RecoveryError::Nothing);
    }
    let mut apps = BTreeMap::new();
    let mut lost = Vec::new();
    for (app_id, info) in tables {
        let partitions = (0..info.partition_count)
            .map(|pidx| {
                let gpid = Gpid::new(app_id, pidx);
                let found = holders.get(&gpid).map(Vec::as_slice).unwrap_or_default();
                if found.is_empty() {
                    lost.push(gpid);
                }
                partition_config(gpid, info.max_replica_count, found)
            })
            .collect();
        apps.insert(app_id, AppState { info, partitions });
    }
    if !lost.is_empty() && !skip_lost {
        return Err(RecoveryError::LostPartitions(lost));
    }
    let next_app_id = apps.keys().max().map_or(1, |id| id + 1);
    Ok(Recovered {
        apps,
        next_app_id,
        lost,
        replicas,
    })
}

fn partition_config(gpid: Gpid, max_replica_count: u32, holders: &[(NodeAddr, &ReplicaInfo)]) -> PartitionConfig {
    let named = |node: &NodeAddr, r: &ReplicaInfo| r.config_primary == Some(*node);
    let best = holders.iter().max_by_key(|(node, r)| {
        (
            r.ballot,
            r.last_committed,
            named(node, r),
            r.last_prepared,
            std::cmp::Reverse(*node),
        )
    });
    let Some((primary, best)) = best else {
        return PartitionConfig::empty(gpid, max_replica_count);
    };
    let mut secondaries = Vec::new();
    let mut last_drops = Vec::new();
    let mut others: Vec<&(NodeAddr, &ReplicaInfo)> = holders.iter().filter(|(n, _)| n != primary).collect();
    // Best first, so that the cure takes back the most complete ones first (it reads from the end).
    others.sort_by_key(|(node, r)| {
        std::cmp::Reverse((r.ballot, r.last_committed, r.last_prepared, std::cmp::Reverse(*node)))
    });
    for (node, replica) in others {
        let complete = replica.ballot == best.ballot && replica.last_prepared >= best.last_committed;
        if complete && secondaries.len() + 1 < max_replica_count as usize {
            secondaries.push(*node);
        } else {
            last_drops.push(*node);
        }
    }
    last_drops.reverse();
    let highest = holders.iter().map(|(_, r)| r.ballot).max().unwrap_or(0);
    let mut same_set = secondaries.clone();
    let mut known = best.config_secondaries.clone();
    same_set.sort();
    known.sort();
    let unchanged = best.ballot == highest && best.config_primary == Some(*primary) && same_set == known;
    if unchanged {
        // Keep the order the configuration had, so listings read as before.
        secondaries = best.config_secondaries.clone();
    }
    PartitionConfig {
        gpid,
        ballot: if unchanged { highest } else { highest + 1 },
        primary: Some(*primary),
        secondaries,
        max_replica_count,
        last_drops,
        last_committed_decree: best.last_committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u16) -> NodeAddr {
        format!("127.0.0.1:{}", 40000 + i).parse().unwrap()
    }

    fn app(app_id: AppId, name: &str, partitions: u32) -> AppInfo {
        AppInfo {
            app_id,
            app_name: name.into(),
            status: AppStatus::Available,
            partition_count: partitions,
            max_replica_count: 3,
            create_time_secs: 7,
            drop_time_secs: None,
            envs: Default::default(),
        }
    }

    fn replica(app: &AppInfo, pidx: u32, ballot: i64, committed: i64, prepared: i64) -> ReplicaInfo {
        ReplicaInfo {
            gpid: Gpid::new(app.app_id, pidx),
            app_name: app.app_name.clone(),
            app: app.clone(),
            config_primary: None,
            config_secondaries: Vec::new(),
            status: ReplicaStatus::Inactive,
            ballot,
            last_prepared: prepared,
            last_committed: committed,
            last_applied: committed,
            durable_committed: committed,
            data_dir: "default".into(),
            data_bytes: 0,
            file_count: 0,
            op_counts: Default::default(),
            read_bytes: 0,
            write_bytes: 0,
            broken: None,
        }
    }

    #[test]
    fn the_best_replica_leads_and_complete_ones_follow_without_copying() {
        let t = app(3, "t", 1);
        let inventories = vec![
            (node(0), vec![replica(&t, 0, 5, 100, 101)]),
            (node(1), vec![replica(&t, 0, 5, 99, 100)]),
            (node(2), vec![replica(&t, 0, 4, 120, 120)]),
        ];
        let recovered = rebuild(&inventories, false).unwrap();
        let config = &recovered.apps[&3].partitions[0];
        assert_eq!(config.primary, Some(node(0)), "ballot first, then committed decree");
        assert_eq!(
            config.secondaries,
            vec![node(1)],
            "same ballot, prepared up to the primary's commit"
        );
        assert_eq!(
            config.last_drops,
            vec![node(2)],
            "an older ballot is learned back by the cure"
        );
        assert_eq!(config.ballot, 6);
        assert_eq!(config.last_committed_decree, 100);
        assert_eq!(recovered.next_app_id, 4);
        assert_eq!(recovered.apps[&3].info.app_name, "t");
    }

    #[test]
    fn among_equals_the_last_primary_keeps_its_role() {
        let t = app(1, "t", 1);
        let mut was_primary = replica(&t, 0, 4, 50, 50);
        was_primary.config_primary = Some(node(2));
        let mut other = replica(&t, 0, 4, 50, 50);
        other.config_primary = Some(node(2));
        let inventories = vec![
            (node(0), vec![other.clone()]),
            (node(1), vec![other]),
            (node(2), vec![was_primary]),
        ];
        let config = &rebuild(&inventories, false).unwrap().apps[&1].partitions[0];
        assert_eq!(config.primary, Some(node(2)));
        assert_eq!(config.secondaries, vec![node(0), node(1)]);
    }

    #[test]
    fn a_secondary_missing_committed_mutations_is_not_trusted_and_learners_are_ignored() {
        let t = app(1, "t", 1);
        let mut learner = replica(&t, 0, 9, 500, 500);
        learner.status = ReplicaStatus::Learner;
        let inventories = vec![
            (node(0), vec![replica(&t, 0, 5, 100, 100)]),
            (node(1), vec![replica(&t, 0, 5, 90, 95)]),
            (node(2), vec![learner]),
        ];
        let config = &rebuild(&inventories, false).unwrap().apps[&1].partitions[0];
        assert_eq!(config.primary, Some(node(0)));
        assert!(config.secondaries.is_empty());
        assert_eq!(config.last_drops, vec![node(1)]);
        assert_eq!(config.ballot, 6, "the learner's ballot does not count");
    }

    #[test]
    fn lost_partitions_fail_the_recovery_unless_skipped() {
        let t = app(1, "t", 3);
        let inventories = vec![(node(0), vec![replica(&t, 0, 1, 1, 1), replica(&t, 2, 1, 1, 1)])];
        let err = rebuild(&inventories, false).unwrap_err();
        assert_eq!(err, RecoveryError::LostPartitions(vec![Gpid::new(1, 1)]));
        assert!(err.to_string().contains("1.1"), "{err}");
        let recovered = rebuild(&inventories, true).unwrap();
        assert_eq!(recovered.lost, vec![Gpid::new(1, 1)]);
        let empty = &recovered.apps[&1].partitions[1];
        assert_eq!((empty.primary, empty.ballot), (None, 0));
    }

    #[test]
    fn nothing_to_recover_is_an_error_and_many_tables_come_back() {
        assert_eq!(rebuild(&[(node(0), vec![])], false), Err(RecoveryError::Nothing));
        let (a, b) = (app(1, "a", 2), app(7, "b", 1));
        let all = |n: u16| {
            (
                node(n),
                vec![
                    replica(&a, 0, 2, 10, 10),
                    replica(&a, 1, 2, 10, 10),
                    replica(&b, 0, 3, 4, 4),
                ],
            )
        };
        let recovered = rebuild(&[all(0), all(1), all(2)], false).unwrap();
        assert_eq!(recovered.apps.len(), 2);
        assert_eq!(recovered.next_app_id, 8);
        assert_eq!(recovered.replicas, 9);
        for state in recovered.apps.values() {
            for p in &state.partitions {
                assert_eq!(p.replica_count(), 3, "{p:?}");
            }
        }
    }
}
