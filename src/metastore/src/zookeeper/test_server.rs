//! A throwaway ZooKeeper server for tests: `scripts/zookeeper.sh` on a free loopback port with a
//! temporary data dir, stopped when dropped. Panics with the script's output when it cannot start
//! (the test command installs the `zookeeper` package first).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestZookeeper {
    port: u16,
    dir: tempfile::TempDir,
    script: PathBuf,
}

/// A file of this checkout, e.g. `scripts/zookeeper.sh`, found from the directory `cargo test`
/// runs in (read at run time: a build shared between checkouts must not point into another one).
pub fn checkout_file(relative: &str) -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("a directory to start from");
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{relative} not found above {}", start.display()))
}

fn script() -> PathBuf {
    checkout_file("scripts/zookeeper.sh")
}

impl TestZookeeper {
    pub fn start() -> TestZookeeper {
        let server = TestZookeeper {
            port: aerie_common::ports::free_loopback_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            script: script(),
        };
        server.run("start");
        server
    }

    /// `127.0.0.1:<port>`.
    pub fn hosts(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (SIGTERM); its data stays for `start_again`.
    pub fn stop(&self) {
        self.run("stop");
    }

    pub fn start_again(&self) {
        self.run("start");
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.path().join("zookeeper.pid")).expect("zookeeper.pid");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.trim())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    fn run(&self, action: &str) {
        let output = Command::new("bash")
            .arg(&self.script)
            .arg(action)
            .args(["--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .output()
            .expect("running scripts/zookeeper.sh");
        assert!(
            output.status.success(),
            "scripts/zookeeper.sh {action} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for TestZookeeper {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["stop", "--port", &self.port.to_string(), "--dir"])
            .arg(self.dir.path())
            .output();
    }
}
