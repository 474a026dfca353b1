//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "aerie",
    version,
    about = "Aerie: a replicated key-value store in the design of Apache Pegasus",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Which role this process runs; `all` starts a development cluster in one process.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Configuration file (TOML); see config/ for commented templates.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides one key, e.g. --set replication.fd_lease_seconds=8 (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Where data lives (meta: the embedded store; replica: the only data dir; all: everything).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Meta,
    Replica,
    Collector,
    All,
}

#[derive(Subcommand)]
pub enum Command {
    /// The operator shell.
    Shell(crate::shell::ShellArgs),
    /// YCSB-style load generator.
    Bench(crate::bench::BenchArgs),
    /// Copy a ZooKeeper subtree (the cluster map) to another ensemble.
    #[command(name = "zk-copy")]
    ZkCopy(crate::zk_copy::ZkCopyArgs),
    /// Restart every process of a cluster one at a time without failing a client request.
    #[command(name = "rolling-update")]
    RollingUpdate(crate::shell::rolling::RollingUpdateArgs),
}
