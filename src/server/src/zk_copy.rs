//! `aerie zk-copy`: copies a ZooKeeper subtree (the cluster map under `cluster_root`) to another
//! ensemble, for the copy method of ZooKeeper migration. Set the meta level to blind first so that
//! nothing changes while it copies.

use aerie_metastore::zookeeper::copy::{connect, copy_tree};
use anyhow::{anyhow, Result};
use clap::Args;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct ZkCopyArgs {
    /// The ZooKeeper ensemble to copy from (host:port,...).
    #[arg(long = "from", value_name = "HOSTS")]
    pub from: String,
    /// The ZooKeeper ensemble to copy to (host:port,...).
    #[arg(long = "to", value_name = "HOSTS")]
    pub to: String,
    /// The subtree to copy, e.g. the `zookeeper_root` that `cluster_info` prints.
    #[arg(long = "path", value_name = "ROOT")]
    pub path: String,
    /// Replace the subtree if the target already has it (it is deleted there first).
    #[arg(long = "overwrite")]
    pub overwrite: bool,
}

pub fn run(args: ZkCopyArgs) -> Result<ExitCode> {
    crate::logging::init("warn");
    aerie_metastore::validate_path(&args.path).map_err(|e| anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let started = Instant::now();
    let report = runtime.block_on(async {
        let from = connect(&args.from).await?;
        let to = connect(&args.to).await?;
        copy_tree(&from, &to, &args.path, args.overwrite, |progress| {
            if progress.nodes % 1000 == 0 {
                eprintln!("copied {} nodes ({} bytes) so far", progress.nodes, progress.bytes);
            }
        })
        .await
    })?;
    if report.deleted_on_target > 0 {
        println!(
            "deleted {} nodes of the old {} on {}",
            report.deleted_on_target, args.path, args.to
        );
    }
    println!(
        "copied {} nodes ({} bytes of data) of {} from {} to {} in {:.1} s; {} ephemeral nodes not copied",
        report.nodes,
        report.bytes,
        args.path,
        args.from,
        args.to,
        started.elapsed().as_secs_f64(),
        report.skipped_ephemeral
    );
    Ok(ExitCode::SUCCESS)
}
