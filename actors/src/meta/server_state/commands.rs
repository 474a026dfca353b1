//! The meta server's remote commands: the cure's runtime knobs (`meta.lb.*`), the freeze threshold
//! (`meta.live_percentage`), and its part of `server-stat`.

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
            "meta: tables={}, partitions={partitions}, alive_nodes={alive}, unalive_nodes={}, meta_level={}, adding_secondaries={}",
            self.available_apps().count(),
            self.nodes.len() - alive,
            level.pegasus_name(),
            self.adding.len()
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
            "meta.lb.add_secondary_enable_flow_control" => {
                let change = bool_knob(args)?;
                if let KnobChange::Set(on) = change {
                    self.knobs.flow_control = on;
                }
                show_or_ok(&change, self.knobs.flow_control)
            }
            "meta.lb.add_secondary_max_count_for_one_node" => {
                let change = int_knob(args, defaults.max_adds_per_node as u64)?;
                if let KnobChange::Set(n) = change {
                    self.knobs.max_adds_per_node = n.min(u32::MAX as u64) as u32;
                }
                show_or_ok(&change, self.knobs.max_adds_per_node as u64)
            }
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
        }
        reply
    }
}
