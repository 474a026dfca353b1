//! The decisions of `aerie rolling-update`, kept pure: the restart template's placeholders, the
//! order of the roll (replica servers, then the metas with the leader last, then the collector),
//! the steps of each process, the progress file that lets an interrupted roll resume or be undone,
//! and the pre-flight verdict on the cluster.

use aerie_common::{MetaLevel, NodeAddr};
use aerie_proto::meta::{AppState, NodeInfo, NodeStatus};
use std::collections::BTreeMap;
use std::fmt;

/// What kind of process a step restarts (the template's `%r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Replica,
    Meta,
    Collector,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Replica => "replica",
            Role::Meta => "meta",
            Role::Collector => "collector",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        [Role::Replica, Role::Meta, Role::Collector]
            .into_iter()
            .find(|r| r.name() == text)
    }

    /// The steps of one process of this role, in order.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Role::Replica => &Step::ALL,
            Role::Meta | Role::Collector => &[Step::Restarted, Step::Healthy, Step::Done],
        }
    }
}

/// One process to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub role: Role,
    pub addr: NodeAddr,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role.name(), self.addr)
    }
}

/// A step of one process, named by what is true once it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// `node_maintenance --on`: its replicas wait for it while it is down.
    MaintenanceOn,
    /// `migrate_node`: it leads nothing.
    Migrated,
    /// `downgrade_node`: it is in no configuration.
    Downgraded,
    /// `replica.kill_partition`: its replicas are closed with memtables flushed.
    Closed,
    /// The restart template ran and succeeded.
    Restarted,
    /// It serves again, and every table is fully healthy.
    Healthy,
    /// Maintenance off (replica servers); the process is done.
    Done,
}

impl Step {
    /// Every step, in the order a replica server goes through them.
    const ALL: [Step; 7] = [
        Step::MaintenanceOn,
        Step::Migrated,
        Step::Downgraded,
        Step::Closed,
        Step::Restarted,
        Step::Healthy,
        Step::Done,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::MaintenanceOn => "maintenance-on",
            Step::Migrated => "migrated",
            Step::Downgraded => "downgraded",
            Step::Closed => "closed",
            Step::Restarted => "restarted",
            Step::Healthy => "healthy",
            Step::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == text)
    }
}

/// The command that restarts `target`: `%h` host, `%p` port, `%a` host:port, `%r` role, `%%` a `%`.
pub fn expand(template: &str, target: Target) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&target.addr.socket_addr().ip().to_string()),
            Some('p') => out.push_str(&target.addr.socket_addr().port().to_string()),
            Some('a') => out.push_str(&target.addr.to_string()),
            Some('r') => out.push_str(target.role.name()),
            Some('%') => out.push('%'),
            Some(other) => {
                return Err(format!(
                    "restart template `{template}`: unknown placeholder %{other} (known: %h host, %p port, %a host:port, %r role, %% a percent sign)"
                ))
            }
            None => return Err(format!("restart template `{template}` ends with a lone %")),
        }
    }
    Ok(out)
}

/// The order of the roll: the replica servers as given, then the metas with the leader last (so
/// that the cluster changes leader once), then the collector.
pub fn order(
    replicas: &[NodeAddr],
    metas: &[NodeAddr],
    leader: Option<NodeAddr>,
    collector: Option<NodeAddr>,
) -> Vec<Target> {
    let replicas = replicas.iter().map(|&addr| Target {
        role: Role::Replica,
        addr,
    });
    let standbys = metas.iter().filter(|m| Some(**m) != leader);
    let leader_last = metas.iter().filter(|m| Some(**m) == leader);
    let metas = standbys
        .chain(leader_last)
        .map(|&addr| Target { role: Role::Meta, addr });
    let collector = collector.map(|addr| Target {
        role: Role::Collector,
        addr,
    });
    replicas.chain(metas).chain(collector).collect()
}

/// What an earlier run of the roll did, as kept in the progress file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The meta level before the roll set it to steady; restored at the end.
    pub level_before: Option<MetaLevel>,
    /// The last step done of every process started.
    pub done: BTreeMap<Target, Step>,
}

impl Progress {
    /// The next step of `target`, or None when it is done.
    pub fn next_step(&self, target: Target) -> Option<Step> {
        let steps = target.role.steps();
        match self.done.get(&target) {
            None => Some(steps[0]),
            Some(last) => steps.iter().skip_while(|s| *s != last).nth(1).copied(),
        }
    }

