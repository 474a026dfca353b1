//! `recover`: rebuild the cluster map from the replica servers (a meta started with
//! `recover_from_replica_server = true` over an empty store).

use super::Shell;
use aerie_common::NodeAddr;
use aerie_proto::meta::Recover;
use std::path::Path;

/// Reads a node list: one `host:port` per line (the first word; `#` starts a comment).
pub fn read_node_file(path: &Path) -> Result<Vec<NodeAddr>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let word = line.split('#').next()?.split_whitespace().next()?;
            Some(
                word.parse::<NodeAddr>()
                    .map_err(|e| format!("{} line {}: '{word}' is not host:port ({e})", path.display(), i + 1)),
            )
        })
        .collect()
}

impl Shell {
    pub(super) fn recover(
        &mut self,
        file: Option<&Path>,
        list: Option<&str>,
        skip_bad_nodes: bool,
        skip_lost_partitions: bool,
    ) -> Result<String, String> {
        let nodes = match (file, list) {
            (Some(file), None) => read_node_file(file)?,
            (None, Some(list)) => NodeAddr::parse_list(list).map_err(|e| format!("bad node list '{list}': {e}"))?,
            _ => return Err("give the replica servers with -f NODE_FILE or -s host:port,...".into()),
        };
        if nodes.is_empty() {
            return Err("the node list is empty".into());
        }
        let mut text = format!("recover from {} replica servers:\n", nodes.len());
        for node in &nodes {
            text.push_str(&format!("  {node}\n"));
        }
        let answer = self.block(self.client.meta(Recover {
            nodes,
            skip_bad_nodes,
            skip_lost_partitions,
        }));
        let report = match answer {
            Ok(report) => report,
            Err(e) => return Err(format!("{text}Recover result: {e}")),
        };
        for node in &report.nodes {
            match &node.result {
                Ok(count) => text.push_str(&format!("  {}: {count} replicas\n", node.node)),
                Err(e) => text.push_str(&format!("  {}: skipped ({e})\n", node.node)),
            }
        }
        text.push_str(&format!(
            "recovered {} tables ({}) with {} partitions; next app_id {}\n",
            report.tables.len(),
            report.tables.join(", "),
            report.partitions,
            report.next_app_id
        ));
        if !report.lost_partitions.is_empty() {
            let lost: Vec<String> = report.lost_partitions.iter().map(|g| g.to_string()).collect();
            text.push_str(&format!("lost partitions (recreated empty): {}\n", lost.join(", ")));
        }
        text.push_str("Recover result: ERR_OK\n");
        Ok(text)
    }
}
