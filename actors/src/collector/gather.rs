//! Asking the cluster: the tables from the meta leader, and what every alive replica server
//! reports of its replicas (a server that does not answer simply reports nothing).

use super::table_stats::Reported;
use aerie_client::Client;
use aerie_common::{NodeAddr, WireResult};
use aerie_proto::meta::{AppState, NodeStatus};
use aerie_proto::replica::QueryReplicas;

/// The available tables, and each alive replica server's replicas; also the servers that did not
/// answer.
pub async fn gather(client: &Client) -> WireResult<(Vec<AppState>, Reported, Vec<NodeAddr>)> {
    let tables = client.list_tables(false).await?;
    let nodes: Vec<NodeAddr> = client
        .list_nodes()
        .await?
        .into_iter()
        .filter(|n| n.status == NodeStatus::Alive)
        .map(|n| n.address)
        .collect();
    let answers = futures::future::join_all(nodes.iter().map(|node| client.call_node(*node, QueryReplicas {}))).await;
    let mut reported = Reported::new();
    let mut silent = Vec::new();
    for (node, answer) in nodes.iter().zip(answers) {
        match answer {
            Ok(Ok(replicas)) => reported.extend(replicas.into_iter().map(|r| ((*node, r.gpid), r))),
            _ => silent.push(*node),
        }
    }
    Ok((tables, reported, silent))
}
