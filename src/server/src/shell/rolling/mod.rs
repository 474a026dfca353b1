//! `aerie rolling-update`: restarts every process of a cluster, one at a time, without failing a
//! client request. Each replica server in turn: pre-flight checks, maintenance on, `migrate_node`,
//! `downgrade_node`, `replica.kill_partition`, the restart template, a wait until it is alive and
//! every table fully healthy again, maintenance off. Then the metas (standbys first, the leader
//! last), then the collector. The meta level is held at steady for the roll and restored after it.
//!
//! Every step done is written to a progress file, so that an interrupted roll resumes where it
//! stopped when run again, or is undone with `--abort` (maintenance off, level restored).

mod plan;
mod steps;

use super::Shell;
use aerie_common::{MetaLevel, NodeAddr};
use anyhow::Result;
use clap::Args;
use plan::{order, preflight, ClusterState, Progress, Role, Step, Target};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct RollingUpdateArgs {
    /// Meta servers, comma separated; restarted too (standbys first, the leader last) unless
    /// --skip-metas.
    #[arg(long)]
    pub meta: String,
    /// Replica servers to restart, comma separated, or `all` (every one the meta knows).
    #[arg(long, default_value = "all")]
    pub nodes: String,
    /// Restarts one replica server, run with `sh -c` and done when it exits 0:
    /// %h host, %p port, %a host:port, %r role, %% a percent sign
    /// (e.g. `ssh %h sudo systemctl restart aerie-replica@%p`).
    #[arg(long)]
    pub restart: Option<String>,
    /// Restarts one meta server (default: --restart).
    #[arg(long = "restart-meta")]
    pub restart_meta: Option<String>,
    /// Restarts the collector (default: --restart).
    #[arg(long = "restart-collector")]
    pub restart_collector: Option<String>,
    /// The collector (host:port), restarted last.
    #[arg(long)]
    pub collector: Option<String>,
    /// Restart the replica servers only.
    #[arg(long = "skip-metas")]
    pub skip_metas: bool,
    /// Print the pre-flight verdict and the plan; change nothing.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Undo an interrupted roll: finish a restart it began, maintenance off, meta level restored.
    #[arg(long)]
    pub abort: bool,
    /// Where the steps done are kept (to resume or abort).
    #[arg(long = "progress-file", default_value = "aerie-rolling-update.progress")]
    pub progress_file: PathBuf,
    /// Partitions moved at once by migrate_node and downgrade_node.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Give up on a step that takes longer than this.
    #[arg(long = "step-timeout-seconds", default_value_t = 900)]
    pub step_timeout_seconds: u64,
    /// How long a node's maintenance lasts at most if the roll dies (meta_server.maintenance_max_seconds bounds it).
    #[arg(long = "maintenance-seconds", default_value_t = 1800)]
    pub maintenance_seconds: u64,
}

/// The roll under way.
struct Roll {
    shell: Shell,
    args: RollingUpdateArgs,
    progress: Progress,
    started: Instant,
}

pub fn run(args: RollingUpdateArgs) -> Result<ExitCode> {
    crate::logging::init("warn");
    let shell = Shell::connect(&args.meta, Duration::from_secs(10))?;
    let progress = match std::fs::read_to_string(&args.progress_file) {
        Ok(text) => Progress::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.progress_file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Progress::default(),
        Err(e) => anyhow::bail!("cannot read {}: {e}", args.progress_file.display()),
    };
    let mut roll = Roll {
        shell,
        args,
        progress,
        started: Instant::now(),
    };
    let outcome = if roll.args.abort {
        roll.abort()
    } else if roll.args.dry_run {
        roll.dry_run()
    } else {
        roll.run()
    };
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    })
}

