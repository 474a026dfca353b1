//! One availability probe round: find (or create) the probe table, then on every partition a set
//! of a probe key that hashes to it and a get that must read the value back.

use aerie_client::Client;
use aerie_common::{partition_index, ErrorCode, WireError};
use aerie_proto::meta::NodeStatus;
use std::time::{Duration, Instant};

/// The sort key every probe writes under its partition's hash key.
const PROBE_SORT_KEY: &[u8] = b"probe";

/// For each partition index of a table of `partition_count` partitions, a hash key that maps to
/// it: the first `detect_N` that does, N counting from 0.
pub fn probe_keys(partition_count: u32) -> Vec<Vec<u8>> {
    let mut keys: Vec<Option<Vec<u8>>> = vec![None; partition_count as usize];
    let mut missing = partition_count as usize;
    let mut n: u64 = 0;
    while missing > 0 {
        let key = format!("detect_{n}").into_bytes();
        let slot = &mut keys[partition_index(&key, PROBE_SORT_KEY, partition_count) as usize];
        if slot.is_none() {
            *slot = Some(key);
            missing -= 1;
        }
        n += 1;
    }
    keys.into_iter().map(|k| k.expect("every slot filled")).collect()
}

/// How the probe table stands before a round.
pub struct ProbeTarget {
    pub table: String,
    pub partitions_to_create: u32,
}

/// What a round found: each partition's probe with its latency, or why probing could not start.
pub enum RoundOutcome {
    Probed(Vec<Result<Duration, String>>),
    Waiting(String),
}

fn describe(e: &WireError) -> String {
    e.to_string()
}

/// Runs one round. Creates the probe table when the meta says it does not exist (the round then
/// waits for it); the client follows the meta leader and each partition's primary.
pub async fn probe_round(client: &Client, target: &ProbeTarget, round: u64) -> RoundOutcome {
    let table = match client.table(&target.table).await {
        Ok(table) => table,
        Err(e) if e.code == ErrorCode::ERR_APP_NOT_EXIST || e.code == ErrorCode::ERR_OBJECT_NOT_FOUND => {
            let alive = match client.list_nodes().await {
                Ok(nodes) => nodes.iter().filter(|n| n.status == NodeStatus::Alive).count(),
                Err(e) => return RoundOutcome::Waiting(format!("cannot list the replica servers: {}", describe(&e))),
            };
            if alive == 0 {
                return RoundOutcome::Waiting("no replica server is alive yet".into());
            }
            let replicas = alive.min(3);
            return match client
                .create_table(&target.table, target.partitions_to_create, replicas as u32)
                .await
            {
                Ok(_) => {
                    tracing::info!(table = %target.table, partitions = target.partitions_to_create, replicas, "collector created the probe table");
                    RoundOutcome::Waiting(format!("created the probe table {}", target.table))
                }
                Err(e) => RoundOutcome::Waiting(format!(
                    "cannot create the probe table {}: {}",
                    target.table,
                    describe(&e)
                )),
            };
        }
        Err(e) => {
            return RoundOutcome::Waiting(format!(
                "cannot load the probe table {}: {}",
                target.table,
                describe(&e)
            ))
        }
    };
    let keys = probe_keys(table.partition_count());
    let value = format!("round {round}").into_bytes();
    let probes = keys.iter().map(|key| {
        let (table, value) = (table.clone(), value.clone());
        async move {
            let started = Instant::now();
            table
                .set(key, PROBE_SORT_KEY, &value, 0)
                .await
                .map_err(|e| format!("set: {}", describe(&e)))?;
            match table.get(key, PROBE_SORT_KEY).await {
                Ok(Some(read)) if read == value => Ok(started.elapsed()),
                Ok(other) => Err(format!(
                    "get read {:?} after setting {:?}",
                    other.map(|v| String::from_utf8_lossy(&v).into_owned()),
                    String::from_utf8_lossy(&value)
                )),
                Err(e) => Err(format!("get: {}", describe(&e))),
            }
        }
    });
    RoundOutcome::Probed(futures::future::join_all(probes).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_gets_a_key_that_hashes_to_it() {
        for count in [1, 2, 8, 13, 64] {
            let keys = probe_keys(count);
            assert_eq!(keys.len(), count as usize);
            for (i, key) in keys.iter().enumerate() {
                assert_eq!(partition_index(key, PROBE_SORT_KEY, count), i as u32);
            }
        }
        assert_eq!(probe_keys(8), probe_keys(8), "the keys do not change between runs");
    }
}
