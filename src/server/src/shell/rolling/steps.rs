//! The steps of a rolling update, one process at a time: each either does what it names or says
//! why it could not; waits are bounded by the step timeout and report what they wait for.

use super::plan::{expand, Role, Step, Target};
use super::Roll;
use crate::shell::drain_plan::Drain;
use aerie_common::NodeAddr;
use aerie_proto::admin::RemoteCommand;
use aerie_proto::meta::{HealthCounts, NodeStatus};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often a wait looks again, and how often it says what it still waits for.
const POLL: Duration = Duration::from_millis(500);
const REPORT_EVERY: Duration = Duration::from_secs(15);

impl Roll {
    /// Does `step` of `target`; returns a note for the progress line.
    pub(super) fn do_step(&mut self, target: Target, step: Step) -> Result<String, String> {
        let node = target.addr;
        let timeout = self.step_timeout();
        match step {
            Step::MaintenanceOn => {
                let text = self
                    .shell
                    .node_maintenance(&node.to_string(), true, Some(self.args.maintenance_seconds))?;
                Ok(text.trim_end().to_string())
            }
            Step::Migrated => self.drain(Drain::MigratePrimaries, node, timeout),
            Step::Downgraded => self.drain(Drain::DowngradeSecondaries, node, timeout),
            Step::Closed => {
                let request = RemoteCommand {
                    name: "replica.kill_partition".to_string(),
                    args: Vec::new(),
                };
                match self.shell.runtime.block_on(self.shell.client.call_node(node, request)) {
                    Ok(reply) if !reply.starts_with("ERR") => Ok(reply.trim_end().to_string()),
                    Ok(reply) => Err(format!("replica.kill_partition on {node}: {}", reply.trim_end())),
                    Err(e) => Err(format!("replica.kill_partition on {node}: {e}")),
                }
            }
            Step::Restarted => {
                let command = expand(self.template(target.role)?, target)?;
                run_command(&command, timeout)?;
                Ok(format!("`{command}`"))
            }
            Step::Healthy => {
                match target.role {
                    Role::Replica => self.wait_for(target, "to be alive with every table fully healthy", |roll| {
                        roll.node_alive(node)?;
                        roll.all_fully_healthy()
                    })?,
                    Role::Meta => self.wait_for(
                        target,
                        "to serve, with every replica server alive and every table fully healthy",
                        |roll| {
                            roll.answers(node)?;
                            roll.shell.block(roll.shell.client.cluster_info())?;
                            roll.all_nodes_alive()?;
                            roll.all_fully_healthy()
                        },
                    )?,
                    Role::Collector => self.wait_for(target, "to serve", |roll| roll.answers(node))?,
                }
                Ok(String::new())
            }
            Step::Done => {
                if target.role == Role::Replica {
                    let text = self.shell.node_maintenance(&node.to_string(), false, None)?;
                    return Ok(text.trim_end().to_string());
                }
                Ok(String::new())
            }
        }
    }

    fn drain(&mut self, drain: Drain, node: NodeAddr, timeout: Duration) -> Result<String, String> {
        let summary = self
            .shell
            .drain_node(drain, &node.to_string(), self.args.parallel, false, timeout)?;
        Ok(summary.trim_end().to_string())
    }

    /// Polls `ready` until it passes or the step times out, saying now and then what is missing.
    fn wait_for(
        &mut self,
        target: Target,
        what: &str,
        mut ready: impl FnMut(&mut Roll) -> Result<(), String>,
    ) -> Result<(), String> {
        let began = Instant::now();
        let mut reported = Instant::now();
        loop {
            let missing = match ready(self) {
                Ok(()) => return Ok(()),
                Err(missing) => missing,
            };
            if began.elapsed() >= self.step_timeout() {
                return Err(format!(
                    "gave up waiting for {target} {what} after {} s: {missing}",
                    began.elapsed().as_secs()
                ));
            }
            if reported.elapsed() >= REPORT_EVERY {
                reported = Instant::now();
                self.say(&format!("{target}: still waiting ({missing})"));
            }
            std::thread::sleep(POLL);
        }
    }

    fn node_alive(&mut self, node: NodeAddr) -> Result<(), String> {
        let nodes = self.shell.block(self.shell.client.list_nodes())?;
        match nodes.iter().find(|n| n.address == node) {
            Some(n) if n.status == NodeStatus::Alive => Ok(()),
            Some(n) => Err(format!("{node} is {}", n.status)),
            None => Err(format!("the meta does not know {node}")),
        }
    }

    fn all_nodes_alive(&mut self) -> Result<(), String> {
        let nodes = self.shell.block(self.shell.client.list_nodes())?;
        let down: Vec<String> = nodes
            .iter()
            .filter(|n| n.status != NodeStatus::Alive)
            .map(|n| n.address.to_string())
            .collect();
        if down.is_empty() {
            Ok(())
        } else {
            Err(format!("not alive: {}", down.join(", ")))
        }
    }

    fn all_fully_healthy(&mut self) -> Result<(), String> {
        let tables = self.shell.block(self.shell.client.list_tables(false))?;
        let unhealthy: Vec<String> = tables
            .iter()
            .filter_map(|t| {
                let counts = HealthCounts::of(&t.partitions);
                (counts.unhealthy > 0).then(|| {
                    format!(
                        "table {}: {} of {} partitions fully healthy",
                        t.info.app_name,
                        counts.fully_healthy,
                        t.partitions.len()
                    )
                })
            })
            .collect();
        if unhealthy.is_empty() {
            Ok(())
        } else {
            Err(unhealthy.join("; "))
        }
    }

    /// The process at `node` answers a remote command itself.
    fn answers(&mut self, node: NodeAddr) -> Result<(), String> {
        let request = RemoteCommand {
            name: "server-info".to_string(),
            args: Vec::new(),
        };
        match self.shell.runtime.block_on(self.shell.client.call_node(node, request)) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{node} does not answer: {e}")),
        }
    }
}

/// Runs one restart command with `sh -c` (its output goes to ours); fails unless it exits 0
/// within `timeout`.
fn run_command(command: &str, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{command}`: {e}"))?;
    let began = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("`{command}` failed ({status})")),
            Ok(None) if began.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{command}` did not end within {} s; killed it",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for `{command}`: {e}")),
        }
    }
}