impl Roll {
    fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.args.step_timeout_seconds)
    }

    fn say(&self, text: &str) {
        println!("[{:>5} s] {text}", self.started.elapsed().as_secs());
    }

    /// Every process of the roll, in order.
    fn targets(&mut self) -> Result<Vec<Target>, String> {
        let replicas: Vec<NodeAddr> = if self.args.nodes.trim() == "all" {
            let mut all: Vec<NodeAddr> = self
                .shell
                .block(self.shell.client.list_nodes())?
                .into_iter()
                .map(|n| n.address)
                .collect();
            all.sort();
            all
        } else {
            NodeAddr::parse_list(&self.args.nodes).map_err(|e| format!("--nodes: {e}"))?
        };
        let metas = if self.args.skip_metas {
            Vec::new()
        } else {
            NodeAddr::parse_list(&self.args.meta).map_err(|e| format!("--meta: {e}"))?
        };
        let leader = (!metas.is_empty())
            .then(|| self.shell.block(self.shell.client.cluster_info()))
            .transpose()?
            .map(|info| info.primary_meta_server);
        let collector = self
            .args
            .collector
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| format!("--collector: {e}"))?;
        Ok(order(&replicas, &metas, leader, collector))
    }

    /// The replica server an interrupted run left mid-way, if any.
    fn interrupted(&self) -> Option<NodeAddr> {
        self.progress
            .unfinished()
            .into_iter()
            .find(|(t, _)| t.role == Role::Replica)
            .map(|(t, _)| t.addr)
    }

    fn check_cluster(&mut self, targets: &[Target]) -> Result<(), String> {
        self.check_cluster_with(targets, false)
    }

    /// The pre-flight; `balance_waited` when the roll would wait for balance moves to end.
    fn check_cluster_with(&mut self, targets: &[Target], balance_waited: bool) -> Result<(), String> {
        let tables = self.shell.block(self.shell.client.list_tables(false))?;
        let nodes = self.shell.block(self.shell.client.list_nodes())?;
        let level = self.shell.block(self.shell.client.meta_level())?;
        let info = self.shell.block(self.shell.client.cluster_info())?;
        let rolling: Vec<NodeAddr> = targets
            .iter()
            .filter(|t| t.role == Role::Replica && self.progress.next_step(**t).is_some())
            .map(|t| t.addr)
            .collect();
        let state = ClusterState {
            tables: &tables,
            nodes: &nodes,
            effective_level: level.effective,
            moves_in_progress: if balance_waited { 0 } else { info.moves_in_progress },
        };
        let problems = preflight(&state, &rolling, self.interrupted());
        if problems.is_empty() {
            return Ok(());
        }
        Err(format!(
            "the cluster is not ready for a rolling update:{}",
            problems.iter().map(|p| format!("\n  - {p}")).collect::<String>()
        ))
    }

    fn template(&self, role: Role) -> Result<&str, String> {
        let specific = match role {
            Role::Replica => None,
            Role::Meta => self.args.restart_meta.as_deref(),
            Role::Collector => self.args.restart_collector.as_deref(),
        };
        specific.or(self.args.restart.as_deref()).ok_or_else(|| {
            "say how to restart a process: --restart TEMPLATE (e.g. 'systemctl restart aerie-replica@%p')".to_string()
        })
    }

    fn dry_run(&mut self) -> Result<(), String> {
        let targets = self.targets()?;
        let level = self.shell.block(self.shell.client.meta_level())?.stored;
        // At level lively the roll first goes to steady and waits for balance moves to end.
        let verdict = self.check_cluster_with(&targets, level == MetaLevel::Lively);
        println!("rolling update plan (dry run, nothing changes):");
        for (i, target) in targets.iter().enumerate() {
            let command = plan::expand(self.template(target.role)?, *target)?;
            let next = self.progress.next_step(*target);
            let state = match (next, self.progress.done.get(target)) {
                (None, _) => "done by an earlier run".to_string(),
                (Some(step), Some(_)) => format!("resumes at {}", step.name()),
                (Some(_), None) => String::new(),
            };
            let what = match target.role {
                Role::Replica => format!(
                    "maintenance on, migrate_node, downgrade_node, replica.kill_partition, `{command}`, wait until alive and every table fully healthy, maintenance off"
                ),
                Role::Meta | Role::Collector => format!("`{command}`, wait until it serves and every table is fully healthy"),
            };
            println!(
                "  {:>2}. {target}: {what}{}",
                i + 1,
                if state.is_empty() { state } else { format!(" ({state})") }
            );
        }
        if level != MetaLevel::Steady {
            println!("the meta level {level} is set to steady for the roll and restored after it");
        }
        match verdict {
            Ok(()) => {
                println!("pre-flight: ok");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let targets = self.targets()?;
        if !self.progress.done.is_empty() {
            let done = targets
                .iter()
                .filter(|t| self.progress.next_step(**t).is_none())
                .count();
            self.say(&format!(
                "resuming the roll in {}: {done} of {} processes done{}",
                self.args.progress_file.display(),
                targets.len(),
                self.progress
                    .unfinished()
                    .iter()
                    .map(|(t, s)| format!("; {t} stopped after {}", s.name()))
                    .collect::<String>()
            ));
        }
        for target in &targets {
            self.template(target.role)?;
        }
        if self.progress.level_before.is_none() {
            // Checks the cluster itself, and leaves it as it was if the check fails.
            self.hold_level_steady(&targets)?;
        } else {
            self.check_cluster(&targets)?;
        }
        let total = targets.len();
        let mut times = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            let Some(first) = self.progress.next_step(*target) else {
                continue;
            };
            if target.role == Role::Replica && first == Step::MaintenanceOn {
                self.wait_balance_idle()?;
                self.check_cluster(&targets)?;
            }
            let began = Instant::now();
            self.say(&format!("{}/{total} {target}: starting", i + 1));
            while let Some(step) = self.progress.next_step(*target) {
                let step_began = Instant::now();
                let note = self.do_step(*target, step)?;
                self.progress.done.insert(*target, step);
                self.save()?;
                self.say(&format!(
                    "{}/{total} {target}: {} ({:.1} s){}",
                    i + 1,
                    step.name(),
                    step_began.elapsed().as_secs_f64(),
                    if note.is_empty() { note } else { format!(": {note}") }
                ));
            }
            times.push((*target, began.elapsed()));
        }
        self.restore_level()?;
        let _ = std::fs::remove_file(&self.args.progress_file);
        self.say(&format!(
            "rolling update done: {total} processes in {} s{}",
            self.started.elapsed().as_secs(),
            times
                .iter()
                .map(|(t, d)| format!("\n  {t}: {:.1} s", d.as_secs_f64()))
                .collect::<String>()
        ));
        Ok(())
    }

    /// Before the first step: the level goes to steady (so that the balancer moves nothing back),
    /// balance moves under way end, and the cluster passes the pre-flight; if it does not, the
    /// level is put back and nothing else has changed.
    fn hold_level_steady(&mut self, targets: &[Target]) -> Result<(), String> {
        let level = self.shell.block(self.shell.client.meta_level())?.stored;
        if level == MetaLevel::Lively {
            self.shell.block(self.shell.client.set_meta_level(MetaLevel::Steady))?;
            self.say(&format!(
                "meta level {level} -> steady for the roll (restored at the end)"
            ));
        }
        self.progress.level_before = Some(level);
        let checked = self.wait_balance_idle().and_then(|()| self.check_cluster(targets));
        if let Err(e) = checked {
            self.restore_level()?;
            self.progress = Progress::default();
            return Err(e);
        }
        self.save()
    }

    /// Waits (bounded) until the meta has no move under way.
    fn wait_balance_idle(&mut self) -> Result<(), String> {
        let began = Instant::now();
        loop {
            let count = self.shell.block(self.shell.client.cluster_info())?.moves_in_progress;
            if count == 0 {
                return Ok(());
            }
            if began.elapsed() >= self.step_timeout() {
                return Err(format!(
                    "{count} move(s) still under way after {} s",
                    began.elapsed().as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn restore_level(&mut self) -> Result<(), String> {
        if let Some(level) = self.progress.level_before.filter(|l| *l != MetaLevel::Steady) {
            self.shell.block(self.shell.client.set_meta_level(level))?;
            self.say(&format!("meta level restored to {level}"));
        }
        Ok(())
    }

    fn save(&self) -> Result<(), String> {
        let path = &self.args.progress_file;
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, self.progress.to_text())
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|e| format!("cannot write the progress file {}: {e}", path.display()))
    }

    fn abort(&mut self) -> Result<(), String> {
        if self.progress == Progress::default() {
            return Err(format!(
                "no rolling update to abort: {} does not exist (or is empty)",
                self.args.progress_file.display()
            ));
        }
        for (target, last) in self.progress.unfinished() {
            if target.role != Role::Replica {
                continue;
            }
            if last == Step::Closed {
                // Its replicas stay closed until it restarts: finish the restart it began.
                self.say(&format!("{target}: its replicas were closed; restarting it"));
                self.do_step(target, Step::Restarted)?;
            }
            if matches!(last, Step::Closed | Step::Restarted) {
                self.do_step(target, Step::Healthy)?;
            }
            let text = self.shell.node_maintenance(&target.addr.to_string(), false, None)?;
            self.say(&format!("{target}: {}", text.trim_end()));
        }
        self.restore_level()?;
        std::fs::remove_file(&self.args.progress_file)
            .map_err(|e| format!("cannot remove {}: {e}", self.args.progress_file.display()))?;
        self.say("rolling update aborted; the processes done stay updated");
        Ok(())
    }
}
