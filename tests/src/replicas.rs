//! Comparing the replicas of a partition: each replica reports a checksum of its data at its applied
//! decree; once every replica applied the same decree, their checksums must be equal.

use crate::wait::wait_until;
use aerie_client::Client;
use aerie_proto::meta::AppState;
use aerie_proto::replica::{ReplicaChecksum, ReplicaChecksumResult};
use std::time::Duration;

/// Checksums of every replica of every partition, taken once all replicas of a partition report the
/// same applied decree (waiting at most `timeout` per partition).
pub async fn converged_checksums(
    client: &Client,
    app: &AppState,
    timeout: Duration,
) -> Vec<Vec<ReplicaChecksumResult>> {
    let mut all = Vec::new();
    for partition in &app.partitions {
        let members: Vec<_> = partition.members().collect();
        let gpid = partition.gpid;
        let sums = wait_until(&format!("replicas of {gpid} to apply the same decree"), timeout, || {
            let members = members.clone();
            async move {
                let mut sums = Vec::new();
                for node in members {
                    let sum = client
                        .call_node(node, ReplicaChecksum { gpid })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    sums.push(sum);
                }
                if sums.iter().all(|s| s.last_applied == sums[0].last_applied) {
                    Ok(sums)
                } else {
                    Err(format!(
                        "applied decrees {:?}",
                        sums.iter().map(|s| s.last_applied).collect::<Vec<_>>()
                    ))
                }
            }
        })
        .await;
        all.push(sums);
    }
    all
}

/// Asserts every member of every partition holds exactly the same data; returns the primaries'
/// total record count.
pub async fn assert_replicas_identical(client: &Client, app: &AppState) -> u64 {
    let checksums = converged_checksums(client, app, Duration::from_secs(30)).await;
    let mut records = 0;
    for (partition, sums) in app.partitions.iter().zip(&checksums) {
        for sum in &sums[1..] {
            assert_eq!(
                sum, &sums[0],
                "a secondary of {} differs from its primary",
                partition.gpid
            );
        }
        records += sums[0].record_count;
    }
    records
}

/// Waits until every partition of `table` has a primary and all its secondaries.
pub async fn wait_fully_healthy(client: &Client, table: &str, timeout: Duration) -> AppState {
    wait_until(&format!("table {table} to be fully healthy"), timeout, || async {
        let app = client.query_config(table).await.map_err(|e| e.to_string())?;
        let unhealthy: Vec<String> = app
            .partitions
            .iter()
            .filter(|p| p.health() != aerie_proto::meta::PartitionHealth::FullyHealthy)
            .map(|p| format!("{} ({}/{})", p.gpid, p.replica_count(), p.max_replica_count))
            .collect();
        if unhealthy.is_empty() {
            Ok(app)
        } else {
            Err(format!("unhealthy: {}", unhealthy.join(", ")))
        }
    })
    .await
}

/// Waits until every replica of every partition durably records, in its own log, that everything
/// its primary committed is committed: a crash now loses no knowledge of commits.
pub async fn wait_commits_durable(client: &Client, app: &AppState, timeout: Duration) {
    for partition in &app.partitions {
        let gpid = partition.gpid;
        let members: Vec<_> = partition.members().collect();
        wait_until(
            &format!("the commits of {gpid} to be durable everywhere"),
            timeout,
            || {
                let members = members.clone();
                async move {
                    let mut points = Vec::new();
                    for node in members {
                        let infos = client
                            .call_node(node, aerie_proto::replica::QueryReplicas {})
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| e.to_string())?;
                        let info = infos.into_iter().find(|i| i.gpid == gpid).ok_or("replica missing")?;
                        points.push((info.last_committed, info.durable_committed));
                    }
                    let committed = points.iter().map(|p| p.0).max().unwrap_or(0);
                    if points.iter().all(|(c, d)| *c == committed && *d == committed) {
                        Ok(())
                    } else {
                        Err(format!("(committed, durable) per member: {points:?}"))
                    }
                }
            },
        )
        .await;
    }
}
