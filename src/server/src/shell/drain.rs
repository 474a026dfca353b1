//! `migrate_node` and `downgrade_node`: take a replica server's primaries (by role swap) or its
//! secondaries (out of their configurations) away before it is stopped, several partitions at a
//! time, with a progress line per partition, until the node holds none of them, by the meta's map
//! and by the node's own account. Partitions that cannot move are named with the reason.
//!
//! The meta carries out each move: `move_pri` waits for the old primary's confirmed step-down
//! before the new one is upgraded, so no write is acknowledged by two primaries.

use super::drain_plan::{plan, Drain, PlannedMove};
use super::Shell;
use aerie_common::{ErrorCode, Gpid, MetaLevel, NodeAddr, ParseIdError, WireError};
use aerie_proto::meta::{AppState, Balance, BalanceMove, MoveKind, NodeStatus, PartitionConfig, ProposalType, Propose};
use aerie_proto::replica::{QueryReplicas, ReplicaStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// How often the map is read again.
const POLL: Duration = Duration::from_millis(500);
/// A move still not done after this long is asked for again (the meta may have given it up, e.g.
/// when the old primary did not confirm its step-down); the meta answers busy while it is under way.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(15);

struct InFlight {
    the_move: PlannedMove,
    /// When it was first asked for, and last asked for.
    started: Instant,
    asked: Instant,
}

impl Shell {
    pub(super) fn drain_node(
        &mut self,
        drain: Drain,
        node: &str,
        parallel: usize,
        dry_run: bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let node: NodeAddr = node.parse().map_err(|e: ParseIdError| e.to_string())?;
        let command = drain.command();
        self.check_drain_preconditions(command, node)?;
        if dry_run {
            let (tables, alive) = self.cluster_map()?;
            let planned = plan(drain, node, &tables, &alive);
            let mut text = format!("{command} {node} would move {} partition(s):\n", planned.moves.len());
            for m in &planned.moves {
                text.push_str(&format!("  {}: {}\n", m.gpid, describe_start(drain, node, m)));
            }
            for (gpid, why) in &planned.problems {
                text.push_str(&format!("  {gpid}: cannot move: {why}\n"));
            }
            return Ok(text);
        }
        let started = Instant::now();
        let parallel = parallel.max(1);
        let mut in_flight: BTreeMap<Gpid, InFlight> = BTreeMap::new();
        let mut failed: BTreeMap<Gpid, String> = BTreeMap::new();
        let mut busy: BTreeMap<Gpid, String> = BTreeMap::new();
        let mut moved = 0usize;
        let mut announced = false;
        loop {
            let (tables, alive) = self.cluster_map()?;
            let configs: BTreeMap<Gpid, &PartitionConfig> =
                tables.iter().flat_map(|t| &t.partitions).map(|c| (c.gpid, c)).collect();
            in_flight.retain(|gpid, flight| {
                let config = configs.get(gpid);
                if config.is_some_and(|c| drain.holds(c, node)) {
                    return true;
                }
                moved += 1;
                println!(
                    "[{:>5} s] {gpid}: {}",
                    started.elapsed().as_secs(),
                    describe_done(drain, node, flight, config.copied())
                );
                false
            });
            let planned = plan(drain, node, &tables, &alive);
            if !announced {
                announced = true;
                println!(
                    "{command} {node}: {} partition(s) to move, at most {parallel} at a time{}",
                    planned.moves.len(),
                    match planned.problems.len() {
                        0 => String::new(),
                        n => format!("; {n} cannot move (listed at the end)"),
                    }
                );
            }
            for (gpid, why) in &planned.problems {
                failed.entry(*gpid).or_insert_with(|| why.clone());
            }
            let mut waiting: Vec<PlannedMove> = planned
                .moves
                .into_iter()
                .filter(|m| !in_flight.contains_key(&m.gpid) && !failed.contains_key(&m.gpid))
                .collect();
            // Moves not done for a while are asked for again.
            for flight in in_flight.values_mut() {
                if flight.asked.elapsed() >= ASK_AGAIN_AFTER {
                    flight.asked = Instant::now();
                    match self.ask_move(drain, node, &flight.the_move) {
                        Ok(()) => {}
                        Err(e) if e.code == ErrorCode::ERR_BUSY => {}
                        Err(e) => {
                            failed.insert(flight.the_move.gpid, e.to_string());
                        }
                    }
                }
            }
            in_flight.retain(|gpid, _| !failed.contains_key(gpid));
            while in_flight.len() < parallel && !waiting.is_empty() {
                let the_move = waiting.remove(0);
                match self.ask_move(drain, node, &the_move) {
                    Ok(()) => {
                        println!(
                            "[{:>5} s] {}: {}",
                            started.elapsed().as_secs(),
                            the_move.gpid,
                            describe_start(drain, node, &the_move)
                        );
                        in_flight.insert(
                            the_move.gpid,
                            InFlight {
                                the_move,
                                started: Instant::now(),
                                asked: Instant::now(),
                            },
                        );
                    }
                    // Busy (another move or an add under way there): planned again next round.
                    Err(e) if e.code == ErrorCode::ERR_BUSY => {
                        busy.insert(the_move.gpid, e.to_string());
                    }
                    Err(e) => {
                        failed.insert(the_move.gpid, e.to_string());
                    }
                }
            }
            let _ = std::io::stdout().flush();
            let still_held = configs
                .values()
                .filter(|c| drain.holds(c, node) && !failed.contains_key(&c.gpid))
                .count();
            if in_flight.is_empty() && still_held == 0 {
                break;
            }
            if started.elapsed() >= timeout {
                let waited: BTreeMap<Gpid, String> = busy
                    .into_iter()
                    .filter(|(g, _)| configs.get(g).is_some_and(|c| drain.holds(c, node)))
                    .map(|(g, why)| (g, format!("still waiting: {why}")))
                    .chain(failed)
                    .collect();
                return Err(format!(
                    "{command} {node}: gave up after {} s with {} partition(s) still to move{}",
                    started.elapsed().as_secs(),
                    still_held,
                    list_failures(&waited)
                ));
            }
            std::thread::sleep(POLL);
        }
        self.confirm_on_node(drain, node, started, timeout)?;
        let summary = format!(
            "{command} {node}: {moved} partition(s) moved in {} s; {node} {}",
            started.elapsed().as_secs(),
            match drain {
                Drain::MigratePrimaries => "leads nothing",
                Drain::DowngradeSecondaries => "is a secondary of nothing",
            }
        );
        if failed.is_empty() {
            Ok(format!("{summary}\n"))
        } else {
            Err(format!("{summary}, except:{}", list_failures(&failed)))
        }
    }

    /// The node is a known, alive replica server and the meta level allows manual moves.
    fn check_drain_preconditions(&mut self, command: &str, node: NodeAddr) -> Result<(), String> {
        let nodes = self.block(self.client.list_nodes())?;
        match nodes.iter().find(|n| n.address == node) {
            None => return Err(format!("{command}: {node} is not a replica server of this cluster")),
            Some(n) if n.status != NodeStatus::Alive => {
                return Err(format!(
                    "{command}: {node} is not alive; its replicas are not served there (nothing to move)"
                ))
            }
            Some(_) => {}
        }
        let level = self.block(self.client.meta_level())?;
        if level.effective != MetaLevel::Steady {
            return Err(format!(
                "{command}: the meta level in force is {}{}; moves by hand need steady, so that the balancer does not move primaries back meanwhile (set_meta_level steady)",
                level.effective,
                level.reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn cluster_map(&mut self) -> Result<(Vec<AppState>, BTreeSet<NodeAddr>), String> {
        let tables = self.block(self.client.list_tables(false))?;
        let alive = self
            .block(self.client.list_nodes())?
            .into_iter()
            .filter(|n| n.status == NodeStatus::Alive)
            .map(|n| n.address)
            .collect();
        Ok((tables, alive))
    }

    fn ask_move(&mut self, drain: Drain, node: NodeAddr, the_move: &PlannedMove) -> Result<(), WireError> {
        match drain {
            Drain::MigratePrimaries => self.runtime.block_on(self.client.meta(Balance {
                the_move: BalanceMove {
                    gpid: the_move.gpid,
                    kind: MoveKind::MovePri,
                    from: node,
                    to: the_move.to,
                },
            })),
            Drain::DowngradeSecondaries => self.runtime.block_on(self.client.propose(Propose {
                gpid: the_move.gpid,
                kind: ProposalType::DowngradeToInactive,
                target: the_move.to,
                node,
                force: false,
            })),
        }
    }

    /// Waits until the node itself no longer reports the role taken away (the meta's map changes
    /// before the node hears of it).
    fn confirm_on_node(
        &mut self,
        drain: Drain,
        node: NodeAddr,
        started: Instant,
        timeout: Duration,
    ) -> Result<(), String> {
        let role = match drain {
            Drain::MigratePrimaries => ReplicaStatus::Primary,
            Drain::DowngradeSecondaries => ReplicaStatus::Secondary,
        };
        loop {
            let (tables, _) = self.cluster_map()?;
            let by_map: BTreeSet<Gpid> = tables
                .iter()
                .flat_map(|t| &t.partitions)
                .filter(|c| drain.holds(c, node))
                .map(|c| c.gpid)
                .collect();
            let reported = match self.runtime.block_on(self.client.call_node(node, QueryReplicas {})) {
                Ok(Ok(replicas)) => replicas,
                Ok(Err(e)) => return Err(format!("{node} did not list its replicas: {e}")),
                Err(e) => return Err(format!("{node} did not list its replicas: {e}")),
            };
            let lagging: Vec<String> = reported
                .iter()
                .filter(|r| r.status == role && !by_map.contains(&r.gpid))
                .map(|r| r.gpid.to_string())
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(format!(
                    "{node} still reports itself {role} of {} though the meta moved them",
                    lagging.join(", ")
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

fn describe_start(drain: Drain, node: NodeAddr, m: &PlannedMove) -> String {
    match drain {
        Drain::MigratePrimaries => format!("moving the primary from {node} to {} (ballot {})", m.to, m.ballot),
        Drain::DowngradeSecondaries => format!("{} takes {node} out of the configuration (ballot {})", m.to, m.ballot),
    }
}

fn describe_done(drain: Drain, node: NodeAddr, flight: &InFlight, now: Option<&PartitionConfig>) -> String {
    let Some(config) = now else {
        return "its table is gone".to_string();
    };
    match drain {
        Drain::MigratePrimaries => format!(
            "primary now {} (ballot {} -> {}, {:.1} s)",
            config.primary.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
            flight.the_move.ballot,
            config.ballot,
            flight.started.elapsed().as_secs_f64()
        ),
        Drain::DowngradeSecondaries => format!(
            "{node} left the configuration (ballot {} -> {}, {:.1} s)",
            flight.the_move.ballot,
            config.ballot,
            flight.started.elapsed().as_secs_f64()
        ),
    }
}

fn list_failures(failed: &BTreeMap<Gpid, String>) -> String {
    failed.iter().map(|(g, why)| format!("\n  - {g}: {why}")).collect()
}

impl Shell {
    pub(super) fn drain(&mut self, drain: Drain, args: &super::DrainArgs) -> Result<String, String> {
        self.drain_node(
            drain,
            &args.node,
            args.parallel,
            args.dry_run,
            Duration::from_secs(args.timeout_seconds),
        )
    }
}
