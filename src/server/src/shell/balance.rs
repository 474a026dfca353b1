//! Moving replicas: `balance` (one manual move), `balance_plan` (the balancer's dry run),
//! `offline_node` (empty nodes so that they can be stopped, with progress) and `remove_node`
//! (forget a stopped, empty node).

use super::admin::emit;
use super::commands::OutputArgs;
use super::report::Report;
use super::Shell;
use aerie_common::{NodeAddr, ParseIdError};
use aerie_proto::admin::RemoteCommand;
use aerie_proto::meta::{
    Balance, BalanceMove, CancelOffline, MoveKind, OfflineNodes, OfflineProgress, QueryBalancePlan,
    QueryOfflineProgress, RemoveNode,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

fn parse_node(text: &str) -> Result<NodeAddr, String> {
    text.parse().map_err(|e: ParseIdError| e.to_string())
}

fn parse_nodes(texts: &[String]) -> Result<Vec<NodeAddr>, String> {
    texts
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(parse_node)
        .collect()
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

/// How often `offline_node` looks at the progress, and how often it prints a line when nothing changed.
const POLL: Duration = Duration::from_secs(1);
const QUIET_LINE_EVERY: Duration = Duration::from_secs(10);

impl Shell {
    pub(super) fn balance(&mut self, gpid: &str, kind: &str, from: &str, to: &str) -> Result<String, String> {
        let the_move = BalanceMove {
            gpid: gpid.parse().map_err(|e: ParseIdError| e.to_string())?,
            kind: kind.parse::<MoveKind>()?,
            from: parse_node(from)?,
            to: parse_node(to)?,
        };
        match self.block(self.client.meta(Balance { the_move })) {
            Ok(()) => Ok("send balance proposal result: ERR_OK\n".into()),
            Err(e) => Err(format!("send balance proposal result: {e}")),
        }
    }

    pub(super) fn balance_plan(&mut self, out: &OutputArgs) -> Result<String, String> {
        let plan = self.block(self.client.meta(QueryBalancePlan {}))?;
        let mut report = Report::default();
        let rows = plan
            .moves
            .iter()
            .map(|m| {
                vec![
                    m.the_move.gpid.to_string(),
                    m.app_name.clone(),
                    m.the_move.kind.to_string(),
                    m.the_move.from.to_string(),
                    m.the_move.to.to_string(),
                    m.copy_bytes.map_or("-".to_string(), megabytes),
                ]
            })
            .collect();
        report.table("moves", &["gpid", "app_name", "type", "from", "to", "copy_mb"], rows);
        let count = |kind: MoveKind| plan.moves.iter().filter(|m| m.the_move.kind == kind).count();
        let copies = count(MoveKind::CopyPri) + count(MoveKind::CopySec);
        let copy_bytes: u64 = plan.moves.iter().filter_map(|m| m.copy_bytes).sum();
        report.pairs(
            "summary",
            vec![
                ("move_pri", count(MoveKind::MovePri).to_string()),
                ("copy_pri", count(MoveKind::CopyPri).to_string()),
                ("copy_sec", count(MoveKind::CopySec).to_string()),
                ("copies", copies.to_string()),
                ("copies_lower_bound", plan.copy_lower_bound.to_string()),
                ("copy_mb", megabytes(copy_bytes)),
                ("moves_in_progress", plan.in_progress.len().to_string()),
                (
                    "would_act_now",
                    match &plan.blocked {
                        None => "yes".to_string(),
                        Some(reason) => format!("no: {reason}"),
                    },
                ),
            ],
        );
        emit(&report, out)
    }

    pub(super) fn remove_node(&mut self, nodes: &[String]) -> Result<String, String> {
        let mut text = String::new();
        for node in parse_nodes(nodes)? {
            self.block(self.client.meta(RemoveNode { node }))
                .map_err(|e| format!("{text}remove node {node} failed: {e}"))?;
            text.push_str(&format!("remove node {node} succeed\n"));
        }
        Ok(text)
    }

    pub(super) fn offline_node(
        &mut self,
        nodes: &[String],
        check_only: bool,
        cancel: bool,
        no_wait: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let nodes = parse_nodes(nodes)?;
        if cancel {
            self.block(self.client.meta(CancelOffline { nodes: nodes.clone() }))?;
            return Ok(format!("{}: no longer emptied, off the black list\n", join(&nodes)));
        }
        let check = self.block(self.client.meta(OfflineNodes {
            nodes: nodes.clone(),
            check_only,
        }))?;
        let mut text = String::new();
        for note in &check.notes {
            text.push_str(&format!("note: {note}\n"));
        }
        if !check.problems.is_empty() {
            let problems: Vec<String> = check.problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(format!(
                "{text}offline_node {} refused; nothing changed:\n{}",
                join(&nodes),
                problems.join("\n")
            ));
        }
        text.push_str("pre-flight checks passed\n");
        if check_only {
            return Ok(text);
        }
        text.push_str(&format!(
            "{} black-listed for new replicas; their primaries and replicas are moving away\n",
            join(&nodes)
        ));
        if no_wait {
            text.push_str("follow it with `offline_node -n ...` again or `nodes -d`\n");
            return Ok(text);
        }
        print!("{text}");
        let _ = std::io::stdout().flush();
        let done = self.wait_until_empty(&nodes, timeout)?;
        Ok(done)
    }

    /// Prints progress until the nodes hold nothing and every partition is fully healthy.
    fn wait_until_empty(&mut self, nodes: &[NodeAddr], timeout: Duration) -> Result<String, String> {
        let started = Instant::now();
        let receivers: Vec<NodeAddr> = self
            .block(self.client.list_nodes())?
            .into_iter()
            .map(|n| n.address)
            .filter(|n| !nodes.contains(n))
            .collect();
        let learned_before = self.learned_bytes(&receivers);
        let mut last_line = String::new();
        let mut last_print = Instant::now();
        loop {
            let progress: OfflineProgress = self.block(self.client.meta(QueryOfflineProgress {}))?;
            let mine: Vec<_> = progress.nodes.iter().filter(|n| nodes.contains(&n.node)).collect();
            let remaining: u32 = mine.iter().map(|n| n.replicas).sum();
            let learned = self.learned_bytes(&receivers).saturating_sub(learned_before);
            let per_node = mine
                .iter()
                .map(|n| format!("{}={} (primaries {})", n.node, n.replicas, n.primaries))
                .collect::<Vec<_>>()
                .join(", ");
            let mut line = format!(
                "replicas remaining: {remaining} [{per_node}]; moves under way: {}; learned: {} MB",
                progress.moves_in_progress,
                megabytes(learned)
            );
            if let Some(reason) = &progress.blocked {
                line.push_str(&format!("; waiting: {reason}"));
            }
            if line != last_line || last_print.elapsed() >= QUIET_LINE_EVERY {
                println!("[{:>5} s] {line}", started.elapsed().as_secs());
                let _ = std::io::stdout().flush();
                last_line = line;
                last_print = Instant::now();
            }
            if remaining == 0 && progress.moves_in_progress == 0 && progress.unhealthy_partitions == 0 {
                return Ok(format!(
                    "{}: no replica left, every partition fully healthy ({} s, {} MB learned).\n\
                     Stop the node(s) now (e.g. systemctl stop aerie-replica@PORT), then forget them: remove_node -n NODE\n",
                    join(nodes),
                    started.elapsed().as_secs(),
                    megabytes(learned)
                ));
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "gave up waiting after {} s; the nodes keep being emptied (offline_node --cancel stops it)",
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Bytes the replica servers' learners received so far (their `server-stat`).
    fn learned_bytes(&self, nodes: &[NodeAddr]) -> u64 {
        let request = RemoteCommand {
            name: "server-stat".into(),
            args: Vec::new(),
        };
        let client = self.client.clone();
        let replies = self.runtime.block_on(futures::future::join_all(
            nodes.iter().map(|n| client.call_node(*n, request.clone())),
        ));
        replies
            .into_iter()
            .flatten()
            .filter_map(|reply| stat_value(&reply, "learn_bytes"))
            .sum()
    }
}

/// The value of `key=N` in a `server-stat` reply.
fn stat_value(reply: &str, key: &str) -> Option<u64> {
    let fields: BTreeMap<&str, &str> = reply
        .split([',', ' ', ':'])
        .filter_map(|field| field.trim().split_once('='))
        .collect();
    fields.get(key)?.parse().ok()
}

fn join(nodes: &[NodeAddr]) -> String {
    nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_value_is_read_from_a_server_stat_reply() {
        let reply = "replica: replicas=8, primaries=3, learn_rounds=2, learn_bytes=12345, log_bytes=9";
        assert_eq!(stat_value(reply, "learn_bytes"), Some(12345));
        assert_eq!(stat_value(reply, "missing"), None);
    }

    #[test]
    fn node_lists_may_be_repeated_or_comma_separated() {
        let nodes = parse_nodes(&["127.0.0.1:1,127.0.0.1:2".into(), "127.0.0.1:3".into()]).unwrap();
        assert_eq!(nodes.len(), 3);
        assert!(parse_nodes(&["nonsense".into()]).is_err());
    }
}
