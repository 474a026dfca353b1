//! One `aerie` process: started with arguments, logging to a file, killable and restartable.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `aerie` binary to test.
pub fn aerie_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("AERIE_TEST_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/aerie
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("aerie"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p aerie` (or set AERIE_TEST_BIN)",
        bin.display()
    );
    bin
}

/// A loopback port nobody listens on right now, outside the ephemeral range (see
/// `aerie_common::ports`).
pub fn free_port() -> u16 {
    aerie_common::ports::free_loopback_port()
}

pub struct AerieProcess {
    pub name: String,
    args: Vec<String>,
    /// Extra environment variables.
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl AerieProcess {
    pub fn start(name: &str, args: Vec<String>, log: PathBuf) -> Self {
        Self::start_with_env(name, args, log, Vec::new())
    }

    /// Starts it with `env` added to the environment.
    pub fn start_with_env(name: &str, args: Vec<String>, log: PathBuf, env: Vec<(String, String)>) -> Self {
        let mut process = AerieProcess {
            name: name.to_string(),
            args,
            env,
            log,
            child: None,
            paused: false,
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(aerie_bin())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
    }

    /// The arguments it runs with (to start the same process from a script).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// SIGSTOP: the process freezes (as in a long stall) until [`AerieProcess::resume`].
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = self.child.is_some();
    }

    /// SIGCONT, if paused.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
            self.paused = false;
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM, and wait (bounded) for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGTERM, a bounded wait for the clean exit (SIGKILL after `timeout`), and a new start.
    pub fn restart_clean(&mut self, timeout: Duration) {
        self.terminate(timeout);
        self.paused = false;
        self.spawn();
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for AerieProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
