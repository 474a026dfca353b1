//! `aerie`: one binary for every role (`--role meta|replica|collector|all`), the operator shell
//! (`aerie shell`), the load generator (`aerie bench`) and the ZooKeeper subtree copier
//! (`aerie zk-copy`) and the rolling restart of a whole cluster (`aerie rolling-update`).

mod bench;
mod cli;
mod logging;
mod server;
mod shell;
mod zk_copy;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the write path allocates per request on several threads,
/// and glibc's arenas cost about a tenth of a replica server's CPU there (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Shell(args)) => shell::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::ZkCopy(args)) => zk_copy::run(args),
        Some(Command::RollingUpdate(args)) => shell::rolling::run(args),
        None => match cli.server.role {
            Some(role) => server::run(role, cli.server),
            None => {
                eprintln!("aerie: say which role to run (--role meta|replica|collector|all), or use a subcommand; see aerie --help");
                return ExitCode::from(2);
            }
        },
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("aerie: {e:#}");
            ExitCode::FAILURE
        }
    }
}
