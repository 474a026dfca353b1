//! The shell's commands, parsed with clap so that every command has `--help` and clear errors.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(no_binary_name = true, disable_version_flag = true, help_template = "{subcommands}")]
pub struct Line {
    #[command(subcommand)]
    pub command: ShellCommand,
}

/// `-o FILE` and `-j`, accepted by every listing.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Write the output to FILE instead of the screen.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print JSON.
    #[arg(short = 'j', long = "json")]
    pub json: bool,
}

/// The arguments of `migrate_node` and `downgrade_node`.
#[derive(Args, Debug, Clone)]
pub struct DrainArgs {
    /// The replica server (host:port).
    #[arg(short = 'n', long = "node")]
    pub node: String,
    /// Partitions moved at once.
    #[arg(short = 'p', long = "parallel", default_value_t = 4)]
    pub parallel: usize,
    /// Only print what would move.
    #[arg(long = "dry_run")]
    pub dry_run: bool,
    /// Give up waiting after this long.
    #[arg(long = "timeout_seconds", default_value_t = 600)]
    pub timeout_seconds: u64,
}

/// Which processes a remote command goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    #[value(name = "meta-server")]
    MetaServer,
    #[value(name = "replica-server")]
    ReplicaServer,
    All,
}

/// `-t` and `-l`: the processes a command goes to.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Every meta server, every replica server the meta knows, or both.
    #[arg(short = 't', long = "type", value_enum, default_value = "all")]
    pub kind: TargetKind,
    /// These processes instead, comma separated.
    #[arg(short = 'l', long = "list", value_name = "HOST:PORT,...")]
    pub list: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeFilter {
    Alive,
    Unalive,
}