    /// Processes started and not done (at most one, unless the file was edited).
    pub fn unfinished(&self) -> Vec<(Target, Step)> {
        self.done
            .iter()
            .filter(|(_, step)| **step != Step::Done)
            .map(|(t, s)| (*t, *s))
            .collect()
    }

    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# aerie rolling-update progress: the last step done of each process. Run the same\n\
             # command again to resume, or with --abort to undo; delete the file to start over.\n",
        );
        if let Some(level) = self.level_before {
            text.push_str(&format!("level {level}\n"));
        }
        for (target, step) in &self.done {
            text.push_str(&format!("{} {} {}\n", target.role.name(), target.addr, step.name()));
        }
        text
    }

    pub fn parse(text: &str) -> Result<Progress, String> {
        let mut progress = Progress::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || format!("line {}: cannot read `{line}`", n + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["level", level] => progress.level_before = Some(level.parse().map_err(|_| bad())?),
                [role, addr, step] => {
                    let target = Target {
                        role: Role::parse(role).ok_or_else(bad)?,
                        addr: addr.parse().map_err(|_| bad())?,
                    };
                    progress.done.insert(target, Step::parse(step).ok_or_else(bad)?);
                }
                _ => return Err(bad()),
            }
        }
        Ok(progress)
    }
}

/// What the pre-flight check looks at.
pub struct ClusterState<'a> {
    pub tables: &'a [AppState],
    pub nodes: &'a [NodeInfo],
    pub effective_level: MetaLevel,
    /// Moves under way (balancer or operator).
    pub moves_in_progress: u32,
}

/// Why the roll cannot go on now (empty: it can). `rolling` are replica servers of the roll;
/// `exempt` is the one an interrupted run left mid-way (it may be down or in maintenance).
pub fn preflight(state: &ClusterState<'_>, rolling: &[NodeAddr], exempt: Option<NodeAddr>) -> Vec<String> {
    let mut problems = Vec::new();
    for node in rolling {
        match state.nodes.iter().find(|n| n.address == *node) {
            None => problems.push(format!("{node} is not a replica server of this cluster")),
            Some(n) if n.status != NodeStatus::Alive && Some(*node) != exempt => {
                problems.push(format!("{node} is {}", n.status))
            }
            _ => {}
        }
    }
    for n in state.nodes.iter().filter(|n| !rolling.contains(&n.address)) {
        if n.status != NodeStatus::Alive {
            problems.push(format!(
                "{} is {} (not part of the roll, but the cluster is one node short)",
                n.address, n.status
            ));
        }
    }
    for n in state.nodes {
        if n.maintenance_until_secs.is_some() && Some(n.address) != exempt {
            problems.push(format!(
                "{} is in maintenance already (node_maintenance -n {} --off, if nobody works on it)",
                n.address, n.address
            ));
        }
    }
    let alive = state.nodes.iter().filter(|n| n.status == NodeStatus::Alive).count();
    if alive < 2 {
        problems.push(format!(
            "{alive} replica server(s) alive: a roll needs another to take over"
        ));
    }
    for table in state.tables {
        let name = &table.info.app_name;
        if table.info.max_replica_count < 3 {
            problems.push(format!(
                "table {name} keeps {} replica(s) per partition: a node cannot leave its partitions without stopping their writes (two replicas must take each write), so a restart fails requests",
                table.info.max_replica_count
            ));
            continue;
        }
        let unhealthy: Vec<String> = table
            .partitions
            .iter()
            .filter(|c| c.health() != aerie_proto::meta::PartitionHealth::FullyHealthy && !is_exempt_gap(c, exempt))
            .map(|c| format!("{} ({} of {} replicas)", c.gpid, c.replica_count(), c.max_replica_count))
            .collect();
        if !unhealthy.is_empty() {
            let shown = unhealthy.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            problems.push(format!(
                "table {name}: {} of {} partitions not fully healthy: {shown}{}",
                unhealthy.len(),
                table.partitions.len(),
                if unhealthy.len() > 5 { ", ..." } else { "" }
            ));
        }
    }
    if state.effective_level < MetaLevel::Steady {
        problems.push(format!(
            "the meta level in force is {}: the cure does not run, so restarted replicas would not come back",
            state.effective_level
        ));
    }
    if state.moves_in_progress > 0 {
        problems.push(format!(
            "{} move(s) under way (balancer or operator); wait for them to end",
            state.moves_in_progress
        ));
    }
    problems
}

/// A partition short by exactly the replica the interrupted run took away is expected.
fn is_exempt_gap(config: &aerie_proto::meta::PartitionConfig, exempt: Option<NodeAddr>) -> bool {
    exempt.is_some_and(|node| {
        config.primary.is_some()
            && config.replica_count() + 1 >= config.max_replica_count as usize
            && !config.is_member(node)
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
