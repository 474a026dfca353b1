//! Running the server roles: plan them from the configuration, start them in one actix system, and
//! on SIGTERM or SIGINT shut them down cleanly (replicas close: logs synced, memtables flushed).

mod lock;
pub mod notify;
pub mod plan;
mod roles;

use crate::cli::{Role, ServerArgs};
use actix::Arbiter;
use aerie_common::{Clock, SystemClock};
use aerie_rpc::{Network, NetworkOptions};
use anyhow::{Context, Result};
use roles::{ProcessInfo, ReplicaShared};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::info;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(role: Role, args: ServerArgs) -> Result<ExitCode> {
    let plan = plan::plan(role, &args)?;
    crate::logging::init(&plan.config.log.level);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let workers = actor_threads(plan.config.replication.worker_threads, cpus);
    let system = actix_rt::System::new();
    let arbiters: Vec<Arbiter> = if plan.replicas.is_empty() {
        Vec::new()
    } else {
        (0..workers).map(|_| Arbiter::new()).collect()
    };
    let handles = arbiters.iter().map(|a| a.handle()).collect();
    let sockets = match sockets_on_actor_thread(plan.config.network.io_threads, arbiters.len()) {
        true => Some(runtime_of(&arbiters[0])?),
        false => None,
    };
    let outcome = system.block_on(run_roles(plan, handles, sockets));
    for arbiter in &arbiters {
        arbiter.stop();
    }
    for arbiter in arbiters {
        let _ = arbiter.join();
    }
    outcome.map(|_| ExitCode::SUCCESS)
}

/// Threads for the replica actors: as configured, or for 0 one per CPU but one. A replica server's
/// socket thread and node-log thread take more than half of its CPU on the write path
/// (docs/benchmarks.md), so an actor thread on every CPU leaves them competing with the actors.
fn actor_threads(configured: u32, cpus: usize) -> usize {
    match configured {
        0 => cpus.saturating_sub(1).max(1),
        n => n as usize,
    }
}

/// Whether the sockets run on the replica actors' thread: for `network.io_threads = 0` when there
/// is exactly one actor thread, so that a frame reaches its actor, and an answer its socket,
/// without waking another thread (docs/architecture.md has the figures and the price). With
/// several actor threads most frames would still cross threads, and one of them would carry every
/// socket besides its actors.
fn sockets_on_actor_thread(io_threads: u32, actor_threads: usize) -> bool {
    io_threads == 0 && actor_threads == 1
}

/// The tokio runtime an arbiter's thread runs.
fn runtime_of(arbiter: &Arbiter) -> Result<tokio::runtime::Handle> {
    let (tx, rx) = std::sync::mpsc::channel();
    arbiter.spawn(async move {
        let _ = tx.send(tokio::runtime::Handle::current());
    });
    rx.recv().context("the actor thread stopped before it started")
}

async fn run_roles(
    plan: plan::RolePlan,
    arbiters: Vec<actix::ArbiterHandle>,
    sockets: Option<tokio::runtime::Handle>,
) -> Result<()> {
    let config = &plan.config;
    let options = NetworkOptions {
        max_frame_bytes: config.network.max_frame_bytes as usize,
        connect_timeout: Duration::from_millis(config.network.connect_timeout_ms),
        io_threads: config.network.io_threads as usize,
        source_address: config.network.source_ip(),
    };
    let network = match sockets {
        Some(actor_thread) => Network::on_runtime(options, actor_thread),
        None => Network::new(options).context("starting the network runtime")?,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock::default());
    let info = ProcessInfo {
        roles: plan.roles.clone(),
        started: Instant::now(),
    };
    let meta = match plan.meta {
        true => Some(roles::start_meta(config, &network, clock.clone(), &info).await?),
        false => None,
    };
    let mut replicas = Vec::new();
    if !plan.replicas.is_empty() {
        let shared = ReplicaShared::new(&config.replication, arbiters);
        for repl in &plan.replicas {
            replicas.push(roles::start_replica(
                repl,
                config,
                &shared,
                &network,
                clock.clone(),
                &info,
            )?);
        }
    }
    let collector = match plan.collector {
        true => Some(roles::start_collector(config, &network, &info)?),
        false => None,
    };
    info!(roles = ?plan.roles, "aerie started");
    let checks = meta
        .iter()
        .map(|m| m.health.clone())
        .chain(replicas.iter().map(|r| r.health.clone()))
        .chain(collector.iter().map(|(_, health)| health.clone()))
        .collect();
    let ready = actix_rt::spawn(notify::announce_when_ready(checks));

    wait_for_stop_signal().await?;
    ready.abort();
    notify::announce_stopping();
    info!("stopping: closing replicas, syncing logs, flushing memtables");
    futures::future::join_all(replicas.iter().map(|r| r.shutdown(SHUTDOWN_TIMEOUT))).await;
    if let Some(meta) = &meta {
        meta.shutdown().await;
    }
    drop(replicas);
    drop(collector);
    drop(meta);
    info!("aerie stopped");
    Ok(())
}

async fn wait_for_stop_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{actor_threads, sockets_on_actor_thread};

    #[test]
    fn actor_threads_leave_a_cpu_to_the_socket_and_log_threads_unless_configured() {
        assert_eq!(actor_threads(0, 1), 1);
        assert_eq!(actor_threads(0, 2), 1);
        assert_eq!(actor_threads(0, 16), 15);
        assert_eq!(actor_threads(4, 2), 4);
        assert_eq!(actor_threads(1, 16), 1);
    }

    #[test]
    fn sockets_share_the_actor_thread_only_when_it_is_the_only_one_and_none_are_configured() {
        assert!(sockets_on_actor_thread(0, 1));
        assert!(
            !sockets_on_actor_thread(0, 0),
            "a process without replicas has no actor thread"
        );
        assert!(!sockets_on_actor_thread(0, 4));
        assert!(!sockets_on_actor_thread(1, 1));
    }
}