#[derive(Subcommand, Debug)]
pub enum ShellCommand {
    /// Create a table.
    Create {
        name: String,
        /// Partition count (a power of two).
        #[arg(short = 'p', long = "partition_count", default_value_t = 8)]
        partitions: u32,
        /// Replica count.
        #[arg(short = 'r', long = "replica_count", default_value_t = 3)]
        replicas: u32,
    },
    /// Drop a table.
    Drop { name: String },
    /// Bring back a dropped table (by its app id, as `ls -a` lists it), optionally renamed.
    Recall { app_id: u32, new_name: Option<String> },
    /// List tables.
    Ls {
        /// Add the health of every table.
        #[arg(short = 'd', long = "detailed")]
        detailed: bool,
        /// Include dropped tables.
        #[arg(short = 'a', long = "all")]
        all: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show one table; -d adds every partition and the replicas per node.
    App {
        name: String,
        #[arg(short = 'd', long = "detailed")]
        detailed: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List replica servers.
    Nodes {
        /// Add replica counts per node.
        #[arg(short = 'd', long = "detailed")]
        detailed: bool,
        /// Only nodes with this status.
        #[arg(short = 's', long = "status", value_enum)]
        status: Option<NodeFilter>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show the cluster's meta servers, store, level and balance.
    #[command(name = "cluster_info")]
    ClusterInfo {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Run a command of the processes' command registry (`remote_command help` lists them).
    #[command(name = "remote_command", trailing_var_arg = true)]
    RemoteCommand {
        #[command(flatten)]
        targets: TargetArgs,
        /// The command and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Version, roles and uptime of each process.
    #[command(name = "server_info")]
    ServerInfo {
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Statistics of each process: replicas per role, learning, meta state.
    #[command(name = "server_stat")]
    ServerStat {
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Send one low-level configuration proposal about NODE for a partition.
    Propose {
        /// Skip the checks that TARGET is the primary and that the meta level allows it.
        #[arg(short = 'f', long = "force")]
        force: bool,
        #[arg(short = 'g', long = "gpid")]
        gpid: String,
        /// ASSIGN_PRIMARY, UPGRADE_TO_PRIMARY, ADD_SECONDARY, UPGRADE_TO_SECONDARY,
        /// DOWNGRADE_TO_SECONDARY, DOWNGRADE_TO_INACTIVE or REMOVE.
        #[arg(short = 'p', long = "type")]
        kind: String,
        /// The node that carries it out (normally the primary).
        #[arg(short = 't', long = "target")]
        target: String,
        /// The node it is about.
        #[arg(short = 'n', long = "node")]
        node: String,
    },
    /// Move one replica by hand (meta level steady): move_pri swaps the primary with a secondary;
    /// copy_pri and copy_sec copy the primary or a secondary to a node that does not serve it.
    Balance {
        #[arg(short = 'g', long = "gpid")]
        gpid: String,
        /// move_pri, copy_pri or copy_sec.
        #[arg(short = 'p', long = "type")]
        kind: String,
        #[arg(short = 'f', long = "from")]
        from: String,
        #[arg(short = 't', long = "to")]
        to: String,
    },
    /// What the balancer would do now, without doing it: every move, its type and the data it copies.
    #[command(name = "balance_plan")]
    BalancePlan {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Empty replica servers so that they can be stopped: checks that it is safe, black-lists them,
    /// moves their primaries away, copies their replicas elsewhere, and shows progress until done.
    #[command(name = "offline_node")]
    OfflineNode {
        /// A node to empty (repeat for several).
        #[arg(short = 'n', long = "node", required = true)]
        nodes: Vec<String>,
        /// Only run the pre-flight checks.
        #[arg(long = "check")]
        check: bool,
        /// Stop emptying the nodes and take them off the black list.
        #[arg(long = "cancel")]
        cancel: bool,
        /// Start, and return without waiting until the nodes are empty.
        #[arg(long = "no_wait")]
        no_wait: bool,
        /// Give up waiting after this long.
        #[arg(long = "timeout_seconds", default_value_t = 24 * 3600)]
        timeout_seconds: u64,
    },
    /// Put a replica server in maintenance (no new replicas go to it; its replicas wait for it
    /// while it is down instead of being copied elsewhere) or take it out; it ends by itself after
    /// `--seconds` (at most meta_server.maintenance_max_seconds, the default).
    #[command(name = "node_maintenance")]
    NodeMaintenance {
        #[arg(short = 'n', long = "node")]
        node: String,
        #[arg(long = "on", conflicts_with = "off", required_unless_present = "off")]
        on: bool,
        #[arg(long = "off")]
        off: bool,
        #[arg(long = "seconds", conflicts_with = "off")]
        seconds: Option<u64>,
    },
    /// Move every primary off a replica server by role swap with a secondary elsewhere (no data
    /// copied), several partitions at a time, until the node leads nothing (meta level steady).
    #[command(name = "migrate_node")]
    MigrateNode {
        #[command(flatten)]
        drain: DrainArgs,
    },
    /// Take a replica server out of every partition it is a secondary of (DOWNGRADE_TO_INACTIVE),
    /// so that writes stop waiting for it before it stops (meta level steady; its primaries first
    /// with migrate_node).
    #[command(name = "downgrade_node")]
    DowngradeNode {
        #[command(flatten)]
        drain: DrainArgs,
    },
    /// Forget replica servers that are stopped and hold no replica (no meta restart needed).
    #[command(name = "remove_node")]
    RemoveNode {
        #[arg(short = 'n', long = "node", required = true)]
        nodes: Vec<String>,
    },
    /// Dead partitions: their former replicas, what they reported, and which to make primary.
    #[command(name = "ddd_diagnose")]
    DddDiagnose {
        #[arg(short = 'g', long = "gpid")]
        gpid: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Rebuild the cluster map from the replica servers (meta started with
    /// recover_from_replica_server = true over an empty store).
    Recover {
        /// A file listing the replica servers, one host:port per line.
        #[arg(short = 'f', long = "node_list_file", value_name = "NODE_FILE")]
        file: Option<PathBuf>,
        /// The replica servers, comma separated.
        #[arg(short = 's', long = "node_list_str", value_name = "HOST:PORT,...")]
        list: Option<String>,
        /// Go on without replica servers that do not answer.
        #[arg(long = "skip_bad_nodes")]
        skip_bad_nodes: bool,
        /// Recover even if some partitions have no replica left (they come back empty).
        #[arg(long = "skip_lost_partitions")]
        skip_lost_partitions: bool,
    },
    /// Show the meta level as set, and the level in force when the meta froze itself.
    #[command(name = "get_meta_level")]
    GetMetaLevel,
    /// Set the meta level: blind, freezed, steady (cure only) or lively (cure and balance).
    #[command(name = "set_meta_level")]
    SetMetaLevel { level: String },
    /// Select the table the data commands work on.
    Use { name: String },
    /// Write a value: set HASH_KEY SORT_KEY VALUE [TTL_SECONDS].
    Set {
        hash_key: String,
        sort_key: String,
        value: String,
        ttl_seconds: Option<u32>,
    },
    /// Read a value.
    Get { hash_key: String, sort_key: String },
    /// Delete a value.
    Del { hash_key: String, sort_key: String },
    /// Read several sort keys of a hash key (all of them when none is given).
    #[command(name = "multi_get")]
    MultiGet {
        hash_key: String,
        sort_keys: Vec<String>,
        /// Stop after this many records (0 = no limit).
        #[arg(long = "max_count", default_value_t = 0)]
        max_count: u32,
    },
    /// Write several values of a hash key: multi_set HASH_KEY SORT_KEY VALUE [SORT_KEY VALUE...].
    #[command(name = "multi_set")]
    MultiSet {
        hash_key: String,
        #[arg(required = true, num_args = 2..)]
        pairs: Vec<String>,
        /// Time to live of every value, in seconds.
        #[arg(long = "ttl", default_value_t = 0)]
        ttl_seconds: u32,
    },
    /// Delete several sort keys of a hash key.
    #[command(name = "multi_del")]
    MultiDel {
        hash_key: String,
        #[arg(required = true)]
        sort_keys: Vec<String>,
    },
    /// Add to an integer value: incr HASH_KEY SORT_KEY [INCREMENT].
    #[command(allow_negative_numbers = true)]
    Incr {
        hash_key: String,
        sort_key: String,
        #[arg(default_value_t = 1)]
        increment: i64,
    },
    /// Set a value if a check on another (or the same) sort key passes.
    #[command(name = "check_and_set")]
    CheckAndSet {
        hash_key: String,
        /// The sort key whose value is checked.
        #[arg(short = 'c', long = "check_sort_key", default_value = "")]
        check_sort_key: String,
        /// not_exist, not_exist_or_empty, exist, not_empty, match_anywhere, match_prefix,
        /// match_postfix, bytes_less, bytes_less_or_equal, bytes_equal, bytes_greater_or_equal,
        /// bytes_greater, int_less, int_less_or_equal, int_equal, int_greater_or_equal, int_greater.
        #[arg(short = 't', long = "check_type")]
        check_type: String,
        /// The operand of comparing checks.
        #[arg(short = 'o', long = "check_operand", default_value = "")]
        check_operand: String,
        /// The sort key to set (default: the checked one).
        #[arg(short = 's', long = "set_sort_key")]
        set_sort_key: Option<String>,
        #[arg(short = 'v', long = "set_value")]
        set_value: String,
        #[arg(short = 'l', long = "set_value_ttl_seconds", default_value_t = 0)]
        ttl_seconds: u32,
        /// Print the checked value.
        #[arg(short = 'r', long = "return_check_value")]
        return_check_value: bool,
    },
    /// Count the sort keys of a hash key.
    #[command(name = "sortkey_count")]
    SortkeyCount { hash_key: String },
    /// Show every record of a hash key.
    Scan {
        hash_key: String,
        /// Stop after this many records (0 = no limit).
        #[arg(long = "max_count", default_value_t = 0)]
        max_count: u64,
        /// Show sort keys only.
        #[arg(long = "no_value")]
        no_value: bool,
    },
    /// Show every record of the table.
    #[command(name = "full_scan")]
    FullScan {
        /// Stop after this many records (0 = no limit).
        #[arg(long = "max_count", default_value_t = 0)]
        max_count: u64,
        #[arg(long = "no_value")]
        no_value: bool,
    },
    /// Count the records of the table; -d per partition.
    #[command(name = "count_data")]
    CountData {
        #[arg(short = 'd', long = "detailed")]
        detailed: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show a record's remaining time to live.
    Ttl { hash_key: String, sort_key: String },
    /// Requests served and storage, per table, or per partition of one table (-a), from each
    /// partition's primary since its replica opened, with a total row. With -c, from the
    /// collector's last gathering, with QPS, bytes per second and hot partitions.
    #[command(name = "app_stat")]
    AppStat {
        #[arg(short = 'a', long = "app_name")]
        app: Option<String>,
        /// A collector's address (its `collector.address`).
        #[arg(short = 'c', long = "collector")]
        collector: Option<aerie_common::NodeAddr>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Leave the shell.
    #[command(alias = "quit")]
    Exit,
}

/// Names for completion.
pub const COMMAND_NAMES: &[&str] = &[
    "app",
    "app_stat",
    "balance",
    "balance_plan",
    "check_and_set",
    "cluster_info",
    "count_data",
    "create",
    "ddd_diagnose",
    "del",
    "downgrade_node",
    "drop",
    "exit",
    "full_scan",
    "get",
    "get_meta_level",
    "help",
    "incr",
    "ls",
    "multi_del",
    "multi_get",
    "multi_set",
    "node_maintenance",
    "nodes",
    "migrate_node",
    "offline_node",
    "propose",
    "quit",
    "recall",
    "recover",
    "remote_command",
    "remove_node",
    "scan",
    "server_info",
    "server_stat",
    "set",
    "set_meta_level",
    "sortkey_count",
    "ttl",
    "use",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<ShellCommand, clap::Error> {
        Line::try_parse_from(words).map(|l| l.command)
    }

    #[test]
    fn pegasus_style_commands_parse() {
        assert!(matches!(
            parse(&["create", "t", "-p", "16", "-r", "3"]).unwrap(),
            ShellCommand::Create {
                partitions: 16,
                replicas: 3,
                ..
            }
        ));
        assert!(matches!(
            parse(&["ls", "-d", "-j", "-o", "/tmp/x"]).unwrap(),
            ShellCommand::Ls { detailed: true, .. }
        ));
        assert!(matches!(
            parse(&["nodes", "-d", "-s", "alive"]).unwrap(),
            ShellCommand::Nodes {
                status: Some(NodeFilter::Alive),
                ..
            }
        ));
        assert!(matches!(
            parse(&["incr", "h", "s", "-3"]).unwrap(),
            ShellCommand::Incr { increment: -3, .. }
        ));
        assert!(matches!(
            parse(&["cluster_info"]).unwrap(),
            ShellCommand::ClusterInfo { .. }
        ));
        assert!(matches!(parse(&["quit"]).unwrap(), ShellCommand::Exit));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse(&["create"]).is_err());
        assert!(parse(&["multi_set", "h", "only_one"]).is_err());
        assert!(parse(&["create", "t", "-p", "many"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }
}
