//! The meta server's remote commands: the runtime knobs of the cure and the balancer (`meta.lb.*`),
//! the freeze threshold (`meta.live_percentage`), and its part of `server-stat`.

use super::ServerState;
use crate::commands::{bool_knob, int_knob, KnobChange};
use actix::prelude::*;
use aerie_common::NodeAddr;
use std::collections::BTreeSet;
use tracing::info;

/// A `meta.*` command, or `server-stat`.
#[derive(Message)]
#[rtype(result = "String")]
pub struct MetaCommand {
    pub name: String,
    pub args: Vec<String>,
}

/// The commands `MetaCommand` understands, with their help.
pub const META_COMMANDS: &[(&str, &str)] = &[
    (
        "meta.lb.assign_delay_ms",
        "[ms|DEFAULT] how long a missing secondary waits for its node to return",
    ),
    (
        "meta.lb.assign_secondary_black_list",
        "[host:port,...|clear] nodes that never receive a new secondary",
    ),
    (
        "meta.lb.add_secondary_enable_flow_control",
        "[true|false] limit concurrent additions per node",
    ),
    (
        "meta.lb.add_secondary_max_count_for_one_node",
        "[n|DEFAULT] concurrent additions per receiving node (0 stops them)",
    ),
    ("meta.lb.balancer_in_turn", "[true|false] balance one table at a time"),
    (
        "meta.lb.only_primary_balancer",
        "[true|false] balance primaries only (no copy_sec)",
    ),
    (
        "meta.lb.only_move_primary",
        "[true|false] balance primaries by role swap only (no copy_pri)",
    ),
    (
        "meta.lb.get_balance_operation_count",
        "moves the balancer would still make (-1 while a node has not reported)",
    ),
    (
        "meta.live_percentage",
        "[n|DEFAULT] freeze below this percentage of live nodes (node_live_percentage_threshold_for_update)",
    ),
];

fn show_or_ok<T: std::fmt::Display>(change: &KnobChange<T>, current: T) -> String {
    match change {
        KnobChange::Show => current.to_string(),
        KnobChange::Set(_) => "OK".to_string(),
    }
}

/// Shows or sets a boolean knob.
fn bool_command(args: &[String], knob: &mut bool) -> Result<String, String> {
    let change = bool_knob(args)?;
    if let KnobChange::Set(on) = change {
        *knob = on;
    }
    Ok(show_or_ok(&change, *knob))
}

impl ServerState {
    fn black_list_command(&mut self, args: &[String]) -> String {
        match args {
            [] => self
                .knobs
                .black_list
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
            [word] if word.eq_ignore_ascii_case("clear") => {
                self.knobs.black_list.clear();
                info!("assign_secondary_black_list cleared");
                "OK".into()
            }
            [list] => match NodeAddr::parse_list(list) {
                Ok(nodes) => {
                    self.knobs.black_list = nodes.into_iter().collect::<BTreeSet<_>>();
                    info!(black_list = %list, "assign_secondary_black_list set");
                    "OK".into()
                }
                Err(e) => format!("ERR: {e}"),
            },
            _ => "ERR: takes one comma-separated list of host:port, or clear".into(),
        }
    }

    fn stat(&self) -> String {
        let (level, _) = self.effective_level();
        let partitions: usize = self.available_apps().map(|a| a.partitions.len()).sum();
        let alive = self.alive_nodes().count();
        format!(
            "meta: tables={}, partitions={partitions}, alive_nodes={alive}, unalive_nodes={}, meta_level={}, adding_secondaries={}, moves_in_progress={}, balance_operation_count={}, leaving_nodes={}",
            self.available_apps().count(),
            self.nodes.len() - alive,
            level.pegasus_name(),
            self.adding.len(),
            self.moves.len(),
            self.balance_operation_count,
            self.leaving.len()
        )
    }

    fn run_command(&mut self, name: &str, args: &[String]) -> Result<String, String> {
        let defaults = &self.params.knobs;
        Ok(match name {
            "server-stat" => self.stat(),
            "meta.lb.assign_delay_ms" => {
                let change = int_knob(args, defaults.assign_delay_ms)?;
                if let KnobChange::Set(ms) = change {
                    self.knobs.assign_delay_ms = ms;
                }
                show_or_ok(&change, self.knobs.assign_delay_ms)
            }
            "meta.lb.assign_secondary_black_list" => self.black_list_command(args),
            "meta.lb.add_secondary_enable_flow_control" => bool_command(args, &mut self.knobs.flow_control)?,
            "meta.lb.add_secondary_max_count_for_one_node" => {
                let change = int_knob(args, defaults.max_adds_per_node as u64)?;
                if let KnobChange::Set(n) = change {
                    self.knobs.max_adds_per_node = n.min(u32::MAX as u64) as u32;
                }
                show_or_ok(&change, self.knobs.max_adds_per_node as u64)
            }
            "meta.lb.balancer_in_turn" => bool_command(args, &mut self.balance_options.in_turn)?,
            "meta.lb.only_primary_balancer" => bool_command(args, &mut self.balance_options.only_primary)?,
            "meta.lb.only_move_primary" => bool_command(args, &mut self.balance_options.only_move_primary)?,
            "meta.lb.get_balance_operation_count" => match args {
                [] => self.balance_operation_count.to_string(),
                _ => return Err("ERR: takes no argument".into()),
            },
            "meta.live_percentage" => {
                let change = int_knob(
                    args,
                    self.params.freeze.node_live_percentage_threshold_for_update as u64,
                )?;
                if let KnobChange::Set(percent) = change {
                    if percent > 100 {
                        return Err(format!("ERR: {percent} is not a percentage"));
                    }
                    self.freeze.node_live_percentage_threshold_for_update = percent as u32;
                }
                show_or_ok(&change, self.freeze.node_live_percentage_threshold_for_update as u64)
            }
            other => return Err(format!("ERR: unknown command '{other}'")),
        })
    }
}

impl Handler<MetaCommand> for ServerState {
    type Result = String;

    fn handle(&mut self, command: MetaCommand, ctx: &mut Self::Context) -> String {
        let reply = self.run_command(&command.name, &command.args).unwrap_or_else(|e| e);
        if reply == "OK" {
            info!(command = %command.name, args = ?command.args, "meta knob changed");
            self.announce_level();
            self.schedule_cure(ctx);
            self.balancer.do_send(crate::meta::balancer::actor::KickBalancer);
        }
        reply
    }
}
