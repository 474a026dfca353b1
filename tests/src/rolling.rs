//! Runs `aerie rolling-update` against a [`ProcessCluster`] with a local restart template: the
//! template asks the test to restart one process (it creates a request file named after the
//! address and waits until the file is gone), and the test restarts that process with SIGTERM and a
//! new start, as `systemctl restart` would. The processes stay the harness's own, so they are
//! cleaned up however the test ends.

use crate::cluster::{ProcessCluster, ShellOutput};
use crate::http::metrics;
use crate::http::sample;
use aerie_common::NodeAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a restarted process gets for its clean exit before SIGKILL.
const CLEAN_EXIT: Duration = Duration::from_secs(60);

/// What a rolling update did.
#[derive(Debug)]
pub struct RollOutcome {
    pub output: ShellOutput,
    /// The processes restarted, in order.
    pub restarted: Vec<NodeAddr>,
    /// Bytes each restarted replica server had learned from checkpoints, and from logs and memory,
    /// read just before its restart (its counters start again at zero when it restarts).
    pub checkpoint_bytes_before_restart: f64,
    pub log_bytes_before_restart: f64,
}

/// How to run it.
#[derive(Debug, Default, Clone)]
pub struct RollOptions {
    /// Arguments after `--meta ... --restart ...` (e.g. `--dry-run`).
    pub args: Vec<String>,
    /// At the n-th restart request (1-based), SIGKILL the roll instead of restarting the process,
    /// to test resuming and aborting.
    pub interrupt_at_restart: Option<usize>,
}

/// Bytes a replica server learned so far: (from checkpoints, from logs and memory).
pub fn learned_by_source(node: NodeAddr) -> (f64, f64) {
    let text = metrics(node);
    let of = |source: &str| {
        sample(
            &text,
            &format!("aerie_replica_learn_bytes_total{{node=\"{node}\",source=\"{source}\"}}"),
        )
    };
    (of("checkpoint"), of("log") + of("cache"))
}

impl ProcessCluster {
    /// Where restart requests appear.
    fn restart_requests(&self) -> PathBuf {
        self.dir.path().join("restart-requests")
    }

    /// The progress file the rolling updates of this cluster use.
    pub fn roll_progress_file(&self) -> PathBuf {
        self.dir.path().join("rolling-update.progress")
    }

    /// Runs `aerie rolling-update --meta <all metas> --restart <local template> <options.args>`
    /// (bounded by `timeout`), restarting processes as it asks.
    pub fn rolling_update(&mut self, options: &RollOptions, timeout: Duration) -> RollOutcome {
        let requests = self.restart_requests();
        std::fs::create_dir_all(&requests).expect("restart request dir");
        let template = format!(
            "f={}/%h_%p; touch $f; while [ -e $f ]; do sleep 0.05; done",
            requests.display()
        );
        let progress = self.roll_progress_file();
        let mut child = Command::new(crate::process::aerie_bin())
            .arg("rolling-update")
            .args(["--meta", &self.meta_list(), "--restart", &template])
            .args(["--progress-file", &progress.display().to_string()])
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aerie rolling-update starts");
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let echo = |stream: Box<dyn std::io::Read + Send>, to_stderr: bool| {
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut all = String::new();
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    // Shown as it happens, so that a stuck roll can be followed.
                    if to_stderr {
                        eprintln!("rolling-update! {line}");
                    } else {
                        eprintln!("rolling-update: {line}");
                    }
                    all.push_str(&line);
                    all.push('\n');
                }
                all
            })
        };
        let out = echo(Box::new(stdout), false);
        let err = echo(Box::new(stderr), true);
        let mut outcome = RollOutcome {
            output: ShellOutput {
                success: false,
                stdout: String::new(),
                stderr: String::new(),
            },
            restarted: Vec::new(),
            checkpoint_bytes_before_restart: 0.0,
            log_bytes_before_restart: 0.0,
        };
        let began = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the roll") {
                break Some(status);
            }
            if began.elapsed() >= timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            for request in pending(&requests) {
                let addr = address_of(&request);
                let n = outcome.restarted.len() + 1;
                if options.interrupt_at_restart == Some(n) {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_file(&request);
                    outcome.output.stderr = format!("interrupted at the restart of {addr}\n");
                    break;
                }
                if self.replica_addrs.contains(&addr) {
                    let (checkpoint, log) = learned_by_source(addr);
                    outcome.checkpoint_bytes_before_restart += checkpoint;
                    outcome.log_bytes_before_restart += log;
                }
                let process = self
                    .process_at(addr)
                    .unwrap_or_else(|| panic!("the roll asked to restart {addr}, which this cluster does not run"));
                process.restart_clean(CLEAN_EXIT);
                outcome.restarted.push(addr);
                std::fs::remove_file(&request).expect("remove the restart request");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
        outcome.output.success = status.is_some_and(|s| s.success());
        outcome.output.stdout = stdout;
        outcome.output.stderr.push_str(&stderr);
        if status.is_none() {
            outcome
                .output
                .stderr
                .push_str(&format!("the roll did not end within {} s\n", timeout.as_secs()));
        }
        outcome
    }
}

fn pending(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("restart request dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    found.sort();
    found
}

/// `<dir>/127.0.0.1_34801` -> 127.0.0.1:34801.
fn address_of(request: &Path) -> NodeAddr {
    let name = request.file_name().unwrap().to_string_lossy();
    name.replacen('_', ":", 1)
        .parse()
        .unwrap_or_else(|_| panic!("a restart request names an address: {name}"))
}
